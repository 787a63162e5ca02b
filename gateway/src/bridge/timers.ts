/**
 * The state machine's timers: named ones, at most one of each (setting one again replaces it), and
 * unnamed ones that run once; stopping the bridge cancels them all at once.
 */
export class Timers<Name extends string> {
  private readonly named = new Map<Name, NodeJS.Timeout>();
  private readonly once = new Set<NodeJS.Timeout>();

  set(name: Name, ms: number, fn: () => void): void {
    this.clear(name);
    this.named.set(
      name,
      setTimeout(() => {
        this.named.delete(name);
        fn();
      }, ms),
    );
  }

  has(name: Name): boolean {
    return this.named.has(name);
  }

  clear(name: Name): void {
    const t = this.named.get(name);
    if (t === undefined) return;
    clearTimeout(t);
    this.named.delete(name);
  }

  after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.once.delete(t);
      fn();
    }, ms);
    this.once.add(t);
  }

  clearAll(): void {
    for (const t of [...this.named.values(), ...this.once]) clearTimeout(t);
    this.named.clear();
    this.once.clear();
  }
}
