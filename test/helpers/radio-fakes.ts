/**
 * Radio I/O that exists only in memory, for driving a Bridge without hardware: carrier detect you
 * set by hand and a capture you push blocks into. Shared by the bridge tests and the bridge
 * benchmark; each keeps its own PTT and output fakes, since what they record is what each is about.
 */
import { Emitter } from '../../gateway/shared/core/emitter.js';
import type { AudioIn, AudioInEvents, AudioState, CarrierDetect, CarrierEvents, Levels } from '../../gateway/src/radio/types.js';

export const NO_LEVELS: Levels = { peakDb: -Infinity, rmsDb: -Infinity, clipped: 0, samples: 0 };

/** A squelch line: `set(open)` reports a change (and only a change), as a debounced driver does. */
export class FakeCarrier extends Emitter<CarrierEvents> implements CarrierDetect {
  carrier = false;
  constructor(readonly description = 'fake carrier detect') {
    super();
  }
  set(open: boolean): void {
    if (open === this.carrier) return;
    this.carrier = open;
    this.emit('carrier', open);
  }
  async start() {}
  async close() {}
}

/** A sound card's capture side: `push(block)` delivers a block as a card read would. */
export class FakeCapture extends Emitter<AudioInEvents> implements AudioIn {
  state: AudioState = 'running';
  constructor(
    readonly sampleRate: number,
    readonly description = 'fake capture',
  ) {
    super();
  }
  push(block: Int16Array): void {
    this.emit('data', block);
  }
  async start() {}
  levels(): Levels {
    return NO_LEVELS;
  }
  async close() {}
}
