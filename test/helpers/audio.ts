/**
 * Comparing speech the way a listener would: short-time energy envelopes (20 ms windows every 5 ms, in dB),
 * aligned by the lag that best matches, then Pearson-correlated. A codec round trip keeps the
 * envelope; silence, noise, truncation or the wrong over do not.
 */
/** -60 dBFS: quieter than this counts as silence, so digital zero and codec noise compare equal. */
const FLOOR = (32768 * 10 ** (-60 / 20)) ** 2;
const HOP_MS = 5;

/** Energy in dB of 20 ms windows every 5 ms. */
export function envelope(samples: Int16Array, rate: number, windowMs = 20): Float64Array {
  const w = Math.round((rate * windowMs) / 1000);
  const hop = Math.round((rate * HOP_MS) / 1000);
  const n = Math.max(0, Math.floor((samples.length - w) / hop) + 1);
  const env = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = i * hop; j < i * hop + w; j++) acc += samples[j]! * samples[j]!;
    env[i] = 10 * Math.log10(acc / w + FLOOR);
  }
  return env;
}

function pearson(a: Float64Array, b: Float64Array, lag: number): number {
  // Compare a[i] with b[i + lag] over their overlap.
  const start = Math.max(0, -lag);
  const end = Math.min(a.length, b.length - lag);
  const n = end - start;
  if (n < 40) return -1;
  let ma = 0;
  let mb = 0;
  for (let i = start; i < end; i++) (ma += a[i]!), (mb += b[i + lag]!);
  ma /= n;
  mb /= n;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = start; i < end; i++) {
    const x = a[i]! - ma;
    const y = b[i + lag]! - mb;
    num += x * y;
    da += x * x;
    db += y * y;
  }
  return da && db ? num / Math.sqrt(da * db) : -1;
}

/**
 * Correlation of the two envelopes after alignment. A global lag (±maxLagMs) first; then, because
 * an adaptive jitter buffer legitimately shifts later audio by a frame each time it grows, every
 * 1 s segment may move by up to ±100 ms more, and the realigned envelopes are correlated as one.
 */
export function envelopeCorrelation(ref: Int16Array, refRate: number, test: Int16Array, testRate: number, maxLagMs = 500): { r: number; lagMs: number } {
  const a = envelope(ref, refRate);
  const b = envelope(test, testRate);
  const maxLag = Math.round(maxLagMs / HOP_MS);
  let best = { r: -1, lag: 0 };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const r = pearson(a, b, lag);
    if (r > best.r) best = { r, lag };
  }
  const seg = Math.round(1000 / HOP_MS);
  const slack = Math.round(100 / HOP_MS);
  const aligned = new Float64Array(a.length).fill(NaN);
  for (let s0 = 0; s0 < a.length; s0 += seg) {
    const s1 = Math.min(a.length, s0 + seg);
    let segBest = { r: -1, lag: best.lag };
    for (let lag = best.lag - slack; lag <= best.lag + slack; lag++) {
      if (s0 + lag < 0 || s1 + lag > b.length) continue;
      const r = pearson(a.subarray(s0, s1) as Float64Array, b.subarray(s0 + lag, s1 + lag) as Float64Array, 0);
      if (r > segBest.r) segBest = { r, lag };
    }
    for (let i = s0; i < s1; i++) {
      const j = i + segBest.lag;
      if (j >= 0 && j < b.length) aligned[i] = b[j]!;
    }
  }
  const keep = [...a.keys()].filter((i) => !Number.isNaN(aligned[i]!));
  const r = pearson(
    Float64Array.from(keep, (i) => a[i]!),
    Float64Array.from(keep, (i) => aligned[i]!),
    0,
  );
  // Most of the reference must have been covered, or a truncated over would look fine.
  const coverage = keep.length / a.length;
  return { r: coverage >= 0.9 ? r : Math.min(r, coverage), lagMs: best.lag * HOP_MS };
}

export function rms(samples: Int16Array): number {
  let acc = 0;
  for (const s of samples) acc += s * s;
  return Math.sqrt(acc / Math.max(1, samples.length));
}

export function sine(freq: number, rate: number, seconds: number, amplitude = 0.5): Int16Array {
  const n = Math.round(rate * seconds);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * freq * i) / rate));
  return out;
}
