/**
 * The bridge's rules on the air, with real channel sessions over a real Mosquitto and radios on a
 * simulated frequency (test/bridge/ether.ts): no ping-pong between two gateways on one frequency,
 * half-duplex collisions, the time-out timer and its lockout, and the sound card vanishing mid-over.
 */
import t, { type Test } from 'tap';
import path from 'node:path';
import { pino } from 'pino';
import { startMosquitto, type TestBroker } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';
import { openChannel, type OpenChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { readWav, type Pcm } from '../../gateway/src/audio/wav.js';
import { resampleAll } from '../../gateway/shared/audio/resample.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import { Bridge } from '../../gateway/src/bridge/bridge.js';
import { BridgeSchema } from '../../gateway/src/bridge/schema.js';
import type { OverReport } from '../../gateway/shared/channel/session.js';
import { Ether } from './ether.js';
import mqtt from 'mqtt';
import { Codec, Flag, encodePacket, newStreamId } from '../../gateway/shared/channel/packet.js';
import { cw } from '../../gateway/shared/dsp/tones.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let speech: Pcm;

async function channel(t: Test, broker: TestBroker, name: string, ch = 'link'): Promise<OpenChannel> {
  const c = await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: ch, name, sender: name, source: 'radio', silenceMs: 1000 });
  t.teardown(() => c.close());
  return c;
}

async function gateway(t: Test, broker: TestBroker, ether: Ether, name: string, o: { transmit?: string; monitor?: string[]; config?: Record<string, unknown> } = {}) {
  const chans = new Map<string, OpenChannel>();
  for (const c of new Set([o.transmit ?? 'link', ...(o.monitor ?? ['link'])])) chans.set(c, await channel(t, broker, name, c));
  const radio = ether.radio(name);
  const bridge = new Bridge({
    radio: { name, ptt: radio.ptt, cos: radio.cos, input: radio.input, output: radio.output },
    transmit: chans.get(o.transmit ?? 'link')!.session,
    monitor: (o.monitor ?? ['link']).map((c) => chans.get(c)!.session),
    encoder: await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 }),
    frameMs: 20,
    framesPerPacket: 2,
    config: BridgeSchema.parse(o.config ?? {}),
    log: silent,
  });
  await bridge.start();
  t.teardown(() => bridge.stop());
  return { bridge, radio };
}

function observe(c: OpenChannel) {
  const overs: OverReport[] = [];
  const notices: string[] = [];
  c.session.on('overEnd', (r) => overs.push(r));
  c.session.on('notice', (_s, code) => notices.push(code));
  return { overs, notices };
}

async function setup(t: Test) {
  speech ??= await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const ether = new Ether();
  t.teardown(() => ether.close());
  return { broker, ether };
}

async function talk(t: Test, broker: TestBroker, seconds: number, ch = 'link') {
  const c = await channel(t, broker, 'base', ch);
  await sleep(150);
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const samples = new Int16Array(Math.round(16000 * seconds));
  for (let o = 0; o < samples.length; o += speech.samples.length) samples.set(speech.samples.subarray(0, Math.min(speech.samples.length, samples.length - o)), o);
  return sendPcm(c.session, enc, { sampleRate: 16000, samples }, { framesPerPacket: 2, frameMs: 20, fast: false });
}

t.test('PTT keys when the over’s first audio arrives, not on its START: the TX delay runs while the jitter buffer fills', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { config: { txDelayMs: 400 } });
  const c = await channel(t, broker, 'base');
  await sleep(200);
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const over = c.session.talk({ sampleRate: 16000, frameMs: 20, framesPerPacket: 2 });
  if ('busy' in over) throw new Error('channel busy');
  // The talker's first audio comes 600 ms after its START (a slow press, a slow link).
  await sleep(600);
  t.notOk(b.radio.ptt.keyed, 'a START alone does not key');
  const firstSent = performance.now();
  let keyedAt = 0;
  let firstWrite = 0;
  for (let k = 0; k < 25; k++) {
    const at = firstSent + k * 40;
    while (performance.now() < at) {
      if (!keyedAt && b.radio.ptt.keyed) keyedAt = performance.now();
      if (!firstWrite && b.radio.output.written > 0) firstWrite = performance.now();
      await sleep(1);
    }
    const pcm = speech.samples.subarray(16000 + k * 640, 16000 + (k + 1) * 640);
    over.send([enc.encode(pcm.subarray(0, 320)), enc.encode(pcm.subarray(320, 640))]);
  }
  over.end('done');
  while (!firstWrite && performance.now() - firstSent < 3000) {
    if (b.radio.output.written > 0) firstWrite = performance.now();
    await sleep(1);
  }
  t.ok(keyedAt > 0 && keyedAt - firstSent < 100, `keyed ${Math.round(keyedAt - firstSent)} ms after the first audio was sent`);
  // Keyed at arrival, the jitter buffer's wait overlaps the TX delay: audio goes out one TX delay
  // after keying, not a TX delay after it starts to play.
  t.ok(firstWrite > 0 && firstWrite - keyedAt < 400 + 40, `first audio to the transmitter ${Math.round(firstWrite - keyedAt)} ms after keying (TX delay 400 ms)`);
  await sleep(1500);
  t.notOk(b.radio.ptt.keyed, 'unkeyed after the over and its hang time');
  t.equal(b.radio.ptt.keyCount, 1);
});

t.test('an over that ends before any audio (a tap on the button) never keys', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { config: { hangMs: 200 } });
  const c = await channel(t, broker, 'base');
  await sleep(200);
  const over = c.session.talk({ sampleRate: 16000, frameMs: 20, framesPerPacket: 2 });
  if ('busy' in over) throw new Error('channel busy');
  await sleep(300);
  over.end('done');
  await sleep(500);
  t.equal(b.radio.ptt.keyCount, 0, 'never keyed');
  t.equal(b.bridge.counters.starvations, 0, 'not counted as starvation');
  t.equal(b.bridge.state, 'idle');
});

/** A hostile talker on a clear channel, publishing what it likes on its own topics. */
async function hostile(t: Test, broker: TestBroker, sender = 'mallory') {
  const client = await mqtt.connectAsync(broker.url, { clientId: `hostile-${sender}`, protocolVersion: 5 });
  t.teardown(() => client.endAsync());
  const base = `talkbridge/v1/link`;
  return {
    client,
    start(stream: string, o: { name?: string; t?: number } = {}) {
      const m = { v: 1, type: 'start', stream, t: o.t ?? Date.now(), name: o.name ?? 'Mallory', source: 'cli', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 };
      return client.publishAsync(`${base}/control/${sender}`, JSON.stringify(m), { qos: 1 });
    },
    end(stream: string, packets = 0) {
      return client.publishAsync(`${base}/control/${sender}`, JSON.stringify({ v: 1, type: 'end', stream, reason: 'done', packets }), { qos: 1 });
    },
    audio(stream: string, seq: number, frames: Uint8Array[], t0 = Date.now()) {
      const pkt = encodePacket({ flags: seq === 0 ? Flag.START : 0, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId: stream, seq, timestamp: t0 + seq * 40, keyEpoch: 0 }, frames);
      return client.publishAsync(`${base}/audio/${sender}`, Buffer.from(pkt), { qos: 0 });
    },
  };
}

/** Opus frames that cannot decode as one 20 ms frame: a TOC alone, the wrong length, broken framing. */
const undecodable = [Uint8Array.of(9 << 3), Uint8Array.of(11 << 3, 1, 2, 3, 4), Uint8Array.of((9 << 3) | 3, 0x41, 0xff, 0xff), Uint8Array.of((9 << 3) | 2, 200, 1, 2)];

t.test('audio that does not decode never keys the radio, over after over with fresh stream ids', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { config: { timeoutSeconds: 0 } });
  const m = await hostile(t, broker);
  await sleep(200);
  // Today's attack: a fresh over every 0.8 s, each a START and packets of valid header and framing.
  const until = performance.now() + 3000;
  for (let n = 0; performance.now() < until; n++) {
    const stream = newStreamId();
    await m.start(stream);
    for (let seq = 0; seq < 20 && performance.now() < until; seq++) {
      await m.audio(stream, seq, [undecodable[(n + seq) % 4]!, undecodable[(n + seq + 1) % 4]!]);
      await sleep(40);
    }
  }
  t.equal(b.radio.ptt.keyCount, 0, 'never keyed');
  t.equal(b.radio.output.written, 0, 'nothing transmitted');
  // The channel is still usable: a genuine over goes on the air.
  await talk(t, broker, 1.5);
  await sleep(800);
  t.equal(b.radio.ptt.keyCount, 1, 'a genuine over afterwards keys the radio');
});

t.test('a talker whose overs bring one packet of audio and then nothing keys the radio once, briefly', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { config: { timeoutSeconds: 0, hangMs: 0 } });
  const m = await hostile(t, broker);
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const good = [enc.encode(speech.samples.subarray(16000, 16320)), enc.encode(speech.samples.subarray(16320, 16640))];
  await sleep(200);
  let keyedMs = 0;
  let since = 0;
  const until = performance.now() + 5000;
  const poll = setInterval(() => {
    if (b.radio.ptt.keyed && !since) since = performance.now();
    if (!b.radio.ptt.keyed && since) (keyedMs += performance.now() - since), (since = 0);
  }, 2);
  t.teardown(() => clearInterval(poll));
  while (performance.now() < until) {
    const stream = newStreamId();
    await m.start(stream);
    await m.audio(stream, 0, good);
    for (let seq = 1; seq < 15; seq++) {
      await m.audio(stream, seq, [undecodable[0]!, undecodable[1]!]);
      await sleep(40);
    }
    // Ended properly, so the next over takes the floor at once.
    await m.end(stream, 15);
  }
  await sleep(600);
  clearInterval(poll);
  t.ok(b.radio.ptt.keyCount <= 2, `keyed ${b.radio.ptt.keyCount}× in 5 s of such overs`);
  // Each keying lasts the first-audio grace (200 ms) and the starvation time (300 ms).
  t.ok(keyedMs < 1500, `keyed ${Math.round(keyedMs)} ms in all`);
  t.ok(b.bridge.counters.starvations >= 1, 'unkeyed by starvation');
});

t.test('an over the broker held back and released is heard on the channel but not transmitted', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { config: { hangMs: 0 } });
  const obs = observe(await channel(t, broker, 'observer'));
  const a = await hostile(t, broker, 'alice');
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const frames = (k: number) => [enc.encode(speech.samples.subarray(k * 640, k * 640 + 320)), enc.encode(speech.samples.subarray(k * 640 + 320, (k + 1) * 640))];
  await sleep(200);
  const over = async (t0: number, paced: boolean) => {
    const stream = newStreamId();
    await a.start(stream, { name: 'Alice', t: t0 });
    for (let seq = 0; seq < 25; seq++) {
      await a.audio(stream, seq, frames(seq), t0);
      if (paced) await sleep(40);
    }
    await a.end(stream, 25);
  };
  // Alice's usual: an over straight through.
  await over(Date.now(), true);
  await sleep(800);
  t.equal(b.radio.ptt.keyCount, 1, 'her over on time is transmitted');
  // The broker held her next over 45 s and now releases it all at once.
  await over(Date.now() - 45_000, false);
  await sleep(1500);
  t.equal(b.radio.ptt.keyCount, 1, 'the held-back over is not transmitted');
  t.equal(b.bridge.counters.refusedStale, 1, 'counted as stale');
  t.equal(obs.overs.length, 2, 'listeners heard both overs');
  // And a talker never heard before, whose first over comes 45 s late.
  const m = await hostile(t, broker, 'mallory');
  const stream = newStreamId();
  const t0 = Date.now() - 45_000;
  await m.start(stream, { t: t0 });
  for (let seq = 0; seq < 25; seq++) await m.audio(stream, seq, frames(seq), t0);
  await m.end(stream, 25);
  await sleep(1500);
  t.equal(b.radio.ptt.keyCount, 1, 'not transmitted either');
  t.equal(b.bridge.counters.refusedStale, 2);
});

t.test('only the sender that owns an over can end or rename it', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b');
  const m = await hostile(t, broker);
  const obs = observe(await channel(t, broker, 'observer'));
  await sleep(200);
  let stream = '';
  const c = await channel(t, broker, 'base');
  c.session.on('floor', (h) => {
    if (!h?.self || stream) return;
    stream = h.stream;
    // Mallory sees the stream id on the wire and tries to cut and rename Base's over.
    void m.start(stream, { name: 'Not Base', t: h.t - 1000 }).then(() => m.end(stream, 1));
  });
  await sleep(150);
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const samples = speech.samples.subarray(0, 16000 * 2);
  const r = await sendPcm(c.session, enc, { sampleRate: 16000, samples }, { framesPerPacket: 2, frameMs: 20, fast: false });
  t.equal(r.status, 'done', 'Base sent its whole over');
  await sleep(800);
  const seen = obs.overs.find((o) => o.stream === stream);
  t.ok(seen, 'the observer heard the over');
  t.equal(seen?.name, 'base', 'under its own name');
  t.equal(seen?.reason, 'done', 'to its real end');
  t.ok((seen?.stats.played ?? 0) >= 95, `${seen?.stats.played} of 100 frames played`);
  t.equal(b.radio.ptt.keyCount, 1, 'transmitted once');
});

t.test('two gateways on one frequency and one channel: a network over is transmitted, never echoed back', async (t) => {
  const { broker, ether } = await setup(t);
  const a = await gateway(t, broker, ether, 'gw-a');
  const b = await gateway(t, broker, ether, 'gw-b');
  const obs = observe(await channel(t, broker, 'observer'));
  await sleep(200);
  const r = await talk(t, broker, 2);
  t.equal(r.status, 'done');
  await sleep(4000);
  t.same(
    obs.overs.map((o) => o.name),
    ['base'],
    'the channel carried only the original over',
  );
  // Whichever keys first opens the other's squelch; that one then holds off (half duplex), or both
  // transmit the same over when they key within the same moment. Either way, once each at most.
  t.ok(
    a.radio.ptt.keyCount <= 1 && b.radio.ptt.keyCount <= 1 && a.radio.ptt.keyCount + b.radio.ptt.keyCount >= 1,
    `the over went on the air (A keyed ${a.radio.ptt.keyCount}×, B ${b.radio.ptt.keyCount}×)`,
  );
  t.equal(a.bridge.counters.oversFromRadio + b.bridge.counters.oversFromRadio, 0, 'neither forwarded the other’s transmission');
  t.notOk(a.radio.ptt.keyed || b.radio.ptt.keyed, 'both unkeyed');
});

t.test('a handheld heard by both gateways reaches the channel once; nobody keys up on it', async (t) => {
  const { broker, ether } = await setup(t);
  const a = await gateway(t, broker, ether, 'gw-a');
  const b = await gateway(t, broker, ether, 'gw-b');
  const obs = observe(await channel(t, broker, 'observer'));
  await sleep(300);
  ether.transmit(resampleAll(speech.samples, 16000, 48000).subarray(0, 48000 * 3));
  while (ether.busy) await sleep(50);
  await sleep(3500);
  t.equal(obs.overs.length, 1, `one over on the channel (${obs.overs.map((o) => o.name).join(', ')})`);
  t.ok(['gw-a', 'gw-b'].includes(obs.overs[0]?.name ?? ''), 'from one of the gateways');
  t.ok(obs.overs[0]!.durationMs > 2500, `the whole transmission (${obs.overs[0]!.durationMs} ms)`);
  t.equal(a.radio.ptt.keyCount + b.radio.ptt.keyCount, 0, 'neither transmitted the other’s over back onto the frequency');
  t.equal(a.bridge.counters.refusedBusy + b.bridge.counters.refusedBusy, 1, 'the losing gateway refused the over: its radio was receiving');
});

t.test('half duplex, preempt policy: a network over stops forwarding the radio and goes on the air', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { transmit: 'other', monitor: ['link'], config: { busyPolicy: 'preempt' } });
  const other = observe(await channel(t, broker, 'observer', 'other'));
  await sleep(300);
  ether.transmit(resampleAll(speech.samples, 16000, 48000));
  await sleep(1000);
  t.equal(b.bridge.state, 'rx', 'forwarding the radio to "other"');
  void talk(t, broker, 2);
  await sleep(800);
  t.equal(b.bridge.state, 'tx', 'preempted: transmitting the network over');
  t.ok(b.radio.ptt.keyed);
  await sleep(500);
  t.match(other.overs, [{ name: 'gw-b', reason: 'preempted' }], 'the radio over on "other" ended as preempted');
});

t.test('half duplex, wait policy: a network over is held while the radio receives, then transmitted whole', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { transmit: 'other', monitor: ['link'], config: { busyPolicy: 'wait' } });
  await sleep(300);
  ether.transmit(resampleAll(speech.samples, 16000, 48000).subarray(0, 48000 * 3));
  await sleep(500);
  t.equal(b.bridge.state, 'rx', 'the radio is receiving');
  const over = talk(t, broker, 1.5);
  let keyedAt = 0;
  b.radio.ptt.on('state', (k) => k && !keyedAt && (keyedAt = Date.now()));
  const before = b.radio.output.written;
  while (ether.busy) await sleep(10);
  const quietAt = Date.now();
  await over;
  await sleep(2000);
  t.ok(keyedAt >= quietAt - 50, `keyed only once the radio was quiet (${keyedAt - quietAt} ms after)`);
  const seconds = (b.radio.output.written - before) / 48000;
  t.ok(seconds >= 1.4 && seconds < 2.5, `the whole held over went out (${seconds.toFixed(2)} s)`);
  t.equal(b.bridge.counters.oversToRadio, 1);
  t.equal(b.bridge.state, 'idle');
  t.notOk(b.radio.ptt.keyed);
});

t.test('courtesy tone, CW ID and an announcement go out in the hang, before the unkey', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', {
    config: { hangMs: 200, courtesyTone: true, cwId: { callsign: 'N0CALL', wpm: 40 }, announcement: { file: path.join(FIXTURES, 'speech-44k1-stereo.wav') } },
  });
  await sleep(200);
  let keyedFor = 0;
  let keyedAt = 0;
  b.radio.ptt.on('state', (k) => (k ? (keyedAt = Date.now()) : (keyedFor = Date.now() - keyedAt)));
  const before = b.radio.output.written;
  await talk(t, broker, 1);
  while (b.radio.ptt.keyed || !keyedFor) await sleep(50);
  const seconds = (b.radio.output.written - before) / 48000;
  const expected = 1 + 0.16 + cw('DE N0CALL', 48000, { wpm: 40 }).length / 48000 + 2;
  t.ok(Math.abs(seconds - expected) < 0.3, `over, tone, CW ID and announcement went out (${seconds.toFixed(2)} s of audio, ${expected.toFixed(2)} expected)`);
  t.ok(keyedFor >= seconds * 1000, `keyed through all of it (${keyedFor} ms)`);
  t.notOk(b.radio.ptt.keyed);
});

t.test('time-out timer: unkeys, says so on the channel, stays locked out until the channel is quiet', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b', { config: { timeoutSeconds: 2 } });
  const obs = observe(await channel(t, broker, 'observer'));
  const states: string[] = [];
  b.bridge.on('state', (_f, to) => states.push(to));
  await sleep(200);
  const started = Date.now();
  let unkeyedAt = 0;
  b.radio.ptt.on('state', (k) => !k && !unkeyedAt && (unkeyedAt = Date.now()));
  const over = talk(t, broker, 4.5);
  await sleep(3000);
  t.ok(unkeyedAt > 0, 'unkeyed');
  t.ok(Math.abs(unkeyedAt - started - 2000) < 500, `after about 2 s (${unkeyedAt - started} ms after the over started)`);
  t.equal(b.bridge.state, 'lockout', 'locked out while the over goes on');
  t.notOk(b.radio.ptt.keyed);
  await over;
  await sleep(1500);
  t.same(states, ['tx', 'lockout', 'idle'], 'tx → lockout → idle once quiet');
  t.same(obs.notices, ['timeout'], 'a notice went to the channel');
  t.equal(b.radio.ptt.keyCount, 1, 'never re-keyed for the rest of that over');
  t.equal(b.bridge.counters.timeouts, 1);
});

t.test('the sound card vanishes mid-over: unkey at once', async (t) => {
  const { broker, ether } = await setup(t);
  const b = await gateway(t, broker, ether, 'gw-b');
  await sleep(200);
  void talk(t, broker, 3);
  while (!b.radio.ptt.keyed) await sleep(10);
  await sleep(700);
  const at = Date.now();
  b.radio.output.lose();
  while (b.radio.ptt.keyed && Date.now() - at < 1000) await sleep(2);
  t.notOk(b.radio.ptt.keyed, `unkeyed ${Date.now() - at} ms after the device went away`);
  t.equal(b.bridge.state, 'idle');
  await sleep(2800);
  t.equal(b.radio.ptt.keyCount, 1, 'no re-key for the rest of that over');
});
