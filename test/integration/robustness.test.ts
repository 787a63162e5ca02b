/**
 * Bad input and vanishing peers on a real Mosquitto: garbage on every channel topic is counted and
 * dropped while an over still plays; a talker killed mid-over ends after the silence time and its
 * Last Will clears its presence.
 */
import t from 'tap';
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, startCli } from '../helpers/cli.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { Codec, Flag, encodePacket } from '../../gateway/shared/channel/packet.js';
import type { OverReport } from '../../gateway/shared/channel/session.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');

/** A real Mosquitto and a listener on `channel`, both gone when the test ends. */
async function listening(t: { teardown(fn: () => unknown): void }, channel: string, silenceMs: number) {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const listener = await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel, name: 'L', source: 'cli', silenceMs });
  t.teardown(() => listener.close());
  return { broker, listener };
}

t.test('garbage on every topic is counted and dropped; the next over plays', async (t) => {
  const { broker, listener } = await listening(t, 'junk', 1000);
  const reports: OverReport[] = [];
  listener.session.on('overEnd', (r) => reports.push(r));
  const raw = await mqtt.connectAsync(broker.url);
  t.teardown(() => raw.endAsync());
  const base = 'talkbridge/v1/junk';
  const good = { flags: Flag.START, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, keyEpoch: 0, streamId: 'aaaaaaaaaaaaaaaa', seq: 0, timestamp: Date.now() };
  const junk: Array<[string, Uint8Array | string]> = [
    [`${base}/audio/evil`, new Uint8Array(0)],
    [`${base}/audio/evil`, new Uint8Array(randomBytes(10))],
    [`${base}/audio/evil`, Uint8Array.from(encodePacket(good, [Uint8Array.of(1)]), (b, i) => (i === 0 ? 9 : b))],
    [`${base}/audio/evil`, new Uint8Array(9000).fill(1)],
    [`${base}/audio/evil`, encodePacket(good, [Uint8Array.of(1, 2)]).subarray(0, 28)],
    [`${base}/control/evil`, '{"v":1,"type":"start"'],
    [`${base}/control/evil`, '{"v":1,"type":"start","stream":"zz"}'],
    [`${base}/control/evil`, '[1,2,3]'],
    [`${base}/control/evil`, new Uint8Array([0xff, 0xfe, 0x00])],
    [`${base}/presence/evil`, '{"v":7}'],
    [`${base}/weird/evil`, 'x'],
    [`${base}/audio/evil/extra`, 'x'],
  ];
  for (let i = 0; i < 200; i++) junk.push([`${base}/audio/fuzz`, new Uint8Array(randomBytes(1 + (i % 120)))]);
  for (const [topic, payload] of junk) await raw.publishAsync(topic, Buffer.from(payload as Uint8Array));
  await new Promise((r) => setTimeout(r, 300));
  const dropped = Object.values(listener.session.counters).reduce((a, b) => a + b, 0);
  t.ok(dropped >= junk.length - 5, `dropped and counted: ${JSON.stringify(listener.session.counters)}`);
  t.ok(listener.session.counters['packet-version'] && listener.session.counters['packet-oversize'] && listener.session.counters['control'] && listener.session.counters['topic'], 'counted by reason');

  const send = startCli(['send', '--broker', broker.url, '--channel', 'junk', '--name', 'Real', '--fast', SPEECH]);
  t.equal((await send.result).code, 0);
  const until = Date.now() + 8000;
  while (!reports.some((r) => r.name === 'Real') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  const real = reports.find((r) => r.name === 'Real');
  t.ok(real, 'the real over still played');
  t.equal(real?.stats.lost, 0);
});

t.test('packets with Opus frames longer than the stream declared are dropped on arrival and concealed, never played stretched', async (t) => {
  const { broker, listener } = await listening(t, 'sizes', 1000);
  const lengths: number[] = [];
  listener.session.on('audio', (a) => lengths.push(a.pcm.length));
  const ended = new Promise<OverReport>((r) => listener.session.on('overEnd', r));
  const raw = await mqtt.connectAsync(broker.url);
  t.teardown(() => raw.endAsync());
  const tone = (n: number) => new Int16Array(n).map((_, i) => Math.round(8000 * Math.sin(i / 4)));
  const enc20 = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 });
  const enc60 = await createEncoder({ sampleRate: 16000, frameMs: 60, bitrate: 16000, complexity: 9 });
  // A stream that says 20 ms frames, two per packet; every third packet carries 60 ms frames instead.
  const t0 = Date.now();
  for (let seq = 0; seq < 12; seq++) {
    const frames = seq % 3 === 1 ? [enc60.encode(tone(960)), enc60.encode(tone(960))] : [enc20.encode(tone(320)), enc20.encode(tone(320))];
    const flags = (seq === 0 ? Flag.START : 0) | (seq === 11 ? Flag.END : 0);
    const h = { flags, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, keyEpoch: 0, streamId: 'bbbbbbbbbbbbbbbb', seq, timestamp: t0 + seq * 40 };
    await raw.publishAsync('talkbridge/v1/sizes/audio/mixer', Buffer.from(encodePacket(h, frames)));
    await new Promise((r) => setTimeout(r, 40 - ((Date.now() - t0) % 40)));
  }
  const report = await ended;
  // The lost packets are misses: on a loaded machine the buffer may grow at one, a concealed frame
  // that does not advance the over (stretched); every frame sent is still played or concealed once.
  t.equal(lengths.length, 24 + report.stats.stretched, 'one 20 ms frame of audio for every frame sent (plus any the buffer grew by)');
  t.same([...new Set(lengths)], [320], 'every frame played is 20 ms long');
  // Protocol 1.1: such a packet is refused on arrival (docs/protocol.md), so it never reaches a decoder.
  t.equal(listener.session.counters['opus'], 4, `the packets with 60 ms frames were counted: ${JSON.stringify(listener.session.counters)}`);
  t.equal(listener.session.counters['decode'], undefined, 'nothing reached the decoder that it refused');
  t.equal(report.stats.lost, 4, 'and they count as lost, their frames concealed');
  t.equal(report.stats.concealed - report.stats.stretched, 8, 'the 8 frames of the dropped packets concealed');
});

t.test('a talker killed mid-over: the over ends after the silence time, the Last Will clears presence', async (t) => {
  const { broker, listener } = await listening(t, 'gone', 800);
  const ends: Array<OverReport & { at: number }> = [];
  let lastAudio = 0;
  listener.session.on('audio', (f) => !f.concealed && (lastAudio = Date.now()));
  listener.session.on('overEnd', (r) => ends.push({ ...r, at: Date.now() }));
  const left: string[] = [];
  listener.session.on('presence', (sender, p) => p === null && left.push(sender));

  const send = startCli(['send', '--broker', broker.url, '--channel', 'gone', '--name', 'Doomed', SPEECH]);
  const started = Date.now() + 5000;
  while (lastAudio === 0 && Date.now() < started) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 1000));
  send.proc.kill('SIGKILL');
  const killedAt = Date.now();
  const until = Date.now() + 4000;
  while (ends.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.equal(ends.length, 1, 'the over ended');
  t.equal(ends[0]?.reason, 'silence', 'because its talker went silent');
  const after = ends[0]!.at - killedAt;
  t.ok(after >= 600 && after < 2000, `ended ${after} ms after the kill (silence time 800 ms)`);
  t.ok(ends[0]!.durationMs > 800 && ends[0]!.durationMs < 3000, `kept what was heard (${ends[0]!.durationMs} ms)`);
  const gone = Date.now() + 3000;
  while (left.length === 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
  t.ok(
    left.some((s) => s.startsWith('doomed-')),
    `presence cleared by the Last Will (${left.join(',')})`,
  );
  t.equal(listener.session.holder, null, 'the floor is free again');
});
