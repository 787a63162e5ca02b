/**
 * Software squelch: carrier "detected" from the received audio level, for radios whose COS is not
 * wired out. The signal must stay above the threshold for `attackMs` to open and below it for
 * `hangMs` to close. Time is counted in samples, not wall clock, so a late timer cannot chop words.
 */
import type { Logger } from 'pino';
import type { AudioIn } from '../types.js';
import { rmsDb } from '../audio/levels.js';
import { CosBase } from './base.js';

export interface VoxOptions {
  thresholdDb: number;
  attackMs: number;
  hangMs: number;
  log?: Logger;
}

export class VoxCos extends CosBase {
  private above = 0;
  private below = 0;
  private unlisten: (() => void) | null = null;
  private open = false;

  constructor(
    private readonly audio: AudioIn,
    private readonly o: VoxOptions,
  ) {
    super(`VOX at ${o.thresholdDb} dBFS on ${audio.description}`, { invert: false, debounceMs: 0 }, o.log);
  }

  protected async startInput(): Promise<void> {
    this.unlisten = this.audio.on('data', (s) => this.feed(s));
  }

  /** Exposed for the level meter and tests: one block of received audio. */
  feed(s: Int16Array): void {
    const rate = this.audio.sampleRate;
    if (rmsDb(s) >= this.o.thresholdDb) {
      this.above += s.length;
      this.below = 0;
      if (!this.open && this.above * 1000 >= this.o.attackMs * rate) this.open = true;
    } else {
      this.below += s.length;
      this.above = 0;
      if (this.open && this.below * 1000 >= this.o.hangMs * rate) this.open = false;
    }
    // The level crossed the threshold attackMs (or hangMs) of audio ago, not now.
    this.input(this.open, performance.now() - ((this.open ? this.above : this.below) * 1000) / rate);
  }

  protected async closeInput(): Promise<void> {
    this.unlisten?.();
    this.unlisten = null;
  }
}
