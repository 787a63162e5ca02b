/**
 * ChannelSession's timing rules on a manual clock (test/helpers/clock.ts): floor arbitration
 * whatever the arrival order, a late join, an event-loop stall, a talker who falls silent, an over
 * that ends before its first frame is due, and encrypted input handled in arrival order however
 * long each open takes. Real Opus frames through the in-memory broker; every time below is
 * simulated, so each case asserts in milliseconds and takes almost no real time.
 */
import t, { type Test } from 'tap';
import { ChannelSession, type AudioFrame, type OverReport, type SessionOptions, type TalkerInfo } from '../../gateway/shared/channel/session.js';
import { Flag } from '../../gateway/shared/channel/packet.js';
import type { Sealer } from '../../gateway/shared/channel/sealer.js';
import { ChannelTopics } from '../../gateway/shared/channel/topics.js';
import { ChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { generateKey } from '../../gateway/shared/crypto/keys.js';
import { createEncoder, decoderFactory } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { newStreamId } from '../../gateway/shared/channel/packet.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { ManualClock, settle } from '../helpers/clock.js';
import { MemoryBroker, Raw, joinReceiver } from '../helpers/pubsub.js';

const PREFIX = 'tbtest/v1';
const CHANNEL = 'clock';
const topics = new ChannelTopics(PREFIX, CHANNEL);
const decoders = await decoderFactory();
const speech = await readWav(new URL('../fixtures/speech-16k.wav', import.meta.url).pathname);
const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
/** 2 s of speech in 20 ms frames. */
const FRAMES = toFrames(speech.samples.subarray(0, 32000), enc.frameSamples, 1).map((f) => enc.encode(f));
enc.close();

type Ev =
  | { at: number; type: 'floor'; stream: string | null }
  | { at: number; type: 'start'; stream: string; name: string }
  | { at: number; type: 'audio'; stream: string; index: number; concealed: boolean }
  | { at: number; type: 'end'; stream: string; reason: OverReport['reason']; report: OverReport };

/** Everything a receiver reports, stamped with the manual clock. */
function record(s: ChannelSession, clock: ManualClock) {
  const ev: Ev[] = [];
  s.on('floor', (h: TalkerInfo | null) => ev.push({ at: clock.now(), type: 'floor', stream: h?.stream ?? null }));
  s.on('overStart', (i: TalkerInfo) => ev.push({ at: clock.now(), type: 'start', stream: i.stream, name: i.name }));
  s.on('audio', (f: AudioFrame) => ev.push({ at: clock.now(), type: 'audio', stream: f.stream, index: f.index, concealed: f.concealed }));
  s.on('overEnd', (r: OverReport) => ev.push({ at: clock.now(), type: 'end', stream: r.stream, reason: r.reason, report: r }));
  const of = <K extends Ev['type']>(type: K, stream?: string) =>
    ev.filter((e): e is Extract<Ev, { type: K }> => e.type === type && (stream === undefined || (e as { stream: string | null }).stream === stream));
  return { ev, of };
}

async function receiver(t: Test, broker: MemoryBroker, clock: ManualClock, o: Partial<SessionOptions> = {}) {
  const s = await joinReceiver(t, broker, { prefix: PREFIX, channel: CHANNEL, createDecoder: (d) => decoders(d), clock, ...o });
  return { s, ...record(s, clock) };
}

/** Sends packet `seq` of a 1-frame-per-packet over that started at wall time `t0`. */
function packet(raw: Raw, stream: string, t0: number, seq: number, last = false): void {
  raw.audio(stream, seq, t0 + seq * 20, 20, [FRAMES[seq % FRAMES.length]!], last ? Flag.END : 0);
}

/** A talker on the manual clock: its START now, then packets sent one every 20 ms by `send`. */
function talkerOver(broker: MemoryBroker, clock: ManualClock) {
  const raw = new Raw(broker, topics, 'talker');
  const stream = newStreamId();
  const t0 = clock.wall();
  raw.start(stream, { t: t0, name: 'Talker', frameMs: 20, fpp: 1 });
  return {
    raw,
    stream,
    t0,
    /** Packets `from`..`to - 1`, each followed by 20 ms; `last` marks the final one END. */
    async send(from: number, to: number, last = -1): Promise<void> {
      for (let seq = from; seq < to; seq++) {
        packet(raw, stream, t0, seq, seq === last);
        await clock.advance(20);
      }
    },
  };
}

t.test('floor: the earlier start wins whichever START arrives first; the later over is cut', async (t) => {
  const clock = new ManualClock();
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, clock);
  const yo = new Raw(broker, topics, 'yolanda');
  const xa = new Raw(broker, topics, 'xavier');
  const sy = newStreamId();
  const sx = newStreamId();
  const ty = clock.wall();
  // Xavier pressed 10 ms before Yolanda, but his START reaches us 5 ms after hers.
  const tx = ty - 10;
  yo.start(sy, { t: ty, name: 'Yolanda', frameMs: 20, fpp: 1 });
  packet(yo, sy, ty, 0);
  await clock.advance(5);
  xa.start(sx, { t: tx, name: 'Xavier', frameMs: 20, fpp: 1 });
  packet(xa, sx, tx, 0);
  // Xavier talks for 0.5 s, Yolanda for 1 s (both keep sending: each thinks it may have won).
  for (let seq = 1; seq < 50; seq++) {
    await clock.advance(20);
    if (seq < 25) packet(xa, sx, tx, seq, seq === 24);
    if (seq === 25) xa.end(sx, 25);
    packet(yo, sy, ty, seq, seq === 49);
  }
  yo.end(sy, 50);
  await clock.advance(1000);

  const floors = rx.of('floor').map((e) => e.stream);
  t.same(floors.slice(0, 2), [sy, sx], "Yolanda's START took the floor, Xavier's earlier one took it from her on arrival");
  t.equal(rx.of('floor')[1]!.at, 5, 'at the moment it arrived');
  t.notOk(
    rx.of('audio', sy).some((a) => a.at < rx.of('end', sx)[0]!.at),
    "none of Yolanda's audio played while Xavier held the floor",
  );
  const xs = rx.of('audio', sx);
  t.same(
    xs.map((a) => a.index),
    Array.from({ length: 25 }, (_, i) => i),
    "all of Xavier's 25 frames played, in order",
  );
  t.notOk(
    xs.some((a) => a.concealed),
    'none concealed',
  );
  t.equal(rx.of('end', sx)[0]?.reason, 'done');
  t.same(floors, [sy, sx, null], 'then the channel was clear: a pre-empted over does not come back');
  t.equal(rx.of('audio', sy).length, 0, 'Yolanda, pre-empted before her first frame was due, was never heard');
  t.ok((rx.s.counters['ended-stream'] ?? 0) >= 45, `and the rest of her packets were dropped (${rx.s.counters['ended-stream']})`);
});

t.test('late join: an over joined mid-way plays from the first packet heard to its end', async (t) => {
  const clock = new ManualClock();
  const broker = new MemoryBroker();
  const { raw, stream, send } = talkerOver(broker, clock);
  await send(0, 10);
  // We join now: the START and the first 10 packets went out before.
  const rx = await receiver(t, broker, clock);
  await send(10, 40, 39);
  raw.end(stream, 40);
  await clock.advance(500);

  const audio = rx.of('audio', stream);
  t.equal(audio[0]?.index, 10, 'playout starts at the first packet heard');
  t.same(
    audio.map((a) => a.index),
    Array.from({ length: 30 }, (_, i) => i + 10),
    'and plays every frame after it, in order',
  );
  t.equal(audio.filter((a) => a.concealed).length, 0, 'nothing concealed');
  const joinedAt = 200;
  t.ok(audio[0]!.at >= joinedAt + 10, `its first frame waited for the jitter buffer's depth (${audio[0]!.at - joinedAt} ms after the packet)`);
  t.equal(rx.of('start')[0]?.name, 'talker', 'without its START the talker is known by its id');
  const end = rx.of('end', stream)[0];
  t.equal(end?.reason, 'done', 'the END message ends it normally');
  t.equal(end?.report.stats.played, 30);
});

t.test('a stalled event loop: frames that arrived during the stall play instead of being concealed', async (t) => {
  const clock = new ManualClock();
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, clock);
  const { raw, stream, t0, send } = talkerOver(broker, clock);
  await send(0, 10);
  // The loop blocks for 100 ms (a GC, a busy machine). Five packets arrive meanwhile and wait in
  // the socket; when the loop runs again Node fires the overdue playout timer before it reads them.
  clock.stall(100);
  for (let seq = 10; seq < 15; seq++) packet(raw, stream, t0, seq);
  clock.fireDue();
  await settle();
  await send(15, 25, 24);
  raw.end(stream, 25);
  await clock.advance(500);

  // (After the stall the jitter it measured may make the buffer deeper: a stretch is a concealed
  // frame carrying the index of the frame it waits for.)
  const audio = rx.of('audio', stream);
  t.same(
    audio.filter((a) => !a.concealed).map((a) => a.index),
    Array.from({ length: 25 }, (_, i) => i),
    'every frame played once, in order',
  );
  t.same(
    audio.filter((a) => a.concealed && a.index < 15).map((a) => a.index),
    [],
    'none of the frames that waited out the stall was concealed',
  );
  t.equal(rx.s.counters.late ?? 0, 0, 'and none was dropped as late');
  t.equal(rx.of('end', stream)[0]?.reason, 'done');
});

t.test('a talker who falls silent loses the floor silenceMs after it was last heard', async (t) => {
  const clock = new ManualClock();
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, clock, { silenceMs: 1000 });
  const { stream, send } = talkerOver(broker, clock);
  await send(0, 10);
  // The last packet came at 180 ms; then nothing, no END.
  await clock.advance(3000);
  const released = rx.of('floor').find((e) => e.stream === null);
  t.ok(released, 'the floor is released');
  // Heard until its last packet's audio was due: 180 ms + one frame, give or take the depth.
  t.ok(released!.at >= 1180 && released!.at <= 1180 + 40, `1 s after the last audio (at ${released!.at} ms)`);
  t.equal(rx.of('end', stream)[0]?.reason, 'silence', 'the over ends as silent');
  t.equal(rx.of('audio', stream).filter((a) => !a.concealed).length, 10, 'after playing what it sent');
  t.equal(rx.s.holder, null);
});

t.test('an over that ends before its first frame is due still plays whole, then ends', async (t) => {
  const clock = new ManualClock();
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, clock);
  const talker = new Raw(broker, topics, 'talker');
  const stream = newStreamId();
  const t0 = clock.wall();
  // A 60 ms over, all of it (START, three packets, END) arriving at once.
  talker.start(stream, { t: t0, name: 'Talker', frameMs: 20, fpp: 1 });
  for (let seq = 0; seq < 3; seq++) packet(talker, stream, t0, seq, seq === 2);
  talker.end(stream, 3);
  await clock.advance(1);
  t.equal(rx.of('audio').length, 0, 'nothing plays before the jitter buffer has its depth');
  t.equal(rx.s.holder?.stream, stream, 'but the over holds the floor');
  await clock.advance(500);
  const audio = rx.of('audio', stream);
  t.same(
    audio.map((a) => [a.index, a.concealed]),
    [
      [0, false],
      [1, false],
      [2, false],
    ],
    'all three frames played',
  );
  const end = rx.of('end', stream)[0];
  t.equal(end?.reason, 'done');
  t.ok(end!.at >= audio[2]!.at, 'and the over ended after its last frame');
  t.ok(rx.of('start', stream)[0]!.at <= audio[0]!.at, 'overStart came first');
  t.equal(end?.report.stats.played, 3);
  t.equal(rx.s.holder, null);
});

/**
 * A Sealer around ChannelCrypto that tells the test when WebCrypto (real, asynchronous) is busy,
 * and makes opening control messages take `controlOpenMs` of the manual clock (a slow phone).
 */
class Timed implements Sealer {
  inflight = 0;
  constructor(
    private readonly c: ChannelCrypto,
    private readonly clock: ManualClock,
    private readonly controlOpenMs = 0,
  ) {}
  get channel() {
    return this.c.channel;
  }
  get replay() {
    return this.c.replay;
  }
  isTrusted: Sealer['isTrusted'] = (s) => this.c.isTrusted(s);
  precheckAudio: Sealer['precheckAudio'] = (p, now) => this.c.precheckAudio(p, now);
  precheckMessage: Sealer['precheckMessage'] = (k, p, now) => this.c.precheckMessage(k, p, now);
  private async busy<T>(p: Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await p;
    } finally {
      this.inflight--;
    }
  }
  sealAudio: Sealer['sealAudio'] = (...a) => this.busy(this.c.sealAudio(...a));
  sealMessage: Sealer['sealMessage'] = (...a) => this.busy(this.c.sealMessage(...a));
  openAudio: Sealer['openAudio'] = (...a) => this.busy(this.c.openAudio(...a));
  openMessage: Sealer['openMessage'] = async (...a) => {
    const r = await this.busy(this.c.openMessage(...a));
    if (this.controlOpenMs && a[0] === 'control') await new Promise<void>((done) => this.clock.setTimeout(done, this.controlOpenMs));
    return r;
  };
}

t.test('encrypted input is handled in arrival order, however long each open takes', async (t) => {
  const clock = new ManualClock();
  const broker = new MemoryBroker();
  const key = generateKey();
  const mk = () => new ChannelCrypto({ channel: CHANNEL, keys: [key] });
  const sealers = [new Timed(mk(), clock), new Timed(mk(), clock, 100)];
  const [txSealer, rxSealer] = sealers as [Timed, Timed];
  /** Waits (in real time) until WebCrypto has nothing in flight on either side. */
  const quiet = async () => {
    for (let i = 0; i < 5000; i++) {
      await settle();
      if (sealers.every((s) => s.inflight === 0)) {
        await settle();
        if (sealers.every((s) => s.inflight === 0)) return;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    throw new Error('WebCrypto never went quiet');
  };
  const step = async (ms: number) => {
    for (let i = 0; i < ms; i++) {
      await quiet();
      await clock.advance(1);
    }
  };
  const rx = await receiver(t, broker, clock, { crypto: rxSealer });
  const talker = new ChannelSession(broker.client(), {
    prefix: PREFIX,
    channel: CHANNEL,
    sender: 'talker',
    name: 'Talker',
    source: 'web',
    silenceMs: 1000,
    createDecoder: (d) => decoders(d),
    clock,
    crypto: txSealer,
  });
  await talker.join();
  t.teardown(() => talker.leave());
  await step(10);

  // START, eight packets and END sealed back to back; the START takes 100 ms to open. Nothing
  // behind it may overtake it: handled as each open finished, the audio would start the over
  // as a late join before its START was read.
  const started = clock.now();
  const over = talker.talk({ sampleRate: 16000, frameMs: 20, framesPerPacket: 1 });
  if ('busy' in over) throw new Error('channel busy');
  for (let i = 0; i < 8; i++) over.send([FRAMES[i]!], i === 7);
  await step(1000);

  const stream = over.stream;
  const audio = rx.of('audio', stream);
  t.same(
    audio.map((a) => [a.index, a.concealed]),
    Array.from({ length: 8 }, (_, i) => [i, false]),
    'all eight frames played, none concealed',
  );
  t.ok(audio[0]!.at - started >= 100, `the first frame waited for the START (${audio[0]!.at - started} ms)`);
  t.equal(rx.of('start', stream)[0]?.name, 'Talker', 'under the name its START gave');
  t.equal(rx.of('end', stream)[0]?.reason, 'done', 'the over ended normally');
  t.same(rx.s.counters, {}, 'nothing dropped');
});
