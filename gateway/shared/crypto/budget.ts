/**
 * Who may cost us a key derivation, and who has proven they hold the channel key. Anyone who can
 * publish can invent stream and sender ids; each new one costs an HKDF before its packet can even
 * be authenticated, so that work is budgeted here.
 */

/**
 * Budget for per-over key derivations (HKDF, ~0.2 ms each with WebCrypto on a laptop, ~10× that on a
 * Pi Zero): every new (epoch, stream id, sender) costs one, and anyone who can publish can invent
 * stream ids (and, on an open broker, sender ids) at line rate. Token buckets:
 *  - per sender, burst 8 then 2 a second: a person starts at most about one over a second (a PTT
 *    press), a receiver sees that over plus stragglers of the previous one, and a receiver that
 *    joins mid-over needs one per talking sender; 8 covers a burst of quick presses;
 *  - for senders that never authenticated, also a global 50 a second (burst 50): an attacker
 *    inventing sender ids gets at most that many derivations, ~10 % of a Pi Zero core.
 * Overs announced by an authenticated START (ReplayGuard.announced) are never refused, so a
 * flood cannot silence a genuine over; nor can it evict the key of one (only keys of accepted
 * packets are kept in the stream-key cache).
 */
export const DERIVATION_BUDGET = {
  senderBurst: 8,
  senderPerSecond: 2,
  globalBurst: 50,
  globalPerSecond: 50,
};
/** Senders whose derivation budget is tracked; entries for unknown senders cost global budget. */
const MAX_BUCKETS = 1024;
/** Sender ids that authenticated at least once (only key holders can add one). */
const MAX_TRUSTED = 256;

/** A token bucket; `now` is the caller's wall clock (a step back refills nothing). */
class Bucket {
  constructor(
    public tokens: number,
    private at: number,
  ) {}

  take(now: number, burst: number, perSecond: number): boolean {
    if (now > this.at) this.tokens = Math.min(burst, this.tokens + ((now - this.at) * perSecond) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  has(now: number, burst: number, perSecond: number): boolean {
    if (now > this.at) this.tokens = Math.min(burst, this.tokens + ((now - this.at) * perSecond) / 1000);
    this.at = now;
    return this.tokens >= 1;
  }
}

/** Bounded memory: at most `max` entries, the oldest dropped first. */
export function remember<K, V>(m: Map<K, V>, k: K, v: V, max: number): void {
  m.set(k, v);
  if (m.size > max) m.delete(m.keys().next().value as K);
}

export class DerivationBudget {
  private readonly buckets = new Map<string, Bucket>();
  private readonly global = new Bucket(DERIVATION_BUDGET.globalBurst, -Infinity);
  private readonly trusted = new Set<string>();

  /**
   * May `sender` have a new over's key derived? Overs announced by an authenticated START always
   * may (`announced`); otherwise one token from the sender's bucket and, for a sender that never
   * authenticated, one from the global bucket (checked first, so that invented sender ids cannot
   * churn the bucket map faster than the global rate).
   */
  admit(sender: string, announced: boolean, now: number): boolean {
    if (announced) return true;
    const b = DERIVATION_BUDGET;
    let bucket = this.buckets.get(sender);
    if (bucket && !bucket.has(now, b.senderBurst, b.senderPerSecond)) return false;
    if (!this.trusted.has(sender) && !this.global.take(now, b.globalBurst, b.globalPerSecond)) return false;
    if (!bucket) {
      bucket = new Bucket(b.senderBurst, now);
      remember(this.buckets, sender, bucket, MAX_BUCKETS);
    }
    bucket.tokens -= 1;
    return true;
  }

  /** Whether input from `sender` has been accepted before (bounded memory: MAX_TRUSTED senders). */
  isTrusted(sender: string): boolean {
    return this.trusted.has(sender);
  }

  /** Input from `sender` was accepted: it holds the key (or relays one who does). */
  trust(sender: string): void {
    if (this.trusted.has(sender)) return;
    this.trusted.add(sender);
    if (this.trusted.size > MAX_TRUSTED) this.trusted.delete(this.trusted.values().next().value as string);
  }
}
