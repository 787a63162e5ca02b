/**
 * The overs a session is receiving: the one that holds the floor (played) and those waiting behind
 * it (only buffered). Each buffer is bounded, and so is their number, per sender and per channel.
 */
import type { FrameDecoder } from '../codec/codec.js';
import type { EndReason, Source } from './control.js';
import { JITTER_DEFAULTS, JitterBuffer, JitterEstimator, type JitterOptions } from './jitter.js';
import type { TalkerInfo } from './types.js';

/** Overs received at once on one channel, and from one sender (its current one and a straggler). */
export const MAX_OVERS = 8;
const MAX_OVERS_PER_SENDER = 2;
/** Senders whose network jitter is remembered between their overs. */
const MAX_ESTIMATORS = 64;

/** One over being received: buffered while it waits for the floor, played while it holds it. */
export interface IncomingOver {
  info: TalkerInfo;
  fromStart: boolean;
  sampleRate: number;
  frameMs: number;
  fpp: number;
  jb: JitterBuffer;
  decoder: FrameDecoder | null;
  sentPackets?: number;
  /** The reason the sender gave in its END, reported when playout reaches the end. */
  endReason?: EndReason;
  started: boolean;
  /** Decodable audio of this over has arrived (info.lagMs is set). */
  audible: boolean;
  /** Wall-clock capture time of frame 0. */
  t0: number;
}

export interface NewOver {
  sender: string;
  stream: string;
  /** Wall-clock capture time of its frame 0. */
  t: number;
  sampleRate: number;
  frameMs: number;
  fpp: number;
  /** Its START was seen (not a late join). */
  fromStart: boolean;
  name: string;
  source: Source;
}

export class IncomingOvers {
  private readonly overs = new Map<string, IncomingOver>();
  /** A sender's jitter carries over from one of its overs to the next. */
  private readonly estimators = new Map<string, JitterEstimator>();

  constructor(private readonly jitter: Partial<Omit<JitterOptions, 'frameMs'>> | undefined) {}

  get size(): number {
    return this.overs.size;
  }

  get(stream: string): IncomingOver | undefined {
    return this.overs.get(stream);
  }

  has(stream: string): boolean {
    return this.overs.has(stream);
  }

  delete(stream: string): void {
    this.overs.delete(stream);
  }

  values(): IterableIterator<IncomingOver> {
    return this.overs.values();
  }

  /** The streams received, oldest first (deleting while iterating is safe). */
  streams(): IterableIterator<string> {
    return this.overs.keys();
  }

  /**
   * Whether a new over from `sender` fits, and if only by dropping one, which: the oldest over
   * that does not hold the floor makes room (a sender's own first); the holder is never dropped
   * for a newcomer.
   */
  roomFor(sender: string, holder: string | undefined): { fits: boolean; victim: string | null } {
    let own = 0;
    let oldestOwn: string | null = null;
    let oldest: string | null = null;
    for (const [stream, inc] of this.overs) {
      if (stream === holder) continue;
      oldest ??= stream;
      if (inc.info.sender === sender) {
        own++;
        oldestOwn ??= stream;
      }
    }
    let ownTotal = own;
    if (holder && this.overs.get(holder)?.info.sender === sender) ownTotal++;
    const victim = ownTotal >= MAX_OVERS_PER_SENDER ? oldestOwn : this.overs.size >= MAX_OVERS ? oldest : null;
    const crowded = ownTotal >= MAX_OVERS_PER_SENDER || this.overs.size >= MAX_OVERS;
    return { fits: !crowded || victim !== null, victim };
  }

  /** Starts receiving an over (make room first: roomFor). */
  add(o: NewOver): IncomingOver {
    let est = this.estimators.get(o.sender);
    if (!est) {
      est = new JitterEstimator();
      this.estimators.set(o.sender, est);
      if (this.estimators.size > MAX_ESTIMATORS) this.estimators.delete(this.estimators.keys().next().value as string);
    }
    const inc: IncomingOver = {
      info: { stream: o.stream, sender: o.sender, name: o.name, source: o.source, t: o.t, self: false },
      fromStart: o.fromStart,
      sampleRate: o.sampleRate,
      frameMs: o.frameMs,
      fpp: o.fpp,
      jb: new JitterBuffer({ ...JITTER_DEFAULTS, ...this.jitter, frameMs: o.frameMs }, est),
      decoder: null,
      started: false,
      audible: false,
      t0: o.t,
    };
    this.overs.set(o.stream, inc);
    return inc;
  }
}
