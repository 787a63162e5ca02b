/**
 * The state machine's timers: named ones, at most one of each (setting one again replaces it), and
 * unnamed ones that run once; stopping the bridge cancels them all at once. On the bridge's clock,
 * so that tests run them in simulated time.
 */
import type { Clock, Timer } from '../../shared/channel/types.js';

export class Timers<Name extends string> {
  private readonly named = new Map<Name, Timer>();
  private readonly once = new Set<Timer>();

  constructor(private readonly clock: Clock) {}

  set(name: Name, ms: number, fn: () => void): void {
    this.clear(name);
    this.named.set(
      name,
      this.clock.setTimeout(() => {
        this.named.delete(name);
        fn();
      }, ms),
    );
  }

  has(name: Name): boolean {
    return this.named.has(name);
  }

  clear(name: Name): void {
    if (!this.named.has(name)) return;
    this.clock.clearTimeout(this.named.get(name));
    this.named.delete(name);
  }

  after(ms: number, fn: () => void): void {
    const t = this.clock.setTimeout(() => {
      this.once.delete(t);
      fn();
    }, ms);
    this.once.add(t);
  }

  clearAll(): void {
    for (const t of [...this.named.values(), ...this.once]) this.clock.clearTimeout(t);
    this.named.clear();
    this.once.clear();
  }
}
