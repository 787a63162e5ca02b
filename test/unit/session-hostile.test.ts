/**
 * ChannelSession against hostile or unusual input (issue #16, commit b90b883): a burst over is not
 * cut by the floor's silence timer, competing overs cost bounded memory, streams belong to their
 * sender, presence has a freshness bound and a size bound, and audio that cannot decode never
 * claims the floor or makes a gateway key. Real Opus frames throughout (the native encoder and the
 * decoder a gateway uses), through an in-memory broker (test/helpers/pubsub.ts); real timers, so
 * each case waits only as long as the audio it plays.
 */
import t, { type Test } from 'tap';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ChannelSession, type AudioFrame, type OverReport, type SessionOptions, type TalkerInfo, systemClock } from '../../gateway/shared/channel/session.js';
// Namespace imports: what b90b883 added is read as a property, so this file still loads (and its
// tests fail, rather than the import) on the code before it.
import * as control from '../../gateway/shared/channel/control.js';
import * as jitter from '../../gateway/shared/channel/jitter.js';
import { Flag, newStreamId } from '../../gateway/shared/channel/packet.js';
import { ChannelTopics } from '../../gateway/shared/channel/topics.js';
import { type FrameEncoder, concealmentToc } from '../../gateway/shared/codec/codec.js';
import { createEncoder, decoderFactory } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { sendPcm, toFrames } from '../../gateway/src/talk/send.js';
import { MemoryBroker, Raw, joinReceiver } from '../helpers/pubsub.js';

const PREFIX = 'tbtest/v1';
const CHANNEL = 'hostile';
const topics = new ChannelTopics(PREFIX, CHANNEL);
const speech = await readWav(new URL('../fixtures/speech-16k.wav', import.meta.url).pathname);
const decoders = await decoderFactory();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const turn = () => new Promise<void>((r) => setImmediate(r));

/** Encodes the first `seconds` of the speech fixture (looped) into frames of `frameMs`. */
async function encodeSpeech(frameMs: 2.5 | 10 | 20, seconds: number, framesPerPacket: number): Promise<Uint8Array[]> {
  const enc: FrameEncoder = await createEncoder({ sampleRate: 16000, frameMs, bitrate: 16000, complexity: 5 });
  const want = Math.round(16000 * seconds);
  const pcm = new Int16Array(want);
  for (let o = 0; o < want; o += speech.samples.length) pcm.set(speech.samples.subarray(0, Math.min(speech.samples.length, want - o)), o);
  const frames = toFrames(pcm, enc.frameSamples, framesPerPacket).map((f) => enc.encode(f));
  enc.close();
  return frames;
}

/** Counts what a session plays, per stream, and what it says about it. */
function record(s: ChannelSession) {
  const r = {
    played: new Map<string, number>(),
    concealed: new Map<string, number>(),
    ends: [] as OverReport[],
    audible: [] as TalkerInfo[],
    floors: [] as Array<TalkerInfo | null>,
    overEnd(stream: string, ms = 10_000): Promise<OverReport> {
      const done = r.ends.find((e) => e.stream === stream);
      if (done) return Promise.resolve(done);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => (off(), reject(new Error(`no overEnd for ${stream} within ${ms} ms`))), ms);
        const off = s.on('overEnd', (e) => {
          if (e.stream !== stream) return;
          clearTimeout(timer);
          off();
          resolve(e);
        });
      });
    },
  };
  s.on('audio', (f: AudioFrame) => {
    const m = f.concealed ? r.concealed : r.played;
    m.set(f.stream, (m.get(f.stream) ?? 0) + 1);
  });
  s.on('overEnd', (e) => r.ends.push(e));
  s.on('floor', (h) => r.floors.push(h));
  // 'audible' is new in b90b883: on the code before it, this listener is never called.
  s.on('audible', (i) => r.audible.push({ ...i }));
  return r;
}

const receiver = (t: Test, broker: MemoryBroker, o: Partial<SessionOptions> = {}) => joinReceiver(t, broker, { prefix: PREFIX, channel: CHANNEL, createDecoder: (d) => decoders(d), ...o });

type Tracked = { info: TalkerInfo; jb: jitter.JitterBuffer };
/** The session's overs in progress (a private field: the bound under test has no public view). */
const incoming = (s: ChannelSession) => (s as unknown as { incoming: { size: number; values(): Iterable<Tracked> } }).incoming;

t.test('a burst over (3 s of packets at once, send --fast) plays to its end: the silence timer does not cut it', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, { silenceMs: 1000 });
  const rec = record(rx);
  const tx = new ChannelSession(broker.client(), { prefix: PREFIX, channel: CHANNEL, sender: 'fast', name: 'Fast', source: 'cli', silenceMs: 1000, createDecoder: (d) => decoders(d) });
  await tx.join();
  t.teardown(() => tx.leave());
  await sleep(20);

  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const started = performance.now();
  let stream = '';
  tx.once('floor', (h) => (stream = h?.stream ?? ''));
  const res = await sendPcm(tx, enc, { sampleRate: 16000, samples: speech.samples.subarray(0, 3 * 16000) }, { framesPerPacket: 2, frameMs: 20, fast: true });
  const sendMs = performance.now() - started;
  t.equal(res.status, 'done');
  const sent = res.packets * 2;
  t.equal(sent, 150, '3 s of 20 ms frames');
  t.ok(sendMs < 1000, `all 75 packets left within ${sendMs.toFixed(0)} ms (a burst, not real time)`);

  const end = await rec.overEnd(stream, 8000);
  const wall = performance.now() - started;
  t.equal(end.reason, 'done', 'ended by its END once played out, not by silence');
  t.equal(rec.played.get(stream), sent, `all ${sent} frames played`);
  t.equal(end.stats.played, sent);
  t.equal(end.stats.lost, 0);
  t.ok(end.durationMs >= 3000, `played for ${end.durationMs} ms`);
  t.ok(wall >= 2800, `over lasted ${wall.toFixed(0)} ms of wall time, far past silenceMs (1000) after the last packet`);
  t.equal(rx.counters['buffer-full'] ?? 0, 0, 'a 3 s burst fits in the jitter buffer');
  t.comment(`burst: sent ${sent} frames in ${sendMs.toFixed(0)} ms; played ${rec.played.get(stream)} (concealed ${rec.concealed.get(stream) ?? 0}) over ${wall.toFixed(0)} ms; end ${end.reason}`);
});

t.test('competing overs are bounded: 10 senders flooding 2.5 ms frames cost bounded memory; the holder still plays', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker);
  const rec = record(rx);
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const heap = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };

  // The holder: an ordinary 4 s over in real time, 20 ms frames, 2 per packet.
  const holderFrames = await encodeSpeech(20, 4, 2);
  // The flood: 2.5 ms frames, 6 per packet (15 ms each), 120 s of audio per over.
  const SENDERS = 10;
  const OVERS_EACH = 3;
  const FLOOD_SECONDS = 120;
  const floodFrames = await encodeSpeech(2.5, 10, 6);
  const packetsPerOver = (FLOOD_SECONDS * 1000) / 15;
  const framesPerSecond = 400;
  const floodBytes = floodFrames.reduce((n, f) => n + f.length, 0) / floodFrames.length;

  const holder = new Raw(broker, topics, 'holder');
  const holderStream = newStreamId();
  const holderT = Date.now();
  const holderDone = holder.over(holderStream, holderFrames, { frameMs: 20, fpp: 2, name: 'Holder', t: holderT });
  while (!rx.holder) await sleep(5);
  t.equal(rx.holder.stream, holderStream);
  const before = heap();

  const flooders = Array.from({ length: SENDERS }, (_, i) => new Raw(broker, topics, `flood${i}`));
  // Later starts than the holder's: they never win the floor, so everything they send only buffers.
  const overs = flooders.flatMap((f) => Array.from({ length: OVERS_EACH }, () => ({ f, stream: newStreamId(), t: holderT + 1000 })));
  for (const o of overs) o.f.start(o.stream, { t: o.t, name: o.f.sender, frameMs: 2.5, fpp: 6 });
  let maxOvers = 0;
  let maxPerSender = 0;
  let maxBytes = 0;
  const check = () => {
    const inc = incoming(rx);
    maxOvers = Math.max(maxOvers, inc.size);
    const per = new Map<string, number>();
    for (const o of inc.values()) {
      per.set(o.info.sender, (per.get(o.info.sender) ?? 0) + 1);
      maxBytes = Math.max(maxBytes, o.jb.bufferedBytes ?? Infinity);
    }
    for (const n of per.values()) maxPerSender = Math.max(maxPerSender, n);
  };
  await turn();
  check();
  const BATCH = 40; // packets per over per turn: 600 ms of audio
  const floodStart = performance.now();
  for (let seq = 0; seq < packetsPerOver; seq += BATCH) {
    for (const o of overs) {
      for (let s = seq; s < Math.min(seq + BATCH, packetsPerOver); s++) {
        const f = (s * 6) % (floodFrames.length - 6);
        o.f.audio(o.stream, s, o.t + s * 15, 2.5, floodFrames.slice(f, f + 6));
      }
    }
    await turn();
    check();
  }
  const floodMs = performance.now() - floodStart;
  const after = heap();
  const grew = after - before;
  const tracked = incoming(rx).size;

  const holderSent = await holderDone;
  const end = await rec.overEnd(holderStream, 10_000);
  const unbounded = SENDERS * OVERS_EACH * FLOOD_SECONDS * framesPerSecond * (floodBytes + jitter.FRAME_OVERHEAD);
  t.comment(
    `flood: ${overs.length} overs x ${packetsPerOver} packets (${(floodBytes).toFixed(1)} B/frame) in ${floodMs.toFixed(0)} ms; ` +
      `max ${maxOvers} overs tracked, ${maxPerSender} per sender, ${maxBytes} B in one buffer; heap +${(grew / 2 ** 20).toFixed(1)} MiB ` +
      `(unbounded would hold ${(unbounded / 2 ** 20).toFixed(0)} MiB by the maxBytes measure); counters ${JSON.stringify(rx.counters)}`,
  );
  t.comment(`holder: sent ${holderSent}, played ${end.stats.played}, concealed ${end.stats.concealed}, late ${end.stats.late}, reason ${end.reason}`);

  t.ok(maxOvers <= 8, `at most 8 overs tracked (max ${maxOvers})`);
  t.ok(maxPerSender <= 2, `at most 2 per sender (max ${maxPerSender})`);
  t.ok(tracked <= 8, `${tracked} tracked after the flood`);
  t.equal(jitter.JITTER_DEFAULTS.maxBytes, 192 * 1024);
  t.ok(maxBytes <= jitter.JITTER_DEFAULTS.maxBytes, `each jitter buffer within ${jitter.JITTER_DEFAULTS.maxBytes} B (max ${maxBytes})`);
  t.ok(maxBytes > jitter.JITTER_DEFAULTS.maxBytes - 2048, 'and the bound was reached: the flood filled them');
  t.ok((rx.counters['overs-dropped'] ?? 0) >= overs.length - 7, `overs-dropped ${rx.counters['overs-dropped']}`);
  t.ok((rx.counters['buffer-full'] ?? 0) > 0, `buffer-full ${rx.counters['buffer-full']}`);
  t.ok(grew < 20 * 2 ** 20, `heap grew ${(grew / 2 ** 20).toFixed(1)} MiB (< 20 MiB)`);
  t.equal(end.reason, 'done', "the holder's over ends by its END");
  t.equal(end.name, 'Holder');
  t.ok(end.stats.played >= holderSent * 0.95, `holder played ${end.stats.played} of ${holderSent} frames`);
  t.equal(end.stats.played + end.stats.concealed >= holderSent, true, 'and ran its full length');
});

t.test('a stream belongs to its sender: START and END for it from anyone else are refused', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker);
  const rec = record(rx);
  const alice = new Raw(broker, topics, 'alice');
  const mallory = new Raw(broker, topics, 'mallory');
  const frames = await encodeSpeech(20, 2, 2);
  const stream = newStreamId();
  const aliceT = Date.now();
  const done = alice.over(stream, frames, { frameMs: 20, fpp: 2, name: 'Alice', t: aliceT });
  while (rec.played.get(stream) === undefined) await sleep(5);
  t.equal(rx.holder?.name, 'Alice');

  // Mallory renames Alice's over and tries to end it, and injects audio into it.
  mallory.start(stream, { t: aliceT - 5000, name: 'Mallory', frameMs: 20, fpp: 2, priority: 9 });
  mallory.end(stream, 3, 'done');
  mallory.audio(stream, 1000, aliceT + 20_000, 20, frames.slice(0, 2));
  await sleep(100);
  t.equal(rx.counters['stream-sender'], 3, "START, END and audio for Alice's stream from mallory all refused");
  t.equal(rx.holder?.stream, stream, 'the over still holds the floor');
  t.equal(rx.holder?.name, 'Alice', 'under its own name');
  t.equal(rec.ends.length, 0, 'not ended by the foreign END');

  const sent = await done;
  const end = await rec.overEnd(stream);
  t.equal(end.reason, 'done');
  t.equal(end.name, 'Alice');
  t.equal(end.sender, 'alice');
  t.equal(end.stats.played, sent, `all ${sent} frames played`);
  t.equal(rec.played.get(stream), sent);
  t.equal(end.stats.lost, 0);
  t.same(
    rec.floors.map((h) => h?.name ?? null),
    ['Alice', null],
    'the floor went to Alice and back to nobody, never to Mallory',
  );
  t.comment(`ownership: counters ${JSON.stringify(rx.counters)}; played ${end.stats.played}/${sent}, ${end.durationMs} ms`);
});

t.test('presence: stale announcements are ignored, at most 256 are kept, ours is re-announced with `at`', async (t) => {
  const STALE = control.PRESENCE_STALE_MS;
  const REFRESH = control.PRESENCE_REFRESH_MS;
  t.equal(STALE, 15 * 60_000, 'stale after 15 min');
  t.equal(REFRESH, 5 * 60_000, 're-announced every 5 min');
  const broker = new MemoryBroker();
  let skew = 0;
  const clock = { ...systemClock, wall: () => Date.now() + skew };

  // What we announce, as everyone else sees it.
  const watcher = broker.client();
  const ours: control.Presence[] = [];
  watcher.on('message', (topic: string, payload: Uint8Array) => {
    if (topic === topics.topic('presence', 'rx') && payload.length) ours.push(JSON.parse(Buffer.from(payload).toString()) as control.Presence);
  });
  watcher.subscribe(topics.topic('presence', 'rx'), { qos: 1 });

  // The session's 5-minute refresh timer, caught as it is set so the test can run it now.
  let refresh: (() => void) | null = null;
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms?: number, ...rest: unknown[]) => {
    if (ms === REFRESH) refresh = fn;
    return realSetTimeout(fn, ms, ...rest);
  }) as typeof setTimeout;
  let rx: ChannelSession;
  try {
    rx = await receiver(t, broker, { clock });
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  const gone: string[] = [];
  rx.on('presence', (sender, p) => p === null && gone.push(sender));
  await sleep(10);
  t.equal(ours.length, 1, 'announced on join');
  const joinedAt = ours[0]!.since;
  t.equal(ours[0]!.at, joinedAt, 'with `at`, the time of the announcement');

  const now = Date.now();
  const others = new Raw(broker, topics, 'x');
  const p = (name: string, since: number, at?: number) => ({ v: 1, name, source: 'web', since, software: 'test', ...(at === undefined ? {} : { at }) });
  others.presence(p('Stale at', now - 60 * 60_000, now - STALE - 60_000), 'stale-at');
  others.presence(p('Stale since', now - STALE - 60_000), 'stale-since');
  others.presence(p('Fresh at', now - 60 * 60_000, now - 60_000), 'fresh-at');
  others.presence(p('Fresh since', now - 60_000), 'fresh-since');
  await sleep(10);
  t.equal(rx.counters['stale-presence'], 2, 'an old `at`, and an old `since` without `at`, are stale');
  t.notOk(rx.online.has('stale-at'));
  t.notOk(rx.online.has('stale-since'));
  t.ok(rx.online.has('fresh-at'), 'a long-online member that re-announced recently is shown');
  t.ok(rx.online.has('fresh-since'));
  t.ok(rx.online.has('rx'), 'and we are on our own list');

  const known = rx.online.size;
  for (let i = 0; i < 300; i++) others.presence(p(`M${i}`, now), `m${String(i).padStart(3, '0')}`);
  await sleep(10);
  t.equal(rx.online.size, 256, 'at most 256 shown');
  t.equal(rx.counters['presence-full'], 300 - (256 - known), `the other ${300 - (256 - known)} refused`);
  others.presence(p('Fresh since, renamed', now), 'fresh-since');
  await sleep(10);
  t.equal(rx.online.get('fresh-since')?.name, 'Fresh since, renamed', 'a member already shown may still update when the list is full');
  t.equal(rx.counters['presence-full'], 300 - (256 - known));

  // Ten minutes on: the refresh re-announces us (same `since`, new `at`) and keeps fresh members.
  t.ok(refresh, 'the session set its refresh timer');
  skew = 10 * 60_000;
  refresh!();
  await sleep(10);
  t.equal(ours.length, 2, 're-announced');
  t.equal(ours[1]!.since, joinedAt, '`since` is still when we came online');
  t.ok(ours[1]!.at! - joinedAt >= 10 * 60_000, `\`at\` moved on by ${ours[1]!.at! - joinedAt} ms`);
  t.equal(rx.online.size, 256, 'nobody expired yet');
  t.equal(gone.length, 0);

  // Twenty minutes on: whoever did not re-announce within 15 min expires; we did (at +10 min).
  skew = 20 * 60_000;
  refresh!();
  await sleep(10);
  t.equal(ours.length, 3);
  t.same([...rx.online.keys()], ['rx'], 'only we are left');
  t.equal(gone.length, 255, 'the 255 others expired (announced as gone)');
  t.comment(`presence: counters ${JSON.stringify(rx.counters)}; announcements ${JSON.stringify(ours.map((o) => ({ since: o.since - joinedAt, at: (o.at ?? 0) - joinedAt })))}`);
});

t.test('undecodable audio never claims the floor, keeps an over alive or makes it audible', async (t) => {
  const broker = new MemoryBroker();
  const rx = await receiver(t, broker, { silenceMs: 1000 });
  const rec = record(rx);
  const junk = new Raw(broker, topics, 'junk');
  const good20 = await encodeSpeech(20, 1, 2);
  const frame = good20[10]!;

  // Code 3 (arbitrary frame count), then a count byte: none at all, or three CBR frames in a length not divisible by 3.
  const code3 = (second: number, body: number) => Uint8Array.of((frame[0]! & ~3) | 3, second, ...frame.subarray(1, 1 + body));
  const bad: Array<[string, Uint8Array, number]> = [
    ['a TOC alone (concealment only)', Uint8Array.of(concealmentToc(20)), 20],
    ['a 20 ms frame in a stream of 10 ms frames', frame, 10],
    ['code 3 with no frames', code3(0, 10), 20],
    ['code 3 CBR with lengths that do not divide', code3(3, 10), 20],
  ];
  const now = Date.now();
  let sentBad = 0;
  for (const [, f, frameMs] of bad) {
    const stream = newStreamId();
    for (let seq = 0; seq < 5; seq++, sentBad++) junk.audio(stream, seq, now + seq * frameMs * 2, frameMs, [f, f]);
  }
  // And a mixed packet: one good frame, one bad.
  junk.audio(newStreamId(), 0, now, 20, [frame, Uint8Array.of(concealmentToc(20))]);
  sentBad++;
  await sleep(200);
  t.equal(rx.counters.opus, sentBad, `all ${sentBad} packets counted as opus`);
  t.equal(rx.holder, null, 'none claimed the floor');
  t.same(rec.floors, [], 'no floor change at all');
  t.same(rec.audible, [], 'nothing audible');
  t.equal(rec.played.size + rec.concealed.size, 0, 'nothing played');

  // A START claims the floor, but undecodable packets after it neither make it audible nor keep it alive.
  const started = newStreamId();
  const startedAt = performance.now();
  junk.start(started, { t: Date.now(), name: 'Junk', frameMs: 20, fpp: 2 });
  let releasedAt = 0;
  const off = rx.on('floor', (h) => h === null && !releasedAt && (releasedAt = performance.now() - startedAt));
  for (let seq = 0; seq < 40; seq++) {
    junk.audio(started, seq, Date.now(), 20, [Uint8Array.of(concealmentToc(20)), Uint8Array.of(concealmentToc(20))]);
    await sleep(40);
  }
  off();
  t.ok(releasedAt > 900 && releasedAt < 1500, `the START's claim fell silent after ${releasedAt ? releasedAt.toFixed(0) + ' ms' : 'never'}, while junk kept coming for 1600 ms`);
  t.same(rec.audible, [], 'never audible');
  t.equal(rec.played.get(started), undefined, 'never played');
  junk.end(started, 40);

  // A valid packet does claim the floor and is audible at once, with how late it came (a new sender: by our clock).
  const good = newStreamId();
  const goodT = Date.now();
  junk.audio(good, 0, goodT, 20, good20.slice(0, 2));
  await sleep(20);
  t.equal(rx.holder?.stream, good, 'valid audio claims the floor');
  t.equal(rec.audible.length, 1, 'and is audible');
  t.equal(rec.audible[0]?.stream, good);
  t.ok((rec.audible[0]?.lagMs ?? -1) >= 0 && rec.audible[0]!.lagMs! < 100, `lagMs ${rec.audible[0]?.lagMs} for the first over heard from this sender (its offset on our clock)`);
  for (let seq = 1; seq < 10; seq++) junk.audio(good, seq, goodT + seq * 40, 20, good20.slice(seq * 2, seq * 2 + 2), seq === 9 ? Flag.END : 0);
  junk.end(good, 10);
  const e1 = await rec.overEnd(good);
  t.equal(e1.reason, 'done');
  t.equal(e1.stats.played, 20);
  t.equal(rec.audible.length, 1, 'audible once per over');

  // The next over's first packet comes 2 s later than this sender's usually do: lagMs says so.
  const late = newStreamId();
  junk.audio(late, 0, Date.now() - 2000, 20, good20.slice(0, 2));
  await sleep(20);
  t.equal(rec.audible.length, 2);
  const lag = rec.audible[1]?.lagMs ?? -1;
  t.ok(lag >= 1900 && lag <= 2300, `a stale over's lagMs is ${lag}`);
  t.comment(`undecodable: counters ${JSON.stringify(rx.counters)}; START-only claim fell silent after ${releasedAt.toFixed(0)} ms; lagMs ${rec.audible.map((a) => a.lagMs).join(', ')}`);
});
