/**
 * IIR filters from the RBJ audio-EQ cookbook, as cascaded biquads (direct form II transposed).
 */
import type { Stage } from './stage.js';

interface Coeffs {
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
}

class Biquad {
  private z1 = 0;
  private z2 = 0;
  constructor(private readonly c: Coeffs) {}
  run(x: Float32Array): void {
    const { b0, b1, b2, a1, a2 } = this.c;
    let z1 = this.z1;
    let z2 = this.z2;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const y = b0 * v + z1;
      z1 = b1 * v - a1 * y + z2;
      z2 = b2 * v - a2 * y;
      x[i] = y;
    }
    // Denormals would make a silent input slow on some CPUs.
    this.z1 = Math.abs(z1) < 1e-20 ? 0 : z1;
    this.z2 = Math.abs(z2) < 1e-20 ? 0 : z2;
  }
  reset(): void {
    this.z1 = this.z2 = 0;
  }
}

function highpassCoeffs(fc: number, q: number, rate: number): Coeffs {
  const w = (2 * Math.PI * fc) / rate;
  const alpha = Math.sin(w) / (2 * q);
  const cos = Math.cos(w);
  const a0 = 1 + alpha;
  return { b0: (1 + cos) / 2 / a0, b1: -(1 + cos) / a0, b2: (1 + cos) / 2 / a0, a1: (-2 * cos) / a0, a2: (1 - alpha) / a0 };
}

function lowpassCoeffs(fc: number, q: number, rate: number): Coeffs {
  const w = (2 * Math.PI * fc) / rate;
  const alpha = Math.sin(w) / (2 * q);
  const cos = Math.cos(w);
  const a0 = 1 + alpha;
  return { b0: (1 - cos) / 2 / a0, b1: (1 - cos) / a0, b2: (1 - cos) / 2 / a0, a1: (-2 * cos) / a0, a2: (1 - alpha) / a0 };
}

/** Butterworth pole-pair Qs for an even order. */
function butterworthQs(order: number): number[] {
  const qs: number[] = [];
  for (let k = 0; k < order / 2; k++) qs.push(1 / (2 * Math.cos(((2 * k + 1) * Math.PI) / (2 * order))));
  return qs;
}

class Cascade implements Stage {
  constructor(private readonly sections: Biquad[]) {}
  process(x: Float32Array): void {
    for (const s of this.sections) s.run(x);
  }
  reset(): void {
    for (const s of this.sections) s.reset();
  }
}

/**
 * Butterworth high-pass. The default (300 Hz, 6th order) keeps CTCSS sub-audible tones
 * (67–254 Hz) off the channel: 100 Hz is ~57 dB down, 500 Hz passes within 0.1 dB.
 */
export function highpass(rate: number, fc = 300, order = 6): Stage {
  return new Cascade(butterworthQs(order).map((q) => new Biquad(highpassCoeffs(fc, q, rate))));
}

export function lowpass(rate: number, fc: number, order = 4): Stage {
  return new Cascade(butterworthQs(order).map((q) => new Biquad(lowpassCoeffs(fc, q, rate))));
}

/** Removes a DC offset (cheap sound cards have one) with a one-pole high-pass near 10 Hz. */
export function dcBlock(rate: number): Stage {
  const r = Math.exp((-2 * Math.PI * 10) / rate);
  let x1 = 0;
  let y1 = 0;
  return {
    process(x) {
      // Locals in the loop, as in Biquad.run (see dynamics.ts).
      let px = x1;
      let py = y1;
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        py = v - px + r * py;
        px = v;
        x[i] = py;
      }
      x1 = px;
      y1 = Math.abs(py) < 1e-20 ? 0 : py;
    },
    reset() {
      x1 = y1 = 0;
    },
  };
}

/**
 * FM de-emphasis for radios whose audio comes from the discriminator unfiltered ("flat"): a
 * 6 dB/octave roll-off (750 µs, corner ≈ 212 Hz) normalised to 0 dB at 1 kHz.
 */
export function deemphasis(rate: number, tauUs = 750): Stage {
  const a = Math.exp(-1 / (rate * tauUs * 1e-6));
  // Gain of the one-pole at 1 kHz, so speech keeps its level.
  const w = (2 * Math.PI * 1000) / rate;
  const g = Math.hypot(1 - a * Math.cos(w), a * Math.sin(w)) / (1 - a);
  let y1 = 0;
  return {
    process(x) {
      let y = y1;
      for (let i = 0; i < x.length; i++) {
        y = (1 - a) * x[i]! + a * y;
        x[i] = y * g;
      }
      y1 = Math.abs(y) < 1e-20 ? 0 : y;
    },
    reset() {
      y1 = 0;
    },
  };
}
