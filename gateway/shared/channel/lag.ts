/**
 * How late an over's start reaches us, compared with how that sender's overs usually arrive.
 *
 * The sender stamps each packet with its wall clock; our wall clock at arrival minus that stamp is
 * the path delay plus the difference between the two clocks. The clocks need not agree: only the
 * change matters. The smallest offset among a sender's last few over starts is its usual; an over
 * whose first packet comes much later than that was held back somewhere (a broker that withheld
 * it, a backlog in our own input) and is stale: fine to listen to, wrong to transmit on a radio.
 * A sender we have never heard has no usual yet: its first over is judged against our own clock,
 * so an over held back (by a broker, or in a backlog behind a flood) is caught even from a new
 * talker. Clocks that disagree by more than the tolerance cost that talker's first over: the next
 * one, just as "late", is a lasting shift and becomes the usual (below).
 */

/** Over starts remembered per sender. */
const WINDOW = 8;
/** Senders remembered; the least recently heard is forgotten first. */
const MAX_SENDERS = 256;

interface Seen {
  /** Offsets of the last WINDOW over starts. */
  offsets: number[];
  /** The offset of the last over judged late, if the one after it has not come yet. */
  late: number | null;
}

export class StartLag {
  private readonly seen = new Map<string, Seen>();

  /**
   * Records the first packet we got of one of `sender`'s overs (stamped `sentAt` on its clock,
   * arriving at `arrivedAt` on ours) and returns how many ms later than usual it came (≥ 0).
   * `tolerance` is how late still counts as on time: an over judged late whose successor comes
   * just as late is a lasting shift (the sender's clock was stepped back, a slower route), not a
   * held-back over, and the successor becomes the new usual, so a clock correction costs one over.
   */
  observe(sender: string, sentAt: number, arrivedAt: number, tolerance: number): number {
    const offset = arrivedAt - sentAt;
    let s = this.seen.get(sender);
    if (s) this.seen.delete(sender);
    else {
      s = { offsets: [], late: null };
      if (this.seen.size >= MAX_SENDERS) this.seen.delete(this.seen.keys().next().value as string);
    }
    this.seen.set(sender, s);
    let usual = s.offsets.length ? Infinity : 0;
    for (const o of s.offsets) if (o < usual) usual = o;
    let lag = Math.max(0, offset - usual);
    if (lag > tolerance && s.late !== null && Math.abs(offset - s.late) <= tolerance) {
      s.offsets.length = 0;
      lag = 0;
    }
    s.late = lag > tolerance ? offset : null;
    s.offsets.push(offset);
    if (s.offsets.length > WINDOW) s.offsets.shift();
    return lag;
  }
}
