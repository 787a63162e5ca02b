/** The documented two-gateway example (docs/config.md, docs/examples/) works as written. */
import t from 'tap';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../helpers/brokers.js';
import { ROOT, runCli, startCli } from '../helpers/cli.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { sleep } from './helpers.js';

const A = path.join(ROOT, 'docs/examples/gateway-a.yaml');
const B = path.join(ROOT, 'docs/examples/gateway-b.yaml');

t.test('both example configs are valid', async (t) => {
  for (const f of [A, B]) {
    const r = await runCli(['check-config', f]);
    t.equal(r.code, 0, `${path.basename(f)}: ${r.stdout.trim()} ${r.stderr.trim()}`);
  }
});

t.test('B started first waits for the broker; the over heard by A comes out of B', async (t) => {
  for (const f of ['/tmp/talkbridge-b-ptt.bin', '/tmp/talkbridge-b-out.wav']) rmSync(f, { force: true });
  const mqtt = await freePort();
  const http = await freePort();
  // The documented files, moved onto free ports so the test cannot collide with a running gateway.
  const gb = startCli(['run', '--config', B], { env: { TALKBRIDGE_BROKER_URL: `mqtt://127.0.0.1:${mqtt}` } });
  t.teardown(() => gb.proc.kill('SIGKILL'));
  await gb.waitFor(/"state":"waiting"/, 10000);
  const ga = startCli(['run', '--config', A], { env: { TALKBRIDGE_EMBEDDED_BROKER_PORT: String(mqtt), TALKBRIDGE_HTTP_PORT: String(http) }, cwd: ROOT });
  t.teardown(() => ga.proc.kill('SIGKILL'));
  await gb.waitFor(/"event":"ptt"[^\n]*"on":false[^\n]*hang time over/, 30000);
  await sleep(200);
  gb.proc.kill('SIGTERM');
  ga.proc.kill('SIGTERM');
  await Promise.all([ga.result, gb.result]);
  const ptt = readFileSync('/tmp/talkbridge-b-ptt.bin').toString('hex');
  t.match(ptt, /^(0000000400)+(0000040400)(0000000400)+$/, `idle, one key-up, released (${ptt})`);
  t.ok(existsSync('/tmp/talkbridge-b-out.wav'));
  const out = await readWav('/tmp/talkbridge-b-out.wav');
  const ref = await readWav(path.join(ROOT, 'test/fixtures/speech-16k.wav'));
  const { r } = envelopeCorrelation(ref.samples, 16000, out.samples, 48000);
  t.ok(r >= 0.9, `the whole over came out of B (envelope correlation ${r.toFixed(3)})`);
});
