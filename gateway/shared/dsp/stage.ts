/**
 * The audio graph's building block (SvxLink's tiny nodes): a stage transforms a block of float
 * samples (full scale = ±1) in place and keeps its own state between blocks. Chains are built from
 * a list, so each radio's receive and transmit paths read as a declaration, not wiring code.
 */
export interface Stage {
  process(x: Float32Array): void;
  reset(): void;
}

export function chain(stages: Stage[]): Stage {
  return {
    process(x) {
      for (const s of stages) s.process(x);
    },
    reset() {
      for (const s of stages) s.reset();
    },
  };
}

/**
 * The one float ⇄ 16-bit convention, in the gateway and the browser alike: full scale is 32768,
 * so -1 ↔ -32768 exactly and +1 clips to 32767 (the daemon's and the browser's used to differ by a
 * step, 32768 against 32767).
 */
const SCALE = 32768;

/** One sample, float (±1) → 16-bit, rounded and clipped. */
export function toInt16Sample(x: number): number {
  const v = Math.round(x * SCALE);
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** 16-bit scale (an Int16Array, or a resampler's float output at that scale) → ±1; `n` samples from `from`. */
export function toFloat(x: ArrayLike<number>, out = new Float32Array(x.length), n = x.length, from = 0): Float32Array {
  for (let i = 0; i < n; i++) out[i] = x[from + i]! / SCALE;
  return out;
}

export function toInt16(x: Float32Array, out = new Int16Array(x.length)): Int16Array {
  for (let i = 0; i < x.length; i++) out[i] = toInt16Sample(x[i]!);
  return out;
}

export const dbToLin = (db: number) => 10 ** (db / 20);
