/** The browser's audio-thread code: streaming resampler, framer and playout queue. */
import t from 'tap';
import { Framer, StreamResampler } from '../../gateway/web/src/resampler.js';
import { toInt16Sample } from '../../gateway/shared/dsp/stage.js';
import { PLAYOUT_DEFAULTS, Playout } from '../../gateway/web/src/playout.js';

function tone(freq: number, rate: number, seconds: number, amp = 0.5): Float32Array {
  const n = Math.round(rate * seconds);
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
}

function run(rs: StreamResampler, input: Float32Array, chunks: number[]): Float32Array {
  const out = new Float32Array(rs.maxOut(input.length) + chunks.length * 2);
  let o = 0;
  let i = 0;
  let k = 0;
  while (i < input.length) {
    const n = Math.min(chunks[k++ % chunks.length]!, input.length - i);
    o += rs.process(input.subarray(i), n, out, o);
    i += n;
  }
  return out.subarray(0, o);
}

function rmsOf(x: Float32Array, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / Math.max(1, to - from));
}

/** Frequency by zero crossings (good enough for one clean tone). */
function freqOf(x: Float32Array, rate: number): number {
  let z = 0;
  for (let i = 1; i < x.length; i++) if (x[i - 1]! < 0 && x[i]! >= 0) z++;
  return (z * rate) / x.length;
}

const PAIRS: Array<[number, number]> = [
  [48000, 16000],
  [44100, 16000],
  [16000, 48000],
  [16000, 44100],
  [96000, 16000],
  [22050, 16000],
];

t.test('a 1 kHz tone keeps its level and pitch through every common rate pair', async (t) => {
  for (const [a, b] of PAIRS) {
    const rs = new StreamResampler(a, b, 1024);
    const out = run(rs, tone(1000, a, 1), [128]);
    const expectLen = Math.round((a ? 1 : 0) * b);
    t.ok(Math.abs(out.length - expectLen) <= rs.delaySamples + 2, `${a}→${b}: ${out.length} samples for 1 s (delay ${rs.delaySamples})`);
    const body = out.subarray(200, out.length - 200);
    t.ok(Math.abs(rmsOf(body) - 0.5 / Math.SQRT2) < 0.01, `${a}→${b}: level ${rmsOf(body).toFixed(4)}`);
    t.ok(Math.abs(freqOf(body, b) - 1000) < 10, `${a}→${b}: ${freqOf(body, b).toFixed(1)} Hz`);
  }
});

t.test('chunk size never changes the output (worklet quanta, odd sizes, larger than maxIn)', async (t) => {
  const input = tone(440, 44100, 0.5);
  const whole = run(new StreamResampler(44100, 16000, 256), input, [input.length]);
  for (const chunks of [[128], [1], [7, 300, 1], [257]]) {
    const parts = run(new StreamResampler(44100, 16000, 256), input, chunks);
    t.equal(parts.length, whole.length, `chunks ${chunks}`);
    let maxDiff = 0;
    for (let i = 0; i < whole.length; i++) maxDiff = Math.max(maxDiff, Math.abs(whole[i]! - parts[i]!));
    t.ok(maxDiff < 1e-6, `chunks ${chunks}: max difference ${maxDiff}`);
  }
});

t.test('what the codec rate cannot carry is filtered out, not aliased', async (t) => {
  // 12 kHz at 48 kHz would alias to 4 kHz at 16 kHz.
  const out = run(new StreamResampler(48000, 16000), tone(12000, 48000, 0.5), [128]);
  const level = rmsOf(out, 100, out.length - 100);
  t.ok(level < 0.5 / Math.SQRT2 / 100, `12 kHz tone attenuated by ${(20 * Math.log10(level / (0.5 / Math.SQRT2))).toFixed(1)} dB`);
  // Speech's band (up to 5 kHz) passes.
  const pass = run(new StreamResampler(48000, 16000), tone(5000, 48000, 0.5), [128]);
  t.ok(rmsOf(pass, 100, pass.length - 100) > 0.3, '5 kHz passes');
});

t.test('same rate is a delayed copy; reset forgets the past', async (t) => {
  const rs = new StreamResampler(16000, 16000, 64);
  const x = Float32Array.from({ length: 100 }, (_, i) => i / 100);
  const y = run(rs, x, [30]);
  t.equal(y.length, 100);
  t.equal(y[16], x[0]);
  t.equal(y[99], x[83]);
  rs.reset();
  const z = run(rs, Float32Array.of(1, 1, 1), [3]);
  t.same([...z], [0, 0, 0], 'history cleared');
  t.throws(() => new StreamResampler(0, 16000), RangeError);
  t.throws(() => new StreamResampler(44100.5, 16000), RangeError);
});

t.test('toInt16Sample clips instead of wrapping; full scale is 32768 as in the gateway', async (t) => {
  t.equal(toInt16Sample(0), 0);
  t.equal(toInt16Sample(1), 32767);
  t.equal(toInt16Sample(-1), -32768);
  t.equal(toInt16Sample(0.5), 16384);
  t.equal(toInt16Sample(3), 32767);
  t.equal(toInt16Sample(-3), -32768);
});

t.test('framer makes exact 20 ms frames and pads only the last', async (t) => {
  const f = new Framer(320);
  const frames: Int16Array[] = [];
  f.push(new Float32Array(700).fill(0.5), 700, (x) => frames.push(x));
  t.equal(frames.length, 2);
  t.ok(frames.every((x) => x.length === 320 && x.every((v) => v === toInt16Sample(0.5))));
  t.equal(f.pending, 60);
  const last = f.flush()!;
  t.equal(last.length, 320);
  t.equal(last[59], toInt16Sample(0.5));
  t.equal(last[60], 0, 'padded with silence');
  t.equal(f.flush(), null, 'nothing left');
  frames[0]![0] = 1;
  f.push(new Float32Array(320), 320, (x) => frames.push(x));
  t.equal(frames[2]![0], 0, 'each frame is a fresh array (transferred to the main thread)');
});

t.test('playout: waits the margin, plays in order, drains at the end without an underrun', async (t) => {
  const q = new Playout({ rate: 48000, ...PLAYOUT_DEFAULTS });
  const out = new Float32Array(128);
  const margin = q.margin;
  t.equal(margin, Math.round((48000 * PLAYOUT_DEFAULTS.marginMs) / 1000));
  q.push(
    Float32Array.from({ length: 960 }, (_, i) => i + 1),
    960,
    0,
  );
  let now = 0;
  t.equal(q.render(out, 128, now), 0, 'holds back during the margin');
  let played = 0;
  while (q.render(out, 128, (now += 128)) === 0 && now < 48000) played = 0;
  t.ok(now + 128 > margin && now <= margin + 128, `starts after the margin (${now})`);
  t.equal(out[0], 1, 'first sample first');
  played = 128;
  q.end();
  for (let i = 0; i < 20; i++) played += q.render(out, 128, (now += 128));
  t.equal(played, 960, 'everything played');
  t.equal(q.underruns, 0, 'running out at the end is no underrun');
  t.equal(q.playing, false);
});

t.test('playout: an underrun mid-over grows the margin; the queue is bounded', async (t) => {
  const q = new Playout({ rate: 16000, marginMs: 10, maxMarginMs: 30, maxQueueMs: 100 });
  const out = new Float32Array(128);
  const m0 = q.margin;
  q.push(new Float32Array(200).fill(1), 200, 0);
  q.render(out, 128, 1000);
  q.render(out, 128, 1128);
  t.equal(q.underruns, 1, 'ran dry before the over ended');
  t.equal(q.margin, m0 + 160, 'margin grew by 10 ms');
  for (let i = 0; i < 5; i++) q.push(new Float32Array(200).fill(1), 200, 2000);
  t.ok(q.margin <= 480, 'margin capped');
  q.push(new Float32Array(5000).fill(2), 5000, 2000);
  t.equal(q.queued, 1600, 'never more than maxQueueMs queued');
  t.ok(q.dropped > 0, 'oldest audio dropped');
  q.clear();
  t.equal(q.queued, 0);
  t.equal(q.render(out, 128, 3000), 0);
});
