/** The real node-serialport, loaded on first use (radio/serial.ts): errors still come back as one clean line. */
import t from 'tap';
import { acquirePort } from '../../gateway/src/radio/serial.js';
import { RadioError } from '../../gateway/src/radio/types.js';

t.test('a missing serial port is a clean RadioError through the lazily loaded driver', async (t) => {
  const err = await acquirePort('/dev/ttyTALKBRIDGE-NONE').then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof RadioError, 'a RadioError');
  t.match((err as Error).message, /^\/dev\/ttyTALKBRIDGE-NONE: /, 'names the port');
  t.notMatch((err as Error).message, /\n/, 'one line');
});
