import t from 'tap';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AlsaCapture, AlsaPlayback, alsaArgs } from '../../gateway/src/radio/audio/alsa.js';
import { FileAudioIn, FileAudioOut, NullAudioOut } from '../../gateway/src/radio/audio/file.js';
import { LevelMeter, PcmAssembler, applyGain, dbfs, toBytes } from '../../gateway/src/radio/audio/levels.js';
import { parseWav, writeWav } from '../../gateway/src/audio/wav.js';
import type { AudioState } from '../../gateway/src/radio/types.js';
import { sine } from '../helpers/audio.js';
import { readOr, sleep, tempDir, waitFor, writeExe } from './helpers.js';

const DEVICE = 'plughw:CARD=Device,DEV=0';

/** Fake arecord/aplay first on PATH: check their arguments, stream / capture, die on demand. */
function fakeAlsa(dir: string) {
  const bin = path.join(dir, 'bin');
  const head = (name: string) => `#!/bin/bash
D=${JSON.stringify(dir)}
n=$(( $(cat "$D/${name}.count" 2>/dev/null || echo 0) + 1 )); echo $n > "$D/${name}.count"
echo "$*" >> "$D/${name}.args"
if [ -n "$(cat "$D/${name}.expect" 2>/dev/null)" ] && [ "$*" != "$(cat "$D/${name}.expect")" ]; then echo "${name}: unexpected arguments: $*" >&2; exit 2; fi
if [ -e "$D/absent" ]; then echo "${name}: main:831: audio open error: No such file or directory" >&2; exit 1; fi
`;
  writeExe(
    bin,
    'arecord',
    head('arecord') +
      `if [ -e "$D/die-after" ]; then head -c $(cat "$D/die-after") "$D/in.raw"; rm "$D/die-after"; echo "arecord: pcm_read:2221: read error: No such device" >&2; exit 1; fi
cat "$D/in.raw"
exec sleep 1000
`,
  );
  writeExe(
    bin,
    'aplay',
    head('aplay') +
      `if [ -e "$D/die-after" ]; then head -c $(cat "$D/die-after") > "$D/out.$n.raw"; rm "$D/die-after"; echo "aplay: pcm_write:2178: write error: No such device" >&2; exit 1; fi
exec cat > "$D/out.$n.raw"
`,
  );
  process.env.PATH = `${bin}:${process.env.PATH}`;
  return {
    expect: (name: string, args: string[]) => writeFileSync(path.join(dir, `${name}.expect`), args.join(' ')),
    args: (name: string) =>
      readOr(path.join(dir, `${name}.args`))
        .trim()
        .split('\n')
        .filter(Boolean),
    count: (name: string) => Number(readOr(path.join(dir, `${name}.count`), '0')),
    out: (n: number) => (existsSync(path.join(dir, `out.${n}.raw`)) ? readFileSync(path.join(dir, `out.${n}.raw`)).length : 0),
    outBytes: (n: number) => readFileSync(path.join(dir, `out.${n}.raw`)),
  };
}

const samplesOf = (b: Buffer) => Int16Array.from({ length: b.length / 2 }, (_, i) => b.readInt16LE(i * 2));

t.test('ALSA argument list: raw S16_LE mono, explicit period and buffer, card by name', async (t) => {
  t.same(alsaArgs({ device: DEVICE, sampleRate: 48000 }), ['-q', '-D', DEVICE, '-t', 'raw', '-f', 'S16_LE', '-c', '1', '-r', '48000', '--period-size=960', '--buffer-size=3840']);
  t.same(alsaArgs({ device: 'plughw:CARD=AllInOneCable,DEV=0', sampleRate: 16000, periodFrames: 160, bufferFrames: 640 }).slice(-3), ['16000', '--period-size=160', '--buffer-size=640']);
  t.throws(() => alsaArgs({ device: 'hw:0; rm -rf /', sampleRate: 48000 }), /unexpected characters/);
  t.throws(() => alsaArgs({ device: DEVICE, sampleRate: 48000, periodFrames: 960, bufferFrames: 1000 }), /at least two periods/);
});

t.test('capture: exact arguments, samples intact, card lost mid-stream → waiting, re-opened → running', async (t) => {
  const dir = tempDir(t);
  const fake = fakeAlsa(dir);
  const tone = sine(1000, 48000, 0.5, 0.5);
  writeFileSync(path.join(dir, 'in.raw'), toBytes(tone));
  writeFileSync(path.join(dir, 'die-after'), String(4800 * 2));
  const args = alsaArgs({ device: DEVICE, sampleRate: 48000 });
  fake.expect('arecord', args);
  const cap = new AlsaCapture({ device: DEVICE, sampleRate: 48000, backoff: { minMs: 100, maxMs: 400 } });
  const states: Array<[AudioState, string]> = [];
  cap.on('state', (s, d) => states.push([s, d]));
  const got: number[] = [];
  cap.on('data', (s) => got.push(...s));
  await cap.start();
  await waitFor(() => got.length >= 4800 + tone.length, 5000, 'audio after re-open');
  t.same(fake.args('arecord'), [args.join(' '), args.join(' ')], 'same exact arguments on re-open');
  t.same(got.slice(0, 4800), [...tone.subarray(0, 4800)], 'first 100 ms before the loss, sample-exact');
  t.same(got.slice(4800), [...tone], 'everything after the re-open, sample-exact');
  t.same(
    states.map((s) => s[0]),
    ['running', 'waiting', 'running'],
  );
  t.match(states[1]![1], /No such device; retrying in 0\.1 s/);
  const l = cap.levels();
  t.ok(Math.abs(l.peakDb - dbfs(16384)) < 0.1, `peak ${l.peakDb.toFixed(2)} dBFS`);
  t.ok(Math.abs(l.rmsDb - (dbfs(16384) - 3.01)) < 0.1, `rms ${l.rmsDb.toFixed(2)} dBFS`);
  await cap.close();
  t.equal(cap.state, 'stopped');
});

t.test('capture: card absent at start → keeps retrying with back-off, reports why', async (t) => {
  const dir = tempDir(t);
  const fake = fakeAlsa(dir);
  writeFileSync(path.join(dir, 'in.raw'), toBytes(sine(440, 16000, 0.1)));
  writeFileSync(path.join(dir, 'absent'), '');
  const cap = new AlsaCapture({ device: DEVICE, sampleRate: 16000, backoff: { minMs: 50, maxMs: 200 } });
  const states: Array<[AudioState, string]> = [];
  cap.on('state', (s, d) => states.push([s, d]));
  let got = 0;
  cap.on('data', (s) => (got += s.length));
  await cap.start();
  await sleep(900);
  const tries = fake.count('arecord');
  // 50, 100, 200, 200, 200 ms: a handful, not a spin.
  t.ok(tries >= 3 && tries <= 8, `${tries} attempts in 0.9 s`);
  t.equal(cap.state, 'waiting');
  unlinkSync(path.join(dir, 'absent'));
  await waitFor(() => got >= 1600, 3000, 'audio once the card is back');
  t.equal(cap.state, 'running');
  t.same(
    states.map((s) => s[0]),
    ['waiting', 'running'],
  );
  t.match(states[0]![1], /audio open error: No such file or directory; retrying in 0\.1 s/);
  await cap.close();
  const after = fake.count('arecord');
  await sleep(300);
  t.equal(fake.count('arecord'), after, 'no re-open after close');
});

t.test('playback: exact arguments, bytes delivered, loss → waiting and dropped, back → running', async (t) => {
  const dir = tempDir(t);
  const fake = fakeAlsa(dir);
  const args = alsaArgs({ device: DEVICE, sampleRate: 16000 });
  fake.expect('aplay', args);
  const pb = new AlsaPlayback({ device: DEVICE, sampleRate: 16000, backoff: { minMs: 150, maxMs: 150 }, idleCloseMs: 5000 });
  const states: Array<[AudioState, string]> = [];
  pb.on('state', (s, d) => states.push([s, d]));
  const over = sine(700, 16000, 0.1, 0.3);
  for (let i = 0; i < over.length; i += 320) t.equal(pb.write(over.subarray(i, i + 320)), true);
  const t0 = Date.now();
  await pb.drain();
  t.ok(Date.now() - t0 >= 80, 'drain waits for the audio to play out');
  await waitFor(() => fake.out(1) >= over.length * 2, 3000, 'bytes at aplay');
  t.same([...samplesOf(fake.outBytes(1))], [...over]);
  t.same(fake.args('aplay'), [args.join(' ')]);

  // The card goes away while it is open: the next write hits a dead aplay.
  writeFileSync(path.join(dir, 'die-after'), '0');
  await pb.close();
  const pb2 = new AlsaPlayback({ device: DEVICE, sampleRate: 16000, backoff: { minMs: 150, maxMs: 150 }, idleCloseMs: 5000 });
  const states2: Array<[AudioState, string]> = [];
  pb2.on('state', (s, d) => states2.push([s, d]));
  pb2.write(over.subarray(0, 320));
  await waitFor(() => pb2.state === 'waiting', 3000, 'loss noticed');
  t.match(states2.at(-1)![1], /No such device/);
  t.equal(pb2.write(over.subarray(0, 320)), false, 'dropped while backing off, not queued');
  await sleep(200);
  t.equal(existsSync(path.join(dir, 'die-after')), false);
  t.equal(pb2.write(over.subarray(0, 320)), true, 're-opened after the back-off');
  t.equal(pb2.state, 'running');
  t.same(
    states2.map((s) => s[0]),
    ['running', 'waiting', 'running'],
  );
  await pb2.close();
  t.same(
    states.map((s) => s[0]),
    ['running', 'stopped'],
  );
});

t.test('playback closes the card when idle and re-opens for the next over', async (t) => {
  const dir = tempDir(t);
  const fake = fakeAlsa(dir);
  const pb = new AlsaPlayback({ device: DEVICE, sampleRate: 8000, idleCloseMs: 100 });
  pb.write(sine(500, 8000, 0.05));
  await waitFor(async () => fake.out(1) === 800, 3000, 'first over');
  await sleep(400);
  pb.write(sine(500, 8000, 0.05));
  await waitFor(async () => fake.out(2) === 800, 3000, 'second over on a new aplay');
  t.equal(fake.count('aplay'), 2);
  await pb.close();
});

t.test('file input: paced in real time, resampled, ends or loops', async (t) => {
  const dir = tempDir(t);
  const wav = path.join(dir, 'in.wav');
  const src = sine(440, 48000, 0.3, 0.25);
  await writeWav(wav, { sampleRate: 48000, samples: src });
  const fin = new FileAudioIn({ path: wav, sampleRate: 16000, loop: false });
  let n = 0;
  const t0 = Date.now();
  let ended = 0;
  fin.on('data', (s) => (n += s.length));
  fin.on('end', () => (ended = Date.now()));
  await fin.start();
  await sleep(150);
  t.ok(n >= 1600 && n <= 3200, `about 150 ms delivered after 150 ms (${n} samples)`);
  await waitFor(() => ended, 3000, 'end');
  t.equal(n, 4800, '0.3 s at 16 kHz');
  t.ok(ended - t0 >= 260 && ended - t0 < 1000, `took ${ended - t0} ms for 300 ms of audio`);
  t.equal(fin.state, 'stopped');

  const loop = new FileAudioIn({ path: wav, sampleRate: 48000, loop: true });
  let m = 0;
  loop.on('data', (s) => (m += s.length));
  await loop.start();
  await sleep(500);
  await loop.close();
  t.ok(m > src.length, `looped past the end (${m} > ${src.length})`);
  await t.rejects(new FileAudioIn({ path: path.join(dir, 'missing.wav'), sampleRate: 16000, loop: false }).start(), /no such file/);
});

t.test('file output writes a valid WAV; null output discards but meters', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'out.wav');
  const fo = new FileAudioOut({ path: out, sampleRate: 16000 });
  const a = sine(300, 16000, 0.2, 0.4);
  for (let i = 0; i < a.length; i += 320) fo.write(a.subarray(i, i + 320));
  await fo.drain();
  await fo.close();
  const back = parseWav(readFileSync(out));
  t.equal(back.sampleRate, 16000);
  t.same([...back.samples], [...a]);
  t.equal(fo.write(a), false, 'closed output refuses audio');

  const bad = new FileAudioOut({ path: path.join(dir, 'no/such/dir.wav'), sampleRate: 16000 });
  const states: string[] = [];
  bad.on('state', (s, d) => states.push(`${s}: ${d}`));
  bad.write(a);
  await bad.drain();
  t.match(states[0], /stopped: .*ENOENT/);

  const nul = new NullAudioOut(16000);
  t.equal(nul.write(Int16Array.of(32767, -32768, 0, 0)), true);
  const l = nul.levels();
  t.equal(l.clipped, 2);
  t.equal(l.peakDb, dbfs(32768));
});

t.test('level meter and gain', async (t) => {
  const m = new LevelMeter();
  m.add(sine(1000, 48000, 0.1, 0.1));
  const l = m.take();
  t.ok(Math.abs(l.peakDb - -20) < 0.1, `peak ${l.peakDb}`);
  t.ok(Math.abs(l.rmsDb - -23.01) < 0.1, `rms ${l.rmsDb}`);
  t.equal(l.clipped, 0);
  t.equal(m.take().peakDb, -Infinity, 'reset after take');
  t.same([...applyGain(Int16Array.of(20000, -20000, 100), 6.0206)], [32767, -32768, 200], 'saturates');
});

t.test('bytes ⇄ samples: little-endian S16, split anywhere', async (t) => {
  const s = Int16Array.of(0, 1, -1, 32767, -32768, 0x1234, -2);
  const b = toBytes(s);
  t.same([...b.subarray(0, 8)], [0, 0, 1, 0, 0xff, 0xff, 0xff, 0x7f], 'S16_LE on the wire');
  const a = new PcmAssembler();
  const got: number[] = [];
  for (const [from, to] of [
    [0, 3],
    [3, 4],
    [4, 9],
    [9, 14],
  ])
    got.push(...a.push(b.subarray(from, to)));
  t.same(got, [...s], 'odd splits: the odd byte waits for its partner');
  const sub = toBytes(s.subarray(3, 5));
  t.same([...sub], [0xff, 0x7f, 0x00, 0x80], 'a view converts only its own samples');
});
