/**
 * /healthz (no login) says what the retained status topic says: on an end-to-end encrypted channel
 * the talker is "(sealed)", never the display name the encryption hides from the broker.
 */
import t from 'tap';
import path from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { startDaemon } from '../../gateway/src/app/daemon.js';
import { ConfigSchema } from '../../gateway/src/config/schema.js';
import { formatKey, generateKey } from '../../gateway/shared/crypto/keys.js';
import { freePort } from '../helpers/brokers.js';
import { FIXTURES, startCli } from '../helpers/cli.js';
import { sleep } from './helpers.js';

const SPEECH = path.join(FIXTURES, 'speech-short-16k.wav');

t.test("/healthz and the status topic agree: an encrypted channel's talker is sealed, a clear one's is named", async (t) => {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const key = formatKey(generateKey(1));
  const config = ConfigSchema.parse({
    gateway: { id: 'gw-h', name: 'Health' },
    embeddedBroker: { port: mqttPort },
    http: { port: httpPort },
    channels: [{ name: 'secret', key }, { name: 'open' }],
  });
  const daemon = await startDaemon(config, pino({ level: 'silent' }));
  t.teardown(() => daemon.stop());
  const broker = `mqtt://127.0.0.1:${mqttPort}`;
  const obs = await mqtt.connectAsync(broker, { reconnectPeriod: 0 });
  t.teardown(() => obs.endAsync(true));
  const statuses: string[] = [];
  obs.on('message', (_t, p) => statuses.push(p.toString()));
  await obs.subscribeAsync('talkbridge/v1/_gateways/gw-h/status', { qos: 1 });

  type Ch = { channel: string; talking: string | null; encrypted?: boolean };
  const healthz = async () => (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as { status: string; channels: Ch[] };
  t.match(await healthz(), {
    status: 'ok',
    channels: [
      { channel: 'secret', talking: null, encrypted: true },
      { channel: 'open', talking: null, encrypted: false },
    ],
  });

  // Both channels busy at once: a sealed over and a clear one.
  const sealed = startCli(['send', '--broker', broker, '--channel', 'secret', '--key', key, '--name', 'Secret Sam', SPEECH]);
  const clear = startCli(['send', '--broker', broker, '--channel', 'open', '--name', 'Open Olga', SPEECH]);
  t.teardown(() => (sealed.proc.kill('SIGKILL'), clear.proc.kill('SIGKILL')));
  let seen: Ch[] | null = null;
  const healthDocs: string[] = [];
  for (let i = 0; i < 200 && !seen; i++) {
    const h = await healthz();
    healthDocs.push(JSON.stringify(h));
    if (h.channels.every((c) => c.talking !== null)) seen = h.channels;
    else await sleep(25);
  }
  t.ok(seen, 'both channels were seen busy on /healthz');
  t.same(
    seen,
    [
      { channel: 'secret', connected: true, broker, encrypted: true, talking: '(sealed)' },
      { channel: 'open', connected: true, broker, encrypted: false, talking: 'Open Olga' },
    ],
    '/healthz: the sealed talker is not named',
  );
  t.equal((await sealed.result).code, 0, 'the sealed over went out');
  t.equal((await clear.result).code, 0, 'the clear over went out');

  const busy = statuses.map((s) => JSON.parse(s) as { channels: Ch[] }).find((d) => d.channels.every((c) => c.talking !== null));
  t.ok(busy, 'the status topic saw both busy');
  t.same(
    busy!.channels.map((c) => c.talking),
    ['(sealed)', 'Open Olga'],
    'the status topic says the same',
  );
  t.notMatch(healthDocs.join('\n'), /Secret Sam/, 'no /healthz document ever named the sealed talker');
});
