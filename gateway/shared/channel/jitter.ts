/**
 * Adaptive jitter buffer for one over, on the receiving side.
 *
 * Frame k of an over is due at anchor + k·frameMs. The anchor is set by the first packet that
 * arrives (plus the current delay), so an over starts with a small delay; if the measured jitter
 * (arrival time against the ideal schedule, peak over recent packets) needs more, the buffer grows
 * one frame at a time by concealing without advancing, at a moment it has to conceal anyway. Delay
 * shrinks only between overs: the estimate carries over (JitterEstimator) and a new over starts
 * from it. A frame that arrives once its slot was concealed is never played (counted late); a
 * missing frame is concealed at its due time (a little after, for outputs that queue: pop()).
 * Times are plain numbers from a monotonic clock, so this code runs the same in Node, in browsers
 * and under a test's fake clock.
 */

export interface JitterOptions {
  frameMs: number;
  /** Never less delay than this over the earliest-seen arrival (ms). */
  minDelayMs: number;
  /** Never more (ms). */
  maxDelayMs: number;
  /** Added to the measured jitter peak (ms). */
  marginMs: number;
  /** Refuse frames this far (ms) ahead of the playout point: a hostile or corrupt seq jump. */
  maxAheadMs: number;
  /**
   * Refuse packets once this many bytes wait in the buffer (frame bytes plus FRAME_OVERHEAD each):
   * an over that arrives faster than it plays, or one that never gets the floor, holds a bounded
   * amount of memory however small its frames are.
   */
  maxBytes: number;
}

/** What one buffered frame costs beyond its bytes (map entry, array header), for maxBytes. */
export const FRAME_OVERHEAD = 48;

// 192 KiB holds ~50 s of 16 kbit/s speech in 20 ms frames, ~10 s in 2.5 ms frames.
export const JITTER_DEFAULTS: Omit<JitterOptions, 'frameMs'> = { minDelayMs: 10, maxDelayMs: 200, marginMs: 4, maxAheadMs: 120000, maxBytes: 192 * 1024 };

/** Peak jitter over the last `window` packets, kept across overs of one sender. */
export class JitterEstimator {
  private readonly samples: number[] = [];
  private pos = 0;

  constructor(private readonly window = 200) {}

  add(jitterMs: number): void {
    if (this.samples.length < this.window) this.samples.push(jitterMs);
    else this.samples[this.pos] = jitterMs;
    this.pos = (this.pos + 1) % this.window;
  }

  get peak(): number {
    let m = 0;
    for (const s of this.samples) if (s > m) m = s;
    return m;
  }

  target(o: Pick<JitterOptions, 'minDelayMs' | 'maxDelayMs' | 'marginMs'>): number {
    return Math.min(o.maxDelayMs, Math.max(o.minDelayMs, this.peak + o.marginMs));
  }
}

export interface IncomingPacket {
  seq: number;
  frames: readonly Uint8Array[];
  last: boolean;
}

export type PushResult = 'queued' | 'duplicate' | 'late' | 'too-far' | 'buffer-full';

export type PlayoutItem = { type: 'frame'; index: number; data: Uint8Array } | { type: 'conceal'; index: number } | { type: 'end' };

export interface OverStats {
  /** Packets that arrived in time to be played. */
  received: number;
  /** Packets that never arrived. */
  lost: number;
  /** Packets that arrived after their due time and were dropped. */
  late: number;
  duplicates: number;
  /** Frames played with packet-loss concealment. */
  concealed: number;
  played: number;
  /** Frames by which the buffer grew during the over. */
  stretched: number;
  delayMs: number;
}

export class JitterBuffer {
  private readonly frames = new Map<number, Uint8Array>();
  private readonly seqs = new Set<number>();
  private anchor: number | null = null;
  private next = 0;
  private lastIndex: number | null = null;
  private firstSeq = Infinity;
  private maxSeq = -1;
  private eMin = Infinity;
  private delay: number;
  private bytes = 0;
  /** Every frame from `next` up to (not including) this one is here. */
  private contiguous = 0;
  private readonly s = { received: 0, late: 0, duplicates: 0, concealed: 0, played: 0, stretched: 0 };

  constructor(
    private readonly o: JitterOptions,
    private readonly est: JitterEstimator = new JitterEstimator(),
  ) {
    this.delay = est.target(o);
  }

  push(p: IncomingPacket, arrival: number): PushResult {
    if (this.seqs.has(p.seq)) {
      this.s.duplicates++;
      return 'duplicate';
    }
    const fpp = p.frames.length;
    const first = p.seq * fpp;
    if (this.anchor !== null && (first - this.next) * this.o.frameMs > this.o.maxAheadMs) return 'too-far';
    let size = 0;
    for (let i = 0; i < fpp; i++) size += p.frames[i]!.length + FRAME_OVERHEAD;
    if (this.bytes + size > this.o.maxBytes) return 'buffer-full';
    this.seqs.add(p.seq);
    if (p.seq < this.firstSeq) this.firstSeq = p.seq;
    if (p.seq > this.maxSeq) this.maxSeq = p.seq;
    if (p.last) this.lastIndex = first + fpp - 1;

    const e = arrival - first * this.o.frameMs;
    if (e < this.eMin) this.eMin = e;
    this.est.add(e - this.eMin);

    if (this.anchor === null) {
      this.anchor = e + this.delay;
      this.next = this.contiguous = first;
    }
    // A packet whose first frames were already concealed still plays the rest: dropping it whole
    // left the next frame missing too, and with the jitter just measured wanting more delay, the
    // buffer stretched for a frame that had already come (on loopback, one GC pause raised an
    // over's delay by 40 ms for the rest of it).
    const from = Math.max(first, this.next);
    if (from >= first + fpp) {
      this.s.late++;
      return 'late';
    }
    for (let i = from - first; i < fpp; i++) {
      this.frames.set(first + i, p.frames[i]!);
      this.bytes += p.frames[i]!.length + FRAME_OVERHEAD;
    }
    this.s.received++;
    if (from <= this.contiguous) while (this.frames.has(this.contiguous)) this.contiguous++;
    return 'queued';
  }

  /**
   * When the audio already here runs out: the due time of the first frame after the unbroken run
   * from the playout point. An over that arrived in a burst is still going until then, however
   * long ago its last packet came; a gap (or a hostile jump ahead) does not count.
   */
  heardUntil(): number | null {
    return this.anchor === null ? null : this.anchor + Math.max(this.next, this.contiguous) * this.o.frameMs;
  }

  /** Bytes waiting, by the maxBytes measure. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /** The sender's END said how many packets there were: the over ends after the last one. */
  endAfter(packets: number, framesPerPacket: number): void {
    if (this.lastIndex === null) this.lastIndex = packets * framesPerPacket - 1;
    if (this.anchor === null && packets === 0) this.anchor = 0;
  }

  /** The next frame to play is here (or the over's end is). */
  nextHere(): boolean {
    return this.frames.has(this.next) || (this.lastIndex !== null && this.next > this.lastIndex);
  }

  /** Monotonic time at which the next item is due, or null before the first packet. */
  nextDue(): number | null {
    return this.anchor === null ? null : this.anchor + this.next * this.o.frameMs;
  }

  /**
   * The next item if it is due at `now`, else null. Call repeatedly until null. A frame that is
   * already here may be taken up to `ahead` ms early (the output queues it behind what is playing);
   * a missing one is concealed only `late` ms after its due time, since it may still come.
   */
  pop(now: number, ahead = 0, late = 0): PlayoutItem | null {
    if (this.anchor === null) return null;
    if (this.lastIndex !== null && this.next > this.lastIndex) return { type: 'end' };
    const index = this.next;
    const data = this.frames.get(index);
    if (now < this.anchor + index * this.o.frameMs + (data ? -ahead : late)) return null;
    if (data) {
      this.frames.delete(index);
      this.bytes -= data.length + FRAME_OVERHEAD;
      this.next++;
      this.s.played++;
      return { type: 'frame', index, data };
    }
    this.s.concealed++;
    const want = this.est.target(this.o);
    if (this.delay < want && this.delay + this.o.frameMs <= this.o.maxDelayMs) {
      // A miss while the measured jitter wants more delay: stretch (the frame may still come) instead of skipping.
      this.anchor += this.o.frameMs;
      this.delay += this.o.frameMs;
      this.s.stretched++;
    } else {
      this.next++;
      if (this.contiguous < this.next) {
        this.contiguous = this.next;
        while (this.frames.has(this.contiguous)) this.contiguous++;
      }
    }
    return { type: 'conceal', index };
  }

  /** Frames still waiting (for tests and status). */
  get buffered(): number {
    return this.frames.size;
  }

  /**
   * @param fromStart the receiver saw the over's START, so packets from seq 0 were due (otherwise it
   *   joined late and counts from the first packet it got)
   * @param sentPackets the sender's own count from its END message, when known
   */
  stats(fromStart: boolean, sentPackets?: number): OverStats {
    const from = fromStart || !Number.isFinite(this.firstSeq) ? 0 : this.firstSeq;
    const expected = (sentPackets ?? this.maxSeq + 1) - from;
    const lost = Math.max(0, expected - this.s.received - this.s.late);
    return { ...this.s, lost, delayMs: this.delay };
  }
}
