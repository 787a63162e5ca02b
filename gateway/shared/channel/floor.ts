/**
 * Floor control without a server: one talker per channel.
 *
 * Every participant keeps the set of active claims (overs that started and have neither ended nor
 * gone silent) and gives the floor to the best one by a total order computed from the claims'
 * content alone — priority (higher first), then start time on the sender's clock (earlier first),
 * then stream id (lower first). Because the order uses nothing local, everyone who has seen the
 * same claims picks the same holder, in whatever order the claims arrived; a talker whose own
 * claim is not the holder stops and reports the channel busy. Talkers listen before they talk,
 * so real conflicts only arise inside one network delay. See docs/protocol.md.
 */

export interface Claim {
  stream: string;
  sender: string;
  /** Over start on the sender's clock (ms since the epoch). */
  t: number;
  priority: number;
}

/** True when claim a wins the floor over claim b. */
export function beats(a: Claim, b: Claim): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.t !== b.t) return a.t < b.t;
  return a.stream < b.stream;
}

export type FloorChange = { type: 'granted'; claim: Claim; previous: Claim | null } | { type: 'released'; claim: Claim; reason: 'end' | 'silence' };

export interface FloorOptions {
  /** An over whose talker has gone silent this long (ms) is over. */
  silenceMs: number;
  /** How many ended stream ids to remember, so stragglers cannot revive an over. */
  rememberEnded?: number;
}

interface Active {
  claim: Claim;
  lastHeard: number;
}

export class Floor {
  private readonly active = new Map<string, Active>();
  private readonly ended = new Set<string>();
  private current: Claim | null = null;

  constructor(private readonly opts: FloorOptions) {}

  get holder(): Claim | null {
    return this.current;
  }

  /** Whether packets of this stream should still be accepted. */
  isEnded(stream: string): boolean {
    return this.ended.has(stream);
  }

  isActive(stream: string): boolean {
    return this.active.has(stream);
  }

  /** Who claimed an over in progress: only they may end it. */
  owner(stream: string): string | null {
    return this.active.get(stream)?.claim.sender ?? null;
  }

  /** A START message, or the first audio packet of an over we joined late. */
  claim(c: Claim, now: number): FloorChange[] {
    if (this.ended.has(c.stream)) return [];
    const a = this.active.get(c.stream);
    if (a) {
      a.lastHeard = now;
      return [];
    }
    this.active.set(c.stream, { claim: c, lastHeard: now });
    return this.elect(null);
  }

  /** Audio heard from a stream: keeps it alive. */
  heard(stream: string, now: number): void {
    const a = this.active.get(stream);
    if (a) a.lastHeard = now;
  }

  /** An END message (or our own over finishing). */
  release(stream: string): FloorChange[] {
    const a = this.active.get(stream);
    this.markEnded(stream);
    if (!a) return [];
    this.active.delete(stream);
    return this.elect({ claim: a.claim, reason: 'end' });
  }

  /** When the quietest over in progress falls silent unless it is heard (null: none in progress). */
  nextSilence(): number | null {
    let due: number | null = null;
    for (const a of this.active.values()) if (due === null || a.lastHeard + this.opts.silenceMs < due) due = a.lastHeard + this.opts.silenceMs;
    return due;
  }

  /** Expires silent overs: call at nextSilence() (or any time). */
  tick(now: number): FloorChange[] {
    const out: FloorChange[] = [];
    for (const [stream, a] of this.active) {
      if (now - a.lastHeard >= this.opts.silenceMs) {
        this.active.delete(stream);
        this.markEnded(stream);
        out.push(...this.elect({ claim: a.claim, reason: 'silence' }));
      }
    }
    return out;
  }

  private elect(removed: { claim: Claim; reason: 'end' | 'silence' } | null): FloorChange[] {
    let best: Claim | null = null;
    for (const a of this.active.values()) if (!best || beats(a.claim, best)) best = a.claim;
    const out: FloorChange[] = [];
    const prev = this.current;
    if (removed && prev && removed.claim.stream === prev.stream) out.push({ type: 'released', claim: prev, reason: removed.reason });
    if (best?.stream !== prev?.stream) {
      this.current = best;
      if (best) out.push({ type: 'granted', claim: best, previous: prev && this.active.has(prev.stream) ? prev : null });
    }
    return out;
  }

  private markEnded(stream: string): void {
    this.ended.add(stream);
    const max = this.opts.rememberEnded ?? 256;
    if (this.ended.size > max) this.ended.delete(this.ended.values().next().value as string);
  }
}
