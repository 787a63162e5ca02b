/**
 * How late an over's start reaches us, compared with how that sender's overs usually arrive.
 *
 * The sender stamps each packet with its wall clock; our wall clock at arrival minus that stamp is
 * the path delay plus the difference between the two clocks. The clocks need not agree: only the
 * change matters. The smallest offset among a sender's last few over starts is its usual; an over
 * whose first packet comes much later than that was held back somewhere (a broker that withheld
 * it, a backlog in our own input) and is stale: fine to listen to, wrong to transmit on a radio.
 * A sender we have never heard has no usual yet and counts as on time.
 */

/** Over starts remembered per sender. */
const WINDOW = 8;
/** Senders remembered; the least recently heard is forgotten first. */
const MAX_SENDERS = 256;

export class StartLag {
  private readonly seen = new Map<string, number[]>();

  /**
   * Records the first packet we got of one of `sender`'s overs (stamped `sentAt` on its clock,
   * arriving at `arrivedAt` on ours) and returns how many ms later than usual it came (≥ 0).
   */
  observe(sender: string, sentAt: number, arrivedAt: number): number {
    const offset = arrivedAt - sentAt;
    let past = this.seen.get(sender);
    if (past) this.seen.delete(sender);
    else {
      past = [];
      if (this.seen.size >= MAX_SENDERS) this.seen.delete(this.seen.keys().next().value as string);
    }
    this.seen.set(sender, past);
    let usual = Infinity;
    for (const o of past) if (o < usual) usual = o;
    past.push(offset);
    if (past.length > WINDOW) past.shift();
    return usual === Infinity ? 0 : Math.max(0, offset - usual);
  }
}
