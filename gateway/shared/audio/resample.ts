/**
 * Streaming sample-rate conversion by windowed-sinc interpolation (Blackman window, polyphase
 * table). The cut-off sits just under the lower Nyquist frequency, so 48 kHz card audio going to a
 * 16 kHz codec is properly band-limited, not aliased. One implementation for the gateway and the
 * browser's AudioWorklet: it allocates nothing per call (garbage on the audio thread is what makes
 * browser audio glitch), keeps state between chunks of any size, and adds HALF_TAPS input samples
 * of delay.
 */
import { toFloat, toInt16 } from '../dsp/stage.js';

const HALF_TAPS = 16;
const TAPS = 2 * HALF_TAPS;
const MAX_PHASES = 4096;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export class StreamResampler {
  readonly inRate: number;
  readonly outRate: number;
  /** Largest input chunk process() accepts in one call. */
  readonly maxIn: number;
  private readonly up: number;
  private readonly down: number;
  private readonly cutoff: number;
  private readonly table: Float32Array | null;
  /** The last TAPS input samples, then the chunk being processed. */
  private readonly buf: Float32Array;
  /** Position of the next output sample in 1/up input samples, relative to buf[0]. */
  private pos: number;

  constructor(inRate: number, outRate: number, maxIn = 4096) {
    if (!(inRate > 0 && outRate > 0 && Number.isInteger(inRate) && Number.isInteger(outRate))) throw new RangeError(`bad rates ${inRate} → ${outRate}`);
    this.inRate = inRate;
    this.outRate = outRate;
    this.maxIn = maxIn;
    const g = gcd(inRate, outRate);
    this.up = outRate / g;
    this.down = inRate / g;
    this.cutoff = Math.min(1, outRate / inRate) * 0.92;
    this.buf = new Float32Array(TAPS + maxIn);
    this.pos = HALF_TAPS * this.up;
    this.table = this.up <= MAX_PHASES ? this.buildTable() : null;
  }

  private kernel(x: number): number {
    if (Math.abs(x) >= HALF_TAPS) return 0;
    const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / HALF_TAPS) + 0.08 * Math.cos((2 * Math.PI * x) / HALF_TAPS);
    const a = Math.PI * this.cutoff * x;
    return this.cutoff * (a === 0 ? 1 : Math.sin(a) / a) * w;
  }

  private buildTable(): Float32Array {
    const t = new Float32Array(this.up * TAPS);
    for (let p = 0; p < this.up; p++) for (let k = 0; k < TAPS; k++) t[p * TAPS + k] = this.kernel(k - HALF_TAPS + 1 - p / this.up);
    return t;
  }

  /** Output samples that `n` more input samples can produce at most (size output buffers with it). */
  maxOut(n: number): number {
    return Math.ceil((n * this.up) / this.down) + 2;
  }

  /**
   * Converts `len` samples of input (from offset 0) and writes the output to `out` from `outOffset`;
   * returns how many samples were written. Output lags input by HALF_TAPS input samples.
   */
  process(input: ArrayLike<number>, len: number, out: Float32Array, outOffset = 0): number {
    let written = 0;
    for (let start = 0; start < len; start += this.maxIn) {
      written += this.chunk(input, start, Math.min(this.maxIn, len - start), out, outOffset + written);
    }
    return written;
  }

  private chunk(input: ArrayLike<number>, from: number, n: number, out: Float32Array, o: number): number {
    const buf = this.buf;
    for (let i = 0; i < n; i++) buf[TAPS + i] = input[from + i]!;
    const have = TAPS + n;
    const up = this.up;
    let w = 0;
    if (up === this.down) {
      // Same rate: a straight copy, delayed like the filtered path so switching rates never jumps.
      for (let i = 0; i < n; i++) out[o + w++] = buf[TAPS + i - HALF_TAPS]!;
    } else {
      const table = this.table;
      const down = this.down;
      // The position in a local for the loop: a field written per output sample stays in memory.
      let pos = this.pos;
      if (up === 1 && table) {
        // Whole-number decimation (48 → 16 kHz on every capture): the phase is always 0, and the
        // kernel's non-zero taps (x = -15…15) are symmetric, so each output needs half the products.
        for (let base = pos; base + HALF_TAPS < have; base += down) {
          let acc = buf[base]! * table[HALF_TAPS - 1]!;
          for (let j = 1; j < HALF_TAPS; j++) acc += (buf[base + j]! + buf[base - j]!) * table[HALF_TAPS - 1 + j]!;
          if (o + w >= out.length) throw new RangeError('resampler output buffer too small');
          out[o + w++] = acc;
          pos += down;
        }
      } else {
        for (let base = Math.floor(pos / up); base + HALF_TAPS < have; base = Math.floor(pos / up)) {
          const phase = pos - base * up;
          const first = base - HALF_TAPS + 1;
          let acc = 0;
          if (table) {
            const row = phase * TAPS;
            for (let k = 0; k < TAPS; k++) acc += buf[first + k]! * table[row + k]!;
          } else {
            const frac = phase / up;
            for (let k = 0; k < TAPS; k++) acc += buf[first + k]! * this.kernel(k - HALF_TAPS + 1 - frac);
          }
          if (o + w >= out.length) throw new RangeError('resampler output buffer too small');
          out[o + w++] = acc;
          pos += down;
        }
      }
      this.pos = pos - n * up;
    }
    buf.copyWithin(0, n, n + TAPS);
    return w;
  }

  /** Forgets the signal so far (a new over must not start with the tail of the last one). */
  reset(): void {
    this.buf.fill(0);
    this.pos = HALF_TAPS * this.up;
  }

  /** Delay the filter adds, in output samples. */
  get delaySamples(): number {
    return Math.round((HALF_TAPS * this.outRate) / this.inRate);
  }
}

/**
 * 16-bit PCM at one rate in, float samples (full scale ±1) at another out, for the DSP stages: one
 * pass, into buffers it keeps, so a pipeline running 50 times a second makes no garbage here.
 */
export class ResampleToFloat {
  private readonly core: StreamResampler | null;
  private out = new Float32Array(0);
  private f = new Float32Array(0);

  constructor(
    readonly inRate: number,
    readonly outRate: number,
  ) {
    this.core = inRate === outRate ? null : new StreamResampler(inRate, outRate, 4096);
  }

  /** The result is valid until the next call. */
  process(pcm: Int16Array): Float32Array {
    const core = this.core;
    let n = pcm.length;
    if (core) {
      const need = core.maxOut(pcm.length);
      if (this.out.length < need) this.out = new Float32Array(need);
      n = core.process(pcm, pcm.length, this.out);
    }
    if (this.f.length !== n) this.f = new Float32Array(n);
    return toFloat(core ? this.out : pcm, this.f, n);
  }

  /** Delay the filter adds, in output samples. */
  get delaySamples(): number {
    return this.core?.delaySamples ?? 0;
  }
}

/** 16-bit PCM in and out (whole recordings: resampleAll). */
export class Resampler {
  private readonly f: ResampleToFloat;

  constructor(
    readonly inRate: number,
    readonly outRate: number,
  ) {
    this.f = new ResampleToFloat(inRate, outRate);
  }

  /** Scaling by 2^-15 and back is exact, so this is the filter's output rounded to 16 bits. */
  process(input: Int16Array): Int16Array {
    return toInt16(this.f.process(input));
  }

  /** Pushes out the samples still inside the filter. */
  flush(): Int16Array {
    return this.process(new Int16Array(HALF_TAPS));
  }

  /** Delay the filter adds, in output samples. */
  get delaySamples(): number {
    return this.f.delaySamples;
  }
}

export function resampleAll(samples: Int16Array, inRate: number, outRate: number): Int16Array {
  if (inRate === outRate) return samples;
  const r = new Resampler(inRate, outRate);
  const a = r.process(samples);
  const b = r.flush();
  // Drop the filter delay so the output lines up with the input.
  const d = r.delaySamples;
  const all = new Int16Array(a.length + b.length);
  all.set(a);
  all.set(b, a.length);
  const want = Math.round((samples.length * outRate) / inRate);
  return all.slice(d, d + want);
}
