import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { OggOpusWriter, oggOpusFile, readOggPages } from '../../gateway/src/audio/ogg-opus.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { FIXTURES } from '../helpers/cli.js';
import { envelopeCorrelation, rms } from '../helpers/audio.js';

const settings = { sampleRate: 16000 as const, frameMs: 20 as const, bitrate: 16000, complexity: 9 };
const opts = { inputSampleRate: 16000, frameMs: 20, serial: 0x7a1b };
const OPUSINFO = '/usr/bin/opusinfo';

let dir = '';
t.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tb-ogg-opus-'));
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

async function speech() {
  const pcm = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const enc = await createEncoder(settings);
  const frames = toFrames(pcm.samples, 320, 1).map((f) => enc.encode(f));
  enc.close();
  return { pcm, frames };
}

async function silenceFrame(): Promise<Uint8Array> {
  const enc = await createEncoder(settings);
  let f = enc.encode(new Int16Array(320));
  for (let i = 0; i < 5; i++) f = enc.encode(new Int16Array(320)); // past the first frames' transient
  enc.close();
  return f;
}

/** The file decoded by the real opusdec at 16 kHz. */
async function opusdec(name: string, file: Buffer) {
  const ogg = path.join(dir, `${name}.opus`);
  const wav = path.join(dir, `${name}.wav`);
  await writeFile(ogg, file);
  const r = spawnSync('/usr/bin/opusdec', ['--quiet', '--rate', '16000', ogg, wav], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`opusdec failed (${r.status}): ${r.stderr}`);
  return { ogg, pcm: await readWav(wav), stderr: r.stderr };
}

t.test('the real opusdec plays the file: same speech, same duration', async (t) => {
  const { pcm, frames } = await speech();
  const comments = { TITLE: 'Net check — über', ARTIST: 'talkbridge test', DATE: '2024-05-01' };
  const out = await opusdec('speech', oggOpusFile(frames, { ...opts, comments }));
  t.equal(out.stderr.trim(), '', 'opusdec has nothing to complain about');
  t.equal(out.pcm.sampleRate, 16000);
  const ms = (out.pcm.samples.length * 1000) / 16000;
  t.ok(Math.abs(ms - frames.length * 20) <= 30, `decoded ${ms} ms for ${frames.length} frames of 20 ms`);
  const { r, lagMs } = envelopeCorrelation(pcm.samples, 16000, out.pcm.samples, 16000);
  t.ok(r >= 0.9, `envelope correlation ${r.toFixed(3)} at lag ${lagMs} ms`);
  t.comment(`speech: ${frames.length} frames, decoded ${ms} ms, r=${r.toFixed(4)}, lag ${lagMs} ms`);

  // The pre-skip is dropped from the start and an end trim from the end, both at 48 kHz.
  const trimmed = new OggOpusWriter(opts);
  const file = Buffer.concat([trimmed.header(), ...frames.map((f) => trimmed.frame(f)), trimmed.end(480)]);
  const short = await opusdec('trimmed', file);
  t.equal(out.pcm.samples.length - short.pcm.samples.length, 160, 'a 480-sample end trim shortens the output by 10 ms');

  if (!existsSync(OPUSINFO)) {
    t.comment('opusinfo is not installed');
    return;
  }
  const info = spawnSync(OPUSINFO, [out.ogg], { encoding: 'utf8' });
  t.equal(info.status, 0, 'opusinfo accepts the file');
  t.notMatch(info.stdout + info.stderr, /warning|error/i, 'with no warnings or errors');
  t.match(info.stdout, /TITLE=Net check — über/, 'and shows the comments');
  t.match(info.stdout, /Pre-skip: 312/);
  t.match(info.stdout, /Original sample rate: 16000/);
});

t.test('the reader walks the pages: CRCs, flags, granules, packets in order', async (t) => {
  const { frames } = await speech();
  const file = oggOpusFile(frames, opts);
  const pages = readOggPages(file);
  t.ok(pages.length >= 3);
  t.same(
    pages.map((p) => p.seq),
    pages.map((_, i) => i),
    'sequence numbers from 0',
  );
  t.ok(
    pages.every((p) => p.serial === 0x7a1b),
    'one serial',
  );
  t.same(
    pages.map((p) => p.flags & 2),
    pages.map((_, i) => (i === 0 ? 2 : 0)),
    'BOS on the first page only',
  );
  t.same(
    pages.map((p) => p.flags & 4),
    pages.map((_, i) => (i === pages.length - 1 ? 4 : 0)),
    'EOS on the last page only',
  );
  t.equal(pages[0]!.packets[0]!.subarray(0, 8).toString(), 'OpusHead');
  t.equal(pages[0]!.packets[0]!.readUInt16LE(10), 312, 'default pre-skip');
  t.equal(pages[0]!.packets[0]!.readUInt32LE(12), 16000, 'input rate');
  t.equal(pages[1]!.packets[0]!.subarray(0, 8).toString(), 'OpusTags');
  t.same(
    pages.slice(0, 2).map((p) => p.granule),
    [0n, 0n],
    'header pages at granule 0',
  );

  const audio = pages.slice(2);
  t.same(
    audio.flatMap((p) => p.packets),
    frames.map((f) => Buffer.from(f)),
    'every frame is one packet, in order',
  );
  let done = 0;
  for (const p of audio) {
    done += p.packets.length;
    t.equal(p.granule, BigInt(done * 960), `page ${p.seq}: granule counts the 48 kHz samples of ${done} frames`);
  }
  t.ok(audio.length <= Math.ceil(frames.length / 50) + 1, `${audio.length} audio pages for ${frames.length} frames (about one a second)`);

  const bad = Buffer.from(file);
  bad[bad.length - 10]! ^= 0x01;
  t.throws(() => readOggPages(bad), /bad CRC/, 'one flipped bit is caught');
  t.throws(() => readOggPages(file.subarray(0, file.length - 1)), /truncated/);
});

t.test('lacing edge cases and comments that span pages', async (t) => {
  const sizes = [1, 254, 255, 256, 510, 1275, 2];
  const frames = sizes.map((n, i) => new Uint8Array(n).fill(i + 1));
  const w = new OggOpusWriter({ ...opts, comments: { BIG: 'x'.repeat(150_000) } });
  const pages = readOggPages(Buffer.concat([w.header(), ...frames.map((f) => w.frame(f)), w.end()]));
  const tags = pages.filter((p) => p.seq > 0 && p.seq < pages.length - 1);
  t.equal(tags.length, 3, '150 kB of comments take three pages');
  t.same(
    tags.map((p) => [p.granule, p.flags & 1, p.packets.length]),
    [
      [-1n, 0, 0],
      [-1n, 1, 0],
      [0n, 1, 1],
    ],
    'continued pages, granule 0 only where the tags end',
  );
  t.match(tags[2]!.packets[0]!.toString('latin1'), /BIG=x{1000}/);
  t.same(
    pages[pages.length - 1]!.packets,
    frames.map((f) => Buffer.from(f)),
    'packets of 255·n bytes survive with their terminating 0 lacing value',
  );
  // The 255·n multiple of exactly one page's segment table: the terminating 0 goes alone on the next page.
  const exact = new OggOpusWriter({ ...opts, vendor: 'v'.repeat(255 * 255 - 16) });
  const ex = readOggPages(Buffer.concat([exact.header(), exact.end()]));
  t.equal(ex[1]!.packets.length, 0);
  t.equal(ex[2]!.packets[0]!.length, 255 * 255, 'a tags packet of exactly 255 × 255 bytes ends on the next page');
});

t.test('bad input is refused', async (t) => {
  const w = new OggOpusWriter(opts);
  t.throws(() => w.frame(new Uint8Array(10)), /header first/);
  w.header();
  t.throws(() => w.header(), /once/);
  t.throws(() => w.frame(new Uint8Array(0)), RangeError);
  t.throws(() => w.frame(new Uint8Array(1276)), RangeError);
  t.throws(() => w.gap(1), /silenceFrame/);
  t.throws(() => w.end(961), RangeError, 'no trimming more than the last page holds');
  w.end();
  t.throws(() => w.frame(new Uint8Array(10)), /ended/);
  t.throws(() => new OggOpusWriter({ ...opts, comments: { 'A=B': 'x' } }).header(), RangeError);
  t.throws(() => new OggOpusWriter({ ...opts, comments: { TITLE: 'x'.repeat(300_000) } }).header(), RangeError);
  t.throws(() => new OggOpusWriter({ ...opts, frameMs: 7 }), RangeError);
  t.throws(() => new OggOpusWriter({ ...opts, preSkip: 70000 }), RangeError);
  t.throws(() => new OggOpusWriter({ ...opts, silenceFrame: new Uint8Array([0xfc]) }), RangeError, 'a TOC-only packet is no silence');
  const silence = await silenceFrame();
  t.throws(() => new OggOpusWriter({ ...opts, silenceFrame: silence, frameMs: 40 }), RangeError, 'nor is one of the wrong duration');
});

t.test('a gap is filled with silence frames, so opusdec keeps time', async (t) => {
  const { frames } = await speech();
  const silence = await silenceFrame();
  t.ok(silence.length >= 2 && silence.length < 20, `silence frame of ${silence.length} bytes`);
  const half = Math.floor(frames.length / 2);
  const w = new OggOpusWriter({ ...opts, silenceFrame: silence });
  const file = Buffer.concat([w.header(), ...frames.slice(0, half).map((f) => w.frame(f)), w.gap(10), ...frames.slice(half).map((f) => w.frame(f)), w.end()]);
  const pages = readOggPages(file);
  t.equal(pages[pages.length - 1]!.granule, BigInt((frames.length + 10) * 960), 'the gap counts in the granule');
  const out = await opusdec('gap', file);
  const ms = (out.pcm.samples.length * 1000) / 16000;
  t.ok(Math.abs(ms - (frames.length + 10) * 20) <= 30, `decoded ${ms} ms for ${frames.length} frames and a 10-frame gap`);
  t.comment(`gap: decoded ${ms} ms, expected ~${(frames.length + 10) * 20} ms`);
  // The middle of the gap (clear of the codec's overlap at either edge) is quiet.
  const start = half * 320 + 800;
  const quiet = rms(out.pcm.samples.subarray(start, start + 1600));
  t.ok(quiet < 100, `rms ${quiet.toFixed(1)} inside the gap`);
});
