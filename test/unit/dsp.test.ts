import t from 'tap';
import { highpass, dcBlock, deemphasis, lowpass } from '../../gateway/shared/dsp/filters.js';
import { agc, limiter } from '../../gateway/shared/dsp/dynamics.js';
import { cw, courtesyTone, morse } from '../../gateway/shared/dsp/tones.js';
import { chain, toFloat, toInt16 } from '../../gateway/shared/dsp/stage.js';

const rate = 16000;
const tone = (f: number, sec = 1, amp = 0.5) => Float32Array.from({ length: rate * sec }, (_, i) => amp * Math.sin((2 * Math.PI * f * i) / rate));
const rmsDb = (x: Float32Array, from = 0) => {
  let a = 0;
  for (let i = from; i < x.length; i++) a += x[i]! * x[i]!;
  return 10 * Math.log10(a / (x.length - from));
};
/** Runs a stage over the signal in 20 ms blocks, as the pipeline does. */
function run(stage: { process(x: Float32Array): void }, x: Float32Array): Float32Array {
  const y = x.slice();
  for (let o = 0; o < y.length; o += 320) stage.process(y.subarray(o, o + 320));
  return y;
}

t.test('high-pass removes CTCSS: ≥ 30 dB down at 100 Hz, the highest CTCSS tone ~10 dB down, speech band flat', async (t) => {
  const att = (f: number) => rmsDb(run(highpass(rate), tone(f)), 4000) - rmsDb(tone(f), 4000);
  t.ok(att(100) <= -30, `100 Hz: ${att(100).toFixed(1)} dB`);
  t.ok(att(67) <= -40, `67 Hz (lowest CTCSS): ${att(67).toFixed(1)} dB`);
  t.ok(att(250.3) <= -9, `250.3 Hz (highest CTCSS): ${att(250.3).toFixed(1)} dB`);
  for (const f of [500, 1000, 3000]) t.ok(Math.abs(att(f)) < 0.5, `${f} Hz passes: ${att(f).toFixed(2)} dB`);
});

t.test('DC is removed, de-emphasis slopes 6 dB/octave, low-pass cuts', async (t) => {
  const dc = Float32Array.from(tone(1000), (v) => v + 0.3);
  const y = run(dcBlock(rate), dc);
  let mean = 0;
  for (let i = 8000; i < y.length; i++) mean += y[i]!;
  t.ok(Math.abs(mean / 8000) < 0.001, 'no DC left');
  const de = (f: number) => rmsDb(run(deemphasis(rate), tone(f)), 4000) - rmsDb(tone(f), 4000);
  t.ok(Math.abs(de(1000)) < 0.3, `0 dB at 1 kHz (${de(1000).toFixed(2)})`);
  t.ok(Math.abs(de(2000) - de(1000) + 6) < 1, `−6 dB from 1 to 2 kHz (${(de(2000) - de(1000)).toFixed(2)})`);
  const lp = (f: number) => rmsDb(run(lowpass(rate, 3000), tone(f)), 4000) - rmsDb(tone(f), 4000);
  t.ok(lp(6000) < -20 && Math.abs(lp(1000)) < 0.5, 'low-pass');
});

t.test('limiter: no sample above the ceiling, quiet audio untouched', async (t) => {
  const loud = tone(1000, 1, 1.5);
  const y = run(limiter(rate, { ceilingDb: -1, releaseMs: 80 }), loud);
  const peak = Math.max(...y.map(Math.abs));
  t.ok(peak <= 10 ** (-1 / 20) + 1e-6, `peak ${(20 * Math.log10(peak)).toFixed(2)} dBFS ≤ −1`);
  const quiet = tone(1000, 1, 0.1);
  const q = run(limiter(rate), quiet);
  t.ok(Math.abs(rmsDb(q) - rmsDb(quiet)) < 0.01, 'below the ceiling nothing changes');
  // A burst: limits at once, recovers after the release time.
  const burst = Float32Array.from(tone(1000, 1, 0.1), (v, i) => (i >= 4000 && i < 4400 ? v * 15 : v));
  const b = run(limiter(rate), burst);
  t.ok(Math.max(...b.subarray(4000, 4400).map(Math.abs)) <= 0.9, 'burst limited');
  t.ok(Math.abs(rmsDb(b, 12000) - rmsDb(burst, 12000)) < 0.2, 'gain recovered afterwards');
  const long = Float32Array.from(tone(1000, 2, 0.1), (v, i) => (i >= 4000 && i < 4400 ? v * 15 : v));
  t.same(run(limiter(rate), long).subarray(rate * 1.5), long.subarray(rate * 1.5), 'and fully: a second after the burst, samples pass untouched');
  t.same(q, quiet, 'quiet audio passes bit for bit');
});

t.test('AGC brings quiet and loud radios to the same loudness, and does not pump up pauses', async (t) => {
  const level = (amp: number) => rmsDb(run(agc(rate), tone(400, 3, amp)), rate * 2);
  const quiet = level(0.02);
  const loud = level(0.5);
  t.ok(Math.abs(quiet - loud) < 3, `−34 dBFS and −6 dBFS inputs end within 3 dB (${quiet.toFixed(1)} vs ${loud.toFixed(1)})`);
  t.ok(Math.abs(loud + 21) < 4, `near the −20 dBFS target (${loud.toFixed(1)})`);
  const noise = Float32Array.from({ length: rate * 2 }, () => (Math.random() - 0.5) * 0.002);
  t.ok(rmsDb(run(agc(rate), noise)) < rmsDb(noise) + 1, 'background noise below the gate is not amplified');
});

t.test('CW ID and courtesy tone', async (t) => {
  t.equal(morse('sos'), '... --- ...');
  t.equal(morse('de n0call'), '-.. . / -. ----- -.-. .- .-.. .-..');
  const id = cw('N0CALL', rate, { wpm: 20 });
  // PARIS timing: "N0CALL" is 8+22+14+6+10+10 units of elements and gaps (… computed by the code)
  t.ok(id.length / rate > 2 && id.length / rate < 5, `about 3 s at 20 wpm (${(id.length / rate).toFixed(2)} s)`);
  t.ok(Math.max(...id.map(Math.abs)) <= 10 ** (-12 / 20) + 1e-6, 'at its set level');
  const ct = courtesyTone(rate);
  t.equal(ct.length, Math.round(rate * 0.08) * 2);
  t.equal(toInt16(toFloat(Int16Array.of(0, 16384, -32768)))[2], -32768, 'int16 ↔ float round trip');
  const c = chain([highpass(rate), limiter(rate)]);
  const x = tone(1000, 1, 2);
  c.process(x);
  t.ok(Math.max(...x.map(Math.abs)) <= 0.9, 'chains run in order');
});
