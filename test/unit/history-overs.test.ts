/**
 * The recorder's view of a channel (gateway/src/history/overs.ts): real overs from real sessions
 * (real Opus, real sealing) on an in-memory broker, heard by an assembler that holds no key; and
 * what a hostile member can publish, each refused and counted.
 */
import t from 'tap';
import { ChannelSession } from '../../gateway/shared/channel/session.js';
import { Flag } from '../../gateway/shared/channel/packet.js';
import { newStreamId } from '../../gateway/shared/channel/packet.js';
import { ChannelTopics } from '../../gateway/shared/channel/topics.js';
import { ChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { generateKey } from '../../gateway/shared/crypto/keys.js';
import { createEncoder, decoderFactory } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { type CloseReason, OverAssembler, type OverInfo } from '../../gateway/src/history/overs.js';
import { MemoryBroker, Raw } from '../helpers/pubsub.js';

const PREFIX = 'tb';
const CHANNEL = 'ops';
const topics = new ChannelTopics(PREFIX, CHANNEL);
const speech = await readWav(new URL('../fixtures/speech-16k.wav', import.meta.url).pathname);
const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 });
const FRAMES = toFrames(speech.samples.subarray(0, 32000), enc.frameSamples, 1).map((f) => enc.encode(f));
const decoders = await decoderFactory();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Heard {
  info: OverInfo;
  packets: Array<{ seq: number; data: Uint8Array }>;
  closed?: { complete: boolean; reason: CloseReason };
  /** Control payloads attached after the over opened. */
  controls?: string[];
}

/** An assembler listening to everything on the channel, as a recorder's MQTT client would. */
function recorder(broker: MemoryBroker, o: Partial<ConstructorParameters<typeof OverAssembler>[0]> = {}) {
  const a = new OverAssembler({ topics, ...o });
  const heard = new Map<string, Heard>();
  a.on('open', (info) => heard.set(info.stream, { info, packets: [] }));
  a.on('packet', (info, seq, data) => heard.get(info.stream)!.packets.push({ seq, data }));
  a.on('close', (info, complete, reason) => (heard.get(info.stream)!.closed = { complete, reason }));
  a.on('control', (info, kind) => (heard.get(info.stream)!.controls ??= []).push(kind));
  const c = broker.client();
  c.on('message', (topic: string, payload: Buffer) => a.handle(topic, payload));
  c.subscribe(topics.all, { qos: 1 });
  return { a, heard };
}

async function talker(broker: MemoryBroker, crypto?: ChannelCrypto) {
  const s = new ChannelSession(broker.client(), { prefix: PREFIX, channel: CHANNEL, sender: 'ann-1', name: 'Ann', source: 'cli', silenceMs: 1000, createDecoder: decoders, crypto });
  await s.join();
  return s;
}

async function over(s: ChannelSession, n: number, fpp = 2): Promise<string> {
  const o = s.talk({ sampleRate: 16000, frameMs: 20, framesPerPacket: fpp });
  if ('busy' in o) throw new Error('busy');
  for (let i = 0; i < n; i++) {
    o.send(FRAMES.slice(i * fpp, (i + 1) * fpp), i === n - 1);
    await sleep(2);
  }
  await sleep(50);
  return o.stream;
}

t.test('a clear over: every packet as carried, the name from START, complete', async (t) => {
  const broker = new MemoryBroker();
  const { a, heard } = recorder(broker);
  const s = await talker(broker);
  t.teardown(() => s.leave());
  const stream = await over(s, 20);
  const h = heard.get(stream)!;
  t.ok(h, 'the over was opened');
  t.equal(h.info.sender, 'ann-1');
  t.equal(h.info.name, 'Ann', 'name read from the clear START');
  t.notOk(h.info.encrypted);
  t.same(
    h.packets.map((p) => p.seq),
    Array.from({ length: 20 }, (_, i) => i),
    'packets 0..19 in order',
  );
  t.same(h.closed, { complete: true, reason: 'end' }, 'closed complete at the END packet');
  t.ok(h.info.start && h.info.start[0] === 0x7b, 'the START kept as carried');
  t.match(new TextDecoder().decode(h.info.end ?? new Uint8Array()), /"type":"end"/, 'and the END, matched by its stream');
  t.same(a.counters, {}, 'nothing dropped');
});

t.test('an encrypted over: recorded sealed, no name, START and END kept opaque', async (t) => {
  const key = generateKey();
  const broker = new MemoryBroker();
  const { a, heard } = recorder(broker);
  const s = await talker(broker, new ChannelCrypto({ channel: CHANNEL, keys: [key] }));
  t.teardown(() => s.leave());
  const stream = await over(s, 10);
  await sleep(100);
  const h = heard.get(stream)!;
  t.ok(h, 'the over was opened from the clear header alone');
  t.ok(h.info.encrypted, 'marked encrypted');
  t.equal(h.info.name, null, 'no name: the START is sealed');
  t.equal(h.packets.length, 10);
  t.ok(
    h.packets.every((p) => (p.data[1]! & Flag.ENCRYPTED) !== 0),
    'every packet kept sealed',
  );
  t.ok(h.info.start?.[0] === 0xe1, 'the sealed START kept with the over');
  t.ok(h.info.end?.[0] === 0xe1, 'the sealed END kept with the over');
  t.same(h.controls, ['end'], 'the END attached after the last packet closed the over');
  t.same(h.closed, { complete: true, reason: 'end' });
  // No Opus frame of the speech appears in what was recorded.
  const recorded = Buffer.concat(h.packets.map((p) => p.data));
  const leaked = FRAMES.slice(0, 20).filter((f) => f.length > 8 && recorded.includes(Buffer.from(f)));
  t.equal(leaked.length, 0, 'no clear Opus frame in the recording');
  t.same(a.counters, {}, 'nothing dropped');
});

t.test('a lost packet: closed incomplete once silent; END without all packets is incomplete', async (t) => {
  let now = 1_000_000;
  const broker = new MemoryBroker();
  const { a, heard } = recorder(broker, { now: () => now, silenceMs: 3000 });
  const raw = new Raw(broker, topics, 'bob-2');
  const stream = newStreamId();
  raw.start(stream, { t: now, name: 'Bob', frameMs: 20, fpp: 1 });
  await sleep(1);
  for (const seq of [0, 1, 3, 4]) raw.audio(stream, seq, now + seq * 20, 20, [FRAMES[seq]!], seq === 4 ? Flag.END : 0);
  await sleep(1);
  t.equal(heard.get(stream)?.closed, undefined, 'still open: packet 2 may yet come');
  now += 3001;
  a.tick();
  t.same(heard.get(stream)?.closed, { complete: false, reason: 'silence' }, 'closed incomplete after the silence');
  raw.audio(stream, 2, now, 20, [FRAMES[2]!]);
  await sleep(1);
  t.equal(a.counters.ended, 1, 'a straggler for a closed over is dropped, not a new over');
});

t.test('hostile input: junk, a stolen stream, replays, a flood of overs, an endless over', async (t) => {
  const broker = new MemoryBroker();
  const { a, heard } = recorder(broker, { maxOpen: 4, maxPackets: 50 });
  const ann = new Raw(broker, topics, 'ann-1');
  const eve = new Raw(broker, topics, 'eve-6');
  const stream = newStreamId();
  ann.audio(stream, 0, Date.now(), 20, [FRAMES[0]!]);
  await sleep(1);
  // Someone else's stream id on Eve's topic.
  eve.audio(stream, 1, Date.now(), 20, [FRAMES[1]!]);
  // Junk on the audio topic, a bad topic, a huge control, JSON that is not a control.
  eve.client.publish(topics.topic('audio', 'eve-6'), new Uint8Array([1, 2, 3]), { qos: 0, retain: false });
  eve.client.publish(`${topics.base}/junk/eve-6`, new Uint8Array(30), { qos: 0, retain: false });
  eve.client.publish(topics.topic('control', 'eve-6'), new Uint8Array(3000).fill(0x7b), { qos: 1, retain: false });
  eve.client.publish(topics.topic('control', 'eve-6'), new TextEncoder().encode('{not json'), { qos: 1, retain: false });
  // The same packet again.
  ann.audio(stream, 0, Date.now(), 20, [FRAMES[0]!]);
  await sleep(1);
  t.equal(heard.get(stream)?.packets.length, 1, "Ann's over holds only her packet");
  t.equal(a.counters['stream-sender'], 1, 'stolen stream counted');
  t.equal(a.counters['packet-short'], 1, 'short packet counted');
  t.equal(a.counters.topic, 1, 'bad topic counted');
  t.equal(a.counters['control-size'], 1, 'oversized control counted');
  t.equal(a.counters.control, 1, 'bad JSON control counted');
  t.equal(a.counters.duplicate, 1, 'duplicate counted');

  // A flood of new overs: at most maxOpen at once.
  for (let i = 0; i < 10; i++) eve.audio(newStreamId(), 0, Date.now(), 20, [FRAMES[0]!]);
  await sleep(1);
  t.equal(a.openCount, 4, 'no more than maxOpen overs open');
  t.equal(a.counters['open-full'], 7, 'the rest counted');
  a.stop();
  t.equal(a.openCount, 0, 'stop closes every over');

  // An endless over is cut at maxPackets, and a seq beyond it is refused outright.
  const long = newStreamId();
  for (let seq = 0; seq < 60; seq++) ann.audio(long, seq, Date.now(), 20, [FRAMES[seq % FRAMES.length]!]);
  ann.audio(newStreamId(), 10_000, Date.now(), 20, [FRAMES[0]!]);
  await sleep(1);
  t.equal(heard.get(long)?.packets.length, 50, 'recorded up to the limit');
  t.same(heard.get(long)?.closed, { complete: false, reason: 'limit' });
  t.ok((a.counters.ended ?? 0) >= 10, 'the rest of it dropped as ended');
  t.equal(a.counters['seq-range'], 1, 'a seq past the limit is refused');
});
