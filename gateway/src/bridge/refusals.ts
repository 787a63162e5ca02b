/**
 * The network overs a bridge will not transmit whatever the radio is doing, and what it remembers
 * to tell them: overs it has already turned down (each over is offered twice, when its first audio
 * arrives and when that audio starts to play), overs that came too late, and the next overs of a
 * talker whose last over starved the transmitter. Both memories are bounded, so a flood of stream
 * ids or senders cannot grow them.
 */
import type { TalkerInfo } from '../../shared/channel/session.js';

/**
 * After a talker's over starved the transmitter (audio that stopped, or never decoded), that
 * talker's next over within this long is not transmitted (ms): a sender whose overs bring a packet
 * of audio and then nothing must not key the radio over and over.
 */
const STARVED_HOLDOFF_MS = 3000;
const REMEMBERED = 64;

export class Refusals {
  private readonly skipped = new Set<string>();
  /** Talkers whose last over starved the transmitter, and when. */
  private readonly starved = new Map<string, number>();

  constructor(private readonly maxStartLagMs: number) {}

  has(stream: string): boolean {
    return this.skipped.has(stream);
  }

  add(stream: string): void {
    this.skipped.add(stream);
    if (this.skipped.size > REMEMBERED) this.skipped.delete(this.skipped.values().next().value as string);
  }

  starvedBy(sender: string, at: number): void {
    this.starved.delete(sender);
    this.starved.set(sender, at);
    if (this.starved.size > REMEMBERED) this.starved.delete(this.starved.keys().next().value as string);
  }

  /** Why `info`'s over (`desc` in messages) is not transmitted at `now`; null: the over itself is no reason. */
  check(info: TalkerInfo, desc: string, now: number): { why: string; stale: boolean } | null {
    const lag = info.lagMs ?? 0;
    if (lag > this.maxStartLagMs) return { why: `${desc} arrived ${Math.round(lag)} ms late: not transmitted`, stale: true };
    const starvedAt = this.starved.get(info.sender);
    if (starvedAt !== undefined && now - starvedAt < STARVED_HOLDOFF_MS) return { why: `${desc}: this talker's last over starved the transmitter, not transmitted`, stale: false };
    return null;
  }
}
