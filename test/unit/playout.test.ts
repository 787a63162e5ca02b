/**
 * Playout for outputs that queue (SessionOptions.playAheadMs / concealLateMs, what a gateway uses):
 * once an over plays, a frame goes out when its packet arrives instead of at its due time, so a
 * 20 ms packet costs one wake-up instead of two; the over's first frame still waits for the jitter
 * buffer's depth; a missing frame is concealed a little late, so that a packet arriving meanwhile
 * still plays. Real Opus frames through the in-memory broker, real timers.
 */
import t, { type Test } from 'tap';
import { type AudioFrame, type OverReport, QUEUED_PLAYOUT, type SessionOptions } from '../../gateway/shared/channel/session.js';
import { encodeJson } from '../../gateway/shared/channel/control.js';
import { Codec, Flag, encodePacket, newStreamId } from '../../gateway/shared/channel/packet.js';
import { ChannelTopics } from '../../gateway/shared/channel/topics.js';
import { createEncoder, decoderFactory } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { MemoryBroker, joinReceiver } from '../helpers/pubsub.js';

const PREFIX = 'tbtest/v1';
const CHANNEL = 'playout';
const topics = new ChannelTopics(PREFIX, CHANNEL);
const speech = await readWav(new URL('../fixtures/speech-16k.wav', import.meta.url).pathname);
const decoders = await decoderFactory();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
/** 2 s of speech in 20 ms frames. */
const FRAMES = toFrames(speech.samples.subarray(0, 32000), enc.frameSamples, 1).map((f) => enc.encode(f));
enc.close();

interface Sent {
  seq: number;
  at: number;
}
interface Heard {
  index: number;
  concealed: boolean;
  at: number;
}

/** A receiving session; `queued`: with a gateway's playout (QUEUED_PLAYOUT). */
async function receiver(t: Test, broker: MemoryBroker, queued: boolean, o: Partial<SessionOptions> = {}) {
  const s = await joinReceiver(t, broker, { prefix: PREFIX, channel: CHANNEL, createDecoder: (d) => decoders(d), ...(queued ? QUEUED_PLAYOUT : {}), ...o });
  const heard: Heard[] = [];
  s.on('audio', (f: AudioFrame) => heard.push({ index: f.index, concealed: f.concealed, at: performance.now() }));
  const ended = new Promise<OverReport>((r) => s.once('overEnd', r));
  return { s, heard, ended };
}

/**
 * One over of 1-frame packets in real time. `delay` holds a packet back by that many ms;
 * `skip` never sends it.
 */
async function over(broker: MemoryBroker, o: { delay?: Map<number, number>; skip?: Set<number> } = {}): Promise<Sent[]> {
  const c = broker.client();
  const stream = newStreamId();
  const t0 = Date.now();
  c.publish(topics.topic('control', 'tx'), encodeJson({ v: 1, type: 'start', stream, t: t0, name: 'Talker', source: 'cli', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 1 }), {
    qos: 1,
    retain: false,
  });
  const sent: Sent[] = [];
  const late: Promise<void>[] = [];
  const mono = performance.now();
  for (let seq = 0; seq < FRAMES.length; seq++) {
    const wait = mono + (seq + 1) * 20 - performance.now();
    if (wait > 0) await sleep(wait);
    const last = seq === FRAMES.length - 1;
    const p = encodePacket(
      { flags: (seq === 0 ? Flag.START : 0) | (last ? Flag.END : 0), codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId: stream, seq, timestamp: t0 + seq * 20, keyEpoch: 0 },
      [FRAMES[seq]!],
    );
    const send = () => {
      sent.push({ seq, at: performance.now() });
      c.publish(topics.topic('audio', 'tx'), p, { qos: 0, retain: false });
    };
    if (o.skip?.has(seq)) continue;
    const d = o.delay?.get(seq);
    if (d) late.push(sleep(d).then(send));
    else send();
  }
  await Promise.all(late);
  c.publish(topics.topic('control', 'tx'), encodeJson({ v: 1, type: 'end', stream, reason: 'done', packets: FRAMES.length }), { qos: 1, retain: false });
  return sent;
}

/** How long after its packet arrived each frame went out, ms (packets that came). */
const waits = (sent: Sent[], heard: Heard[]) => sent.map((p) => heard.find((h) => h.index === p.seq && !h.concealed)!.at - p.at);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

t.test('an output that queues gets each frame on arrival; the first still waits for the jitter depth', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, true);
  const sent = await over(broker);
  const end = await rx.ended;
  t.equal(end.stats.played, FRAMES.length, 'every frame played');
  t.equal(end.stats.concealed, 0);
  const w = waits(sent, rx.heard);
  t.ok(w[0]! >= 9, `the first frame waited ${w[0]!.toFixed(1)} ms (the jitter buffer's depth, at least minDelayMs 10 less a timer's rounding)`);
  const rest = median(w.slice(1));
  t.ok(rest < 3, `later frames went out ${rest.toFixed(1)} ms (median) after their packet`);
  t.comment(`first frame after ${w[0]!.toFixed(1)} ms; the rest after ${rest.toFixed(2)} ms (median)`);
});

t.test('an output that plays at once (the default) gets each frame at its due time', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, false);
  const sent = await over(broker);
  await rx.ended;
  const rest = median(waits(sent, rx.heard).slice(1));
  t.ok(rest >= 7, `frames waited ${rest.toFixed(1)} ms (median) for their due time`);
});

t.test('a packet up to concealLateMs late still plays; one that never comes is concealed', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, true);
  // 24 ms late: after its due time (the jitter depth is at least 14 ms), within concealLateMs of it.
  const sent = await over(broker, { delay: new Map([[30, 24]]), skip: new Set([60]) });
  const end = await rx.ended;
  const f30 = rx.heard.filter((h) => h.index === 30);
  t.same(
    f30.map((h) => h.concealed),
    [false],
    'frame 30, 24 ms late, played as sent',
  );
  t.equal(end.stats.late, 0, 'nothing counted late');
  const f60 = rx.heard.filter((h) => h.index === 60);
  // More than once when the jitter buffer stretches there (frame 30's lateness raised its estimate).
  t.ok(f60.length >= 1 && f60.every((h) => h.concealed), `frame 60, never sent, concealed (${f60.length}×)`);
  // Due times follow from the first frame's: it plays at its due time.
  const due0 = rx.heard.find((h) => h.index === 0)!.at;
  const waited = f60[0]!.at - (due0 + 60 * 20);
  t.ok(waited >= QUEUED_PLAYOUT.concealLateMs - 5, `the missing frame was concealed ${waited.toFixed(1)} ms after its due time, giving it concealLateMs to come`);
  t.equal(end.stats.played, FRAMES.length - 1, 'every frame sent played');
  t.equal(end.stats.concealed - end.stats.stretched, 1, 'one frame concealed for good');
  t.equal(sent.length, FRAMES.length - 1);
});

t.test('while an over plays on arrival, the session arms a timer every few packets, not one per packet', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, true);
  let armed = 0;
  const real = globalThis.setTimeout;
  // Timers the session arms (the playout's and the floor's); the test's own pacing is left out.
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    if (new Error().stack!.includes('channel/session')) armed++;
    return real(fn, ms);
  }) as typeof setTimeout;
  t.teardown(() => void (globalThis.setTimeout = real));
  await over(broker);
  await rx.ended;
  globalThis.setTimeout = real;
  const perPacket = armed / FRAMES.length;
  t.ok(perPacket < 0.5, `${armed} timers for ${FRAMES.length} packets (${perPacket.toFixed(2)} per packet; one per packet without playAheadMs)`);
});

t.test('the gap between frames handed out stays inside the PTT watchdog, however deep the jitter buffer', async (t) => {
  // A bridge beats the PTT guard with every frame handed out (concealed ones too); the guard's
  // watchdog is 150 ms by default. With a 150 ms jitter depth, frames wait until playAheadMs
  // before their due time, so a lost packet is not a gap of the whole depth plus concealLateMs.
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, true, { jitter: { minDelayMs: 150 } });
  await over(broker, { skip: new Set([40, 70, 71]) });
  const end = await rx.ended;
  t.equal(end.stats.played, FRAMES.length - 3);
  const at = rx.heard.map((h) => h.at);
  let gap = 0;
  for (let i = 2; i < at.length; i++) gap = Math.max(gap, at[i]! - at[i - 1]!);
  const bound = QUEUED_PLAYOUT.playAheadMs + 20 + QUEUED_PLAYOUT.concealLateMs;
  t.ok(gap < 150, `longest gap between frames handed out ${gap.toFixed(1)} ms (by design at most ${bound} ms, plus timer lateness)`);
});
