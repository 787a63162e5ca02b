/**
 * Streaming sample-rate conversion for the audio thread: windowed-sinc (Blackman), polyphase
 * table, the same filter as the gateway's Resampler (gateway/src/audio/resample.ts) but on floats
 * and without allocating per call. An AudioWorklet renders 128 samples every 2.7 ms; garbage
 * created there is what makes browser audio glitch, so every buffer here is made once.
 */

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
      while (Math.floor(this.pos / up) + HALF_TAPS < have) {
        const base = Math.floor(this.pos / up);
        const phase = this.pos - base * up;
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
        this.pos += this.down;
      }
      this.pos -= n * up;
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

/** Float [-1, 1] to 16-bit PCM with clipping. */
export function floatToInt16(x: number): number {
  const v = Math.round(x * 32767);
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** Accumulates samples into fixed-size frames (the codec needs exactly 20 ms). */
export class Framer {
  private readonly frame: Int16Array;
  private fill = 0;

  constructor(readonly size: number) {
    this.frame = new Int16Array(size);
  }

  get pending(): number {
    return this.fill;
  }

  /** Adds float samples; calls emit with a fresh Int16Array for every full frame. */
  push(samples: Float32Array, n: number, emit: (frame: Int16Array) => void): void {
    for (let i = 0; i < n; i++) {
      this.frame[this.fill++] = floatToInt16(samples[i]!);
      if (this.fill === this.size) {
        emit(this.frame.slice());
        this.fill = 0;
      }
    }
  }

  /** The partial frame padded with silence, or null when there is none. */
  flush(): Int16Array | null {
    if (this.fill === 0) return null;
    const f = this.frame.slice();
    f.fill(0, this.fill);
    this.fill = 0;
    return f;
  }

  reset(): void {
    this.fill = 0;
  }
}
