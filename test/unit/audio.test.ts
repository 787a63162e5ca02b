import t from 'tap';
import path from 'node:path';
import { encodeWav, parseWav, readWav } from '../../gateway/src/audio/wav.js';
import { ResampleToFloat, Resampler, resampleAll } from '../../gateway/shared/audio/resample.js';
import { capturePeriodMs } from '../../gateway/src/bridge/bridge.js';
import { FIXTURES } from '../helpers/cli.js';
import { envelopeCorrelation, rms, sine } from '../helpers/audio.js';

t.test('WAV write → read round trip, and stereo is averaged', async (t) => {
  const samples = Int16Array.from([0, 1, -1, 32767, -32768]);
  const p = parseWav(encodeWav({ sampleRate: 8000, samples }));
  t.equal(p.sampleRate, 8000);
  t.same([...p.samples], [...samples]);
  const st = await readWav(path.join(FIXTURES, 'speech-44k1-stereo.wav'));
  t.equal(st.sampleRate, 44100);
  t.equal(st.samples.length, 88200);
});

t.test('WAV reader refuses what it cannot play, with a reason', async (t) => {
  const good = encodeWav({ sampleRate: 16000, samples: new Int16Array(10) });
  t.throws(() => parseWav(new Uint8Array(4)), /not a WAV/);
  t.throws(() => parseWav(good.subarray(0, 30)), /fmt chunk truncated|no fmt/);
  t.throws(() => parseWav(good.subarray(0, 36)), /no data chunk/);
  const float = good.slice();
  new DataView(float.buffer).setUint16(20, 3, true);
  t.throws(() => parseWav(float), /format 3 is not PCM/);
  const empty = encodeWav({ sampleRate: 16000, samples: new Int16Array(0) });
  t.throws(() => parseWav(empty), /no audio/);
  // A data size that overstates the file: take what is there.
  const liar = good.slice();
  new DataView(liar.buffer).setUint32(40, 1_000_000, true);
  t.equal(parseWav(liar).samples.length, 10);
  // Random bytes after a RIFF header never crash the reader.
  for (let i = 0; i < 500; i++) {
    const b = new Uint8Array(12 + (i % 80)).map(() => (Math.random() * 256) | 0);
    b.set([82, 73, 70, 70], 0);
    b.set([87, 65, 86, 69], 8);
    try {
      parseWav(b);
    } catch (err) {
      t.equal((err as Error).name, 'WavError');
    }
  }
});

t.test('resampling keeps in-band tones and removes what would alias', async (t) => {
  const pass = resampleAll(sine(1000, 48000, 1), 48000, 16000);
  t.equal(pass.length, 16000);
  t.ok(Math.abs(rms(pass.subarray(100, -100)) / rms(sine(1000, 16000, 1)) - 1) < 0.02, '1 kHz passes at 0 dB');
  const stop = resampleAll(sine(12000, 48000, 1), 48000, 16000);
  t.ok(20 * Math.log10(rms(stop.subarray(100, -100)) / rms(sine(12000, 48000, 1))) < -50, '12 kHz (would alias to 4 kHz) is > 50 dB down');
  const up = resampleAll(sine(1000, 16000, 1), 16000, 48000);
  t.equal(up.length, 48000);
});

t.test('streaming in odd chunks gives the same output as one block', async (t) => {
  const x = sine(700, 44100, 0.5);
  const whole = new Resampler(44100, 16000).process(x);
  const r = new Resampler(44100, 16000);
  const parts: number[] = [];
  for (let o = 0; o < x.length; o += 333) parts.push(...r.process(x.subarray(o, o + 333)));
  t.same(parts, [...whole]);
});

t.test("resampling to float in reused buffers gives the 16-bit resampler's output, scaled", async (t) => {
  const x = sine(700, 48000, 0.48); // twelve 40 ms reads
  const ref = new Resampler(48000, 16000).process(x);
  const r = new ResampleToFloat(48000, 16000);
  const got: number[] = [];
  const views = new Set<Float32Array>();
  for (let o = 0; o < x.length; o += 1920) {
    const f = r.process(x.subarray(o, o + 1920));
    if (o) views.add(f); // the first read is short by the filter's delay
    for (const v of f) got.push(Math.round(v * 32768));
  }
  t.same(got, [...ref]);
  t.equal(views.size, 1, 'then one output buffer for every 40 ms read');
  const same = new ResampleToFloat(16000, 16000).process(Int16Array.of(16384, -32768));
  t.same([...same], [0.5, -1], 'same rate: scaled only');
});

t.test('capture period: a whole packet, in whole frames, at most 60 ms', async (t) => {
  t.equal(capturePeriodMs(20, 2), 40);
  t.equal(capturePeriodMs(20, 1), 20);
  t.equal(capturePeriodMs(20, 3), 60);
  t.equal(capturePeriodMs(10, 3), 30);
  t.equal(capturePeriodMs(40, 2), 40, '80 ms packets are read as two 40 ms frames');
  t.equal(capturePeriodMs(60, 3), 60);
});

t.test('the speech metric tells speech from its absence', async (t) => {
  const a = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  t.ok(envelopeCorrelation(a.samples, 16000, a.samples, 16000).r > 0.999, 'identical');
  const noise = a.samples.map(() => (Math.random() - 0.5) * 2000);
  t.ok(envelopeCorrelation(a.samples, 16000, noise, 16000).r < 0.3, 'noise does not match');
  const reversed = a.samples.slice().reverse();
  t.ok(envelopeCorrelation(a.samples, 16000, reversed, 16000).r < 0.6, 'other speech does not match');
  const half = a.samples.slice();
  half.fill(0, half.length / 2);
  t.ok(envelopeCorrelation(a.samples, 16000, half, 16000).r < 0.9, 'half the over missing fails the 0.9 bar');
  t.ok(envelopeCorrelation(a.samples, 16000, a.samples.slice(0, a.samples.length * 0.8), 16000).r < 0.9, 'the last fifth missing fails too');
  // A jitter buffer that grew three times mid-over: later audio shifted by 20, 40, 60 ms.
  const stretched = new Int16Array(a.samples.length + 960);
  let shift = 0;
  for (let i = 0; i < a.samples.length; i++) {
    if (i === 20000 || i === 40000 || i === 60000) shift += 320;
    stretched[i + shift] = a.samples[i]!;
  }
  t.ok(envelopeCorrelation(a.samples, 16000, stretched, 16000).r > 0.95, 'frame-sized shifts from buffer growth still align');
});
