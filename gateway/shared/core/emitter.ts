/**
 * A typed event emitter that runs in Node and browsers alike (shared protocol code cannot use
 * node:events). A throwing listener is reported to `onListenerError` and never breaks the emitter
 * or the other listeners: one faulty consumer must not stop audio or PTT handling.
 */
export type Listener<A extends unknown[]> = (...args: A) => void;

export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners: { [K in keyof E]?: Set<Listener<E[K]>> } = {};
  onListenerError: (err: unknown, event: string) => void = (err) => {
    queueMicrotask(() => {
      throw err;
    });
  };

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    (this.listeners[event] ??= new Set()).add(fn);
    return () => this.off(event, fn);
  }

  once<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    const off = this.on(event, ((...args: E[K]) => {
      off();
      fn(...args);
    }) as Listener<E[K]>);
    return off;
  }

  off<K extends keyof E>(event: K, fn: Listener<E[K]>): void {
    this.listeners[event]?.delete(fn);
  }

  emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.listeners[event];
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        this.onListenerError(err, String(event));
      }
    }
  }

  removeAll(): void {
    for (const k of Object.keys(this.listeners)) delete this.listeners[k as keyof E];
  }
}
