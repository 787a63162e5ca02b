/**
 * Audio-thread helpers for the AudioWorklet: the resampler is the gateway's own
 * (gateway/src/audio/resample.ts, allocation-free); float ↔ 16-bit and 20 ms framing live here.
 */

export { StreamResampler } from '../../src/audio/resample.js';

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
