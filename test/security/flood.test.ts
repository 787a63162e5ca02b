/**
 * A flood of garbage on an encrypted channel, through a real Mosquitto, at a real bridge: it is
 * refused cheaply and counted, memory stays bounded, and a genuine over sent during the flood is
 * keyed promptly or not at all — never transmitted late.
 */
import t from 'tap';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import { Bridge } from '../../gateway/src/bridge/bridge.js';
import { BridgeSchema } from '../../gateway/src/bridge/schema.js';
import { ChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { generateKey } from '../../gateway/shared/crypto/keys.js';
import { Ether } from '../bridge/ether.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Publishes N garbage messages from 50 made-up senders: four in five are audio packets with a
 * valid header of epoch 1, a fresh over each, and a random body (each would cost a key derivation
 * and a decryption attempt); one in five is a sealed-looking control envelope. Prints how many.
 */
const FLOODER = `
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
const [url, n, offset] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const c = await mqtt.connectAsync(url, { clientId: 'flooder-' + offset, protocolVersion: 4 });
let sent = 0;
for (let i = 0; i < n; i++) {
  const k = offset + i;
  const sender = 'm' + (k % 50);
  if (k % 5 === 4) {
    const env = randomBytes(80);
    env[0] = 0xe1; env[1] = 0; env[2] = 1;
    c.publish('talkbridge/v1/ops/control/' + sender, env, { qos: 0 });
  } else {
    const p = randomBytes(26 + 106);
    // version 1, START|ENCRYPTED, Opus, 16 kHz, 20 ms, 2 frames, epoch 1, random stream id, seq 0, now
    p[0] = 1; p[1] = 5; p[2] = 1; p[3] = 16; p[4] = 8; p[5] = 2; p[6] = 0; p[7] = 1;
    p.writeUInt32BE(0, 16);
    const now = Date.now();
    p.writeUInt16BE(Math.floor(now / 2 ** 32), 20);
    p.writeUInt32BE(now % 2 ** 32, 22);
    c.publish('talkbridge/v1/ops/audio/' + sender, p, { qos: 0 });
  }
  sent++;
  if (i % 500 === 499) await new Promise((r) => setImmediate(r));
}
await c.endAsync();
console.log(sent);
`;

t.test('100,000 garbage messages on an encrypted channel: counted and dropped, and a genuine over is keyed within 1.5 s of its first packet', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const ether = new Ether();
  t.teardown(() => ether.close());
  const key = generateKey(1);
  const open = (name: string) =>
    openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'ops', name, sender: name, source: 'radio', silenceMs: 1000, crypto: new ChannelCrypto({ channel: 'ops', keys: [key] }) });
  const gw = await open('gw');
  t.teardown(() => gw.close());
  const radio = ether.radio('gw');
  const bridge = new Bridge({
    radio: { name: 'gw', ptt: radio.ptt, cos: radio.cos, input: radio.input, output: radio.output },
    transmit: gw.session,
    monitor: [gw.session],
    encoder: await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 }),
    frameMs: 20,
    framesPerPacket: 2,
    config: BridgeSchema.parse({}),
    log: pino({ level: 'silent' }),
  });
  await bridge.start();
  t.teardown(() => bridge.stop());
  const base = await open('base');
  t.teardown(() => base.close());

  // The flood comes from another process, as it would: this one is the gateway.
  const flood = (n: number, offset: number) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', FLOODER, broker.url, String(n), String(offset)], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => child.kill('SIGKILL'));
    return new Promise<number>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      child.on('exit', () => resolve(Number(out.trim()) || 0));
    });
  };
  await sleep(300);
  const first = flood(60_000, 0);
  await sleep(500);
  // The genuine over starts while the flood is going on.
  const speech = await readWav(path.join(FIXTURES, 'speech-short-16k.wav'));
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  let sentAt = 0;
  const more = flood(40_000, 60_000);
  const r = await sendPcm(
    base.session,
    enc,
    { sampleRate: 16000, samples: speech.samples },
    { framesPerPacket: 2, frameMs: 20, fast: false, onPacket: (seq) => seq === 0 && (sentAt = performance.now()) },
  );
  const sent = (await first) + (await more);
  await sleep(2500);
  // The simulated PTT stamps its keying itself: a poll in this busy process would come late.
  const keyedAt = radio.ptt.keyCount ? radio.ptt.keyedAt : 0;
  t.equal(r.status, 'done');
  t.equal(sent, 100_000, 'the flooders sent 100,000 messages');
  const c = gw.session.counters;
  const refused = (c.overload ?? 0) + (c.budget ?? 0) + (c.auth ?? 0) + (c.envelope ?? 0);
  t.ok(refused > 10_000, `refused and counted: ${JSON.stringify(c)}`);
  t.ok(keyedAt === 0 || keyedAt - sentAt < 1500, keyedAt ? `genuine over keyed ${Math.round(keyedAt - sentAt)} ms after its first packet` : 'genuine over refused');
  // Refused only as late (a machine so loaded that the over came behind the flood), never dropped silently.
  t.ok(keyedAt > 0 || bridge.counters.refusedStale === 1, keyedAt ? 'keyed' : 'refused as late, and counted');
  t.notOk(radio.ptt.keyed, 'unkeyed afterwards');
  t.ok(radio.ptt.keyCount <= 1, 'keyed for the genuine over only');
});
