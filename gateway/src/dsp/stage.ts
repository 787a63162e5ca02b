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

/** 16-bit scale (an Int16Array, or a resampler's float output at that scale) → ±1; the first `n`. */
export function toFloat(x: ArrayLike<number>, out = new Float32Array(x.length), n = x.length): Float32Array {
  for (let i = 0; i < n; i++) out[i] = x[i]! / 32768;
  return out;
}

export function toInt16(x: Float32Array, out = new Int16Array(x.length)): Int16Array {
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i]! * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

export const dbToLin = (db: number) => 10 ** (db / 20);
