/**
 * Streaming sample-rate conversion by windowed-sinc interpolation (Blackman window, polyphase
 * table). The cut-off sits just under the lower Nyquist frequency, so 48 kHz card audio going to a
 * 16 kHz codec is properly band-limited, not aliased. Works on any chunk size, keeps state between
 * chunks, and adds HALF_TAPS input samples of delay.
 */

const HALF_TAPS = 16;
const MAX_PHASES = 4096;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export class Resampler {
  readonly inRate: number;
  readonly outRate: number;
  private readonly up: number;
  private readonly down: number;
  private readonly table: Float32Array | null;
  private readonly cutoff: number;
  /** Input history: the last 2*HALF_TAPS samples, then the new chunk. */
  private hist = new Float32Array(2 * HALF_TAPS);
  /** Position of the next output sample, in units of 1/up input samples, relative to hist[0]. */
  private pos: number;

  constructor(inRate: number, outRate: number) {
    if (!(inRate > 0 && outRate > 0 && Number.isInteger(inRate) && Number.isInteger(outRate))) throw new RangeError(`bad rates ${inRate} → ${outRate}`);
    this.inRate = inRate;
    this.outRate = outRate;
    const g = gcd(inRate, outRate);
    this.up = outRate / g;
    this.down = inRate / g;
    this.cutoff = Math.min(1, outRate / inRate) * 0.92;
    this.pos = HALF_TAPS * this.up;
    this.table = this.up <= MAX_PHASES ? this.buildTable() : null;
  }

  private kernel(x: number): number {
    // x in input samples from the centre; window spans ±HALF_TAPS.
    if (Math.abs(x) >= HALF_TAPS) return 0;
    const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / HALF_TAPS) + 0.08 * Math.cos((2 * Math.PI * x) / HALF_TAPS);
    const a = Math.PI * this.cutoff * x;
    return this.cutoff * (a === 0 ? 1 : Math.sin(a) / a) * w;
  }

  private buildTable(): Float32Array {
    const t = new Float32Array(this.up * 2 * HALF_TAPS);
    for (let p = 0; p < this.up; p++) {
      const frac = p / this.up;
      for (let k = 0; k < 2 * HALF_TAPS; k++) t[p * 2 * HALF_TAPS + k] = this.kernel(k - HALF_TAPS + 1 - frac);
    }
    return t;
  }

  process(input: Int16Array): Int16Array {
    if (this.up === this.down) return input.slice();
    const n = this.hist.length;
    const buf = new Float32Array(n + input.length);
    buf.set(this.hist);
    for (let i = 0; i < input.length; i++) buf[n + i] = input[i]!;
    const out: number[] = [];
    const T = 2 * HALF_TAPS;
    // Output at input position pos/up needs samples up to floor(pos/up) + HALF_TAPS.
    while (Math.floor(this.pos / this.up) + HALF_TAPS < buf.length) {
      const base = Math.floor(this.pos / this.up);
      const phase = this.pos - base * this.up;
      let acc = 0;
      const first = base - HALF_TAPS + 1;
      if (this.table) {
        const row = phase * T;
        for (let k = 0; k < T; k++) acc += buf[first + k]! * this.table[row + k]!;
      } else {
        const frac = phase / this.up;
        for (let k = 0; k < T; k++) acc += buf[first + k]! * this.kernel(k - HALF_TAPS + 1 - frac);
      }
      out.push(acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc));
      this.pos += this.down;
    }
    // Keep the last n samples as history and rebase pos onto them.
    const drop = buf.length - n;
    this.hist = buf.slice(drop);
    this.pos -= drop * this.up;
    return Int16Array.from(out);
  }

  /** Pushes out the samples still inside the filter. */
  flush(): Int16Array {
    return this.process(new Int16Array(HALF_TAPS));
  }

  /** Delay the filter adds, in output samples. */
  get delaySamples(): number {
    return Math.round((HALF_TAPS * this.outRate) / this.inRate);
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
