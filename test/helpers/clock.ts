/**
 * A manual clock for the Clock seam of ChannelSession (gateway/shared/channel/types.ts): time stands
 * still until a test advances it, and then every timer due on the way fires at its own moment, in
 * due order, with the promises it settles run before the next one. Tests of timing rules read in
 * simulated milliseconds and take none of real time.
 */
import type { Clock, Timer } from '../../gateway/shared/channel/types.js';

interface Pending {
  at: number;
  order: number;
  fn: () => void;
}

/** Lets queued promise callbacks and in-memory broker deliveries (microtasks) run. */
export const settle = () => new Promise<void>((r) => setImmediate(r));

export class ManualClock implements Clock {
  private t = 0;
  private order = 0;
  private readonly timers = new Map<number, Pending>();
  /** Wall time at monotonic 0: today, so that what is stamped on the wire looks current. */
  private readonly epoch = Date.now();

  now(): number {
    return this.t;
  }

  wall(): number {
    return this.epoch + this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = ++this.order;
    this.timers.set(id, { at: this.t + Math.max(0, ms), order: id, fn });
    return id;
  }

  clearTimeout(t: Timer): void {
    this.timers.delete(t as number);
  }

  /** Timers armed and not yet fired. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time on by `ms`, firing each timer due meanwhile at its due time. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next: [number, Pending] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].order < next[1].order))) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  /**
   * The event loop was blocked for `ms`: time moves on and no timer fires. Then fireDue() is the
   * loop's timers phase, which Node runs before it reads what arrived meanwhile.
   */
  stall(ms: number): void {
    this.t += ms;
  }

  /** Fires, synchronously and in due order, the timers already due; timers they arm wait for the next turn. */
  fireDue(): void {
    const due = [...this.timers].filter(([, p]) => p.at <= this.t).sort((a, b) => a[1].at - b[1].at || a[1].order - b[1].order);
    for (const [id, p] of due) {
      if (!this.timers.delete(id)) continue;
      p.fn();
    }
  }

  /** Advances in `step` ms increments, calling `each` before every step (a sender paced by the clock). */
  async run(ms: number, step: number, each: (now: number) => void): Promise<void> {
    for (let done = 0; done < ms; done += step) {
      each(this.t);
      await this.advance(step);
    }
  }
}
