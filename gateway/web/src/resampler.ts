/**
 * Audio-thread helpers for the AudioWorklet: the resampler is the gateway's own
 * (gateway/shared/audio/resample.ts, allocation-free), float → 16-bit is dsp/stage.ts's; 20 ms framing lives here.
 */

import { toInt16Sample } from '../../shared/dsp/stage.js';

export { StreamResampler } from '../../shared/audio/resample.js';

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
      this.frame[this.fill++] = toInt16Sample(samples[i]!);
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
