/**
 * Key epochs in use on a channel: which may still be read, and since when the newest one has been
 * in use. A key rotation starts a new epoch; older epochs stay readable for an overlap after the
 * newer one is first seen in authenticated use, then are refused.
 */
import type { Refusal } from '../channel/sealer.js';

export class EpochPolicy {
  /** Newest epoch seen in authenticated use, and when it was first seen. */
  private newest = -1;
  private newestAt = 0;

  constructor(
    /** Epochs we hold a key for. */
    private readonly readable: ReadonlySet<number>,
    /** The epoch we send with (our newest key). */
    private readonly sendEpoch: number,
    private readonly overlapMs: number,
    /** The newest epoch in use advanced. */
    private readonly advanced: (epoch: number, since: number) => void,
  ) {}

  /** Unknown epochs are unreadable; older ones expire overlapMs after a newer one is in use. */
  problem(epoch: number, now: number): Refusal | null {
    if (!this.readable.has(epoch)) return { reason: 'unknown-epoch', detail: `no key for epoch ${epoch}` };
    if (epoch < this.newest && now - this.newestAt > this.overlapMs) return { reason: 'old-epoch', detail: `epoch ${epoch} retired (epoch ${this.newest} in use)` };
    return null;
  }

  /** `epoch` was used by authenticated input, or by us. */
  saw(epoch: number, now: number): void {
    if (epoch > this.newest) {
      this.newest = epoch;
      this.newestAt = now;
      this.advanced(epoch, now);
    }
  }

  /**
   * The newest key epoch seen in authenticated use (received, or sent by us) and our wall-clock time
   * when it was first seen; null before any. Kept across restarts with the replay state, so that the
   * overlap during which older epochs stay valid does not start again at every restart.
   */
  inUse(): { epoch: number; since: number } | null {
    return this.newest < 0 ? null : { epoch: this.newest, since: this.newestAt };
  }

  /**
   * Takes back a saved inUse() at start; returns whether it was taken. Ignored: anything
   * malformed, an epoch older than one already known, and an epoch newer than every key we hold (the
   * configuration was rolled back; retiring our own keys would silence the channel — the operator's
   * choice wins). The same epoch keeps the earlier time; a time in our future (a clock that went
   * back, as a Pi without RTC does at boot) counts as now, so the overlap never grows.
   */
  restore(saved: unknown, now: number): boolean {
    if (typeof saved !== 'object' || saved === null) return false;
    const { epoch, since } = saved as { epoch?: unknown; since?: unknown };
    if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff || typeof since !== 'number' || !Number.isFinite(since)) return false;
    if (epoch > this.sendEpoch || epoch < this.newest) return false;
    const at = Math.min(since, now);
    if (epoch === this.newest) this.newestAt = Math.min(this.newestAt, at);
    else {
      this.newest = epoch;
      this.newestAt = at;
    }
    return true;
  }
}
