import type { IncomingOver } from './incoming.js';
import type { AudioFrame, Clock, OpusRate, SessionOptions, Timer } from './types.js';

/**
 * Playout for an output that queues what it is given (a gateway's `aplay`): SessionOptions
 * playAheadMs and concealLateMs. Both are small on purpose. A bridge's transmit path beats the PTT
 * guard's watchdog (150 ms by default) with every frame handed out, concealed ones included, so
 * the longest gap between two frames must stay well inside it: a packet handed out up to 40 ms
 * early, then a lost 40 ms packet whose first frame is concealed 30 ms after its due time, is a
 * 110 ms gap. A frame that arrives earlier than 40 ms before its due time (a deep jitter buffer,
 * a burst) waits for the timer, and that also keeps handed-out audio shorter than the shortest
 * starvation time (60 ms).
 */
export const QUEUED_PLAYOUT = { playAheadMs: 40, concealLateMs: 30 } as const;
/** How early (ms) playout may hand out a frame: see schedule(). */
const EARLY_MS = 2;
/** A playout timer this late (ms) means the event loop stalled: see onTimer(). */
const STALLED_MS = 10;

export interface PlayoutOptions {
  clock: Clock;
  /** SessionOptions.playAheadMs and concealLateMs (0 and 0: frames leave at their due time). */
  playAheadMs: number;
  concealLateMs: number;
  createDecoder: SessionOptions['createDecoder'];
  decodeRate?: OpusRate;
  /** The over that holds the floor, if it is one we receive. */
  current(): IncomingOver | null;
  /** Its first frame is about to go out. */
  started(inc: IncomingOver): void;
  frame(f: AudioFrame): void;
  /** Playout reached the over's end (its END, or the last packet it said it sent). */
  ended(inc: IncomingOver): void;
  count(reason: string, detail: string): void;
}

export class Playout {
  private timer: Timer | null = null;
  /** The due time the timer is aimed at. */
  private due: number | null = null;
  /** The timer is the one-turn deferral after a stall (onTimer). */
  private deferred = false;

  constructor(private readonly o: PlayoutOptions) {}

  /** A packet of the current over arrived. Played on arrival where the output queues it: no timer, no second wake-up. */
  arrived(inc: IncomingOver): void {
    if (inc.started && this.o.playAheadMs > 0 && !this.deferred) this.play();
    else this.schedule();
  }

  stop(): void {
    if (this.timer !== null) this.o.clock.clearTimeout(this.timer);
    this.timer = this.due = null;
    this.deferred = false;
  }

  /**
   * Arms the timer for the current over's next due frame; with playAheadMs, once the over plays,
   * for the moment a missing next frame must be concealed (due + concealLateMs). A timer that is
   * already armed and fires no later than needed is left alone: it finds nothing to do and aims
   * again, which is cheaper than re-arming, since Node still wakes at a cleared timer's expiry.
   */
  schedule(): void {
    const inc = this.o.current();
    const next = inc ? inc.jb.nextDue() : null;
    let at = next;
    if (inc && next !== null && inc.started && this.o.playAheadMs > 0) at = inc.jb.nextHere() ? next - this.o.playAheadMs : next + this.o.concealLateMs;
    if (this.timer !== null && at !== null && this.due !== null && this.due <= at) return;
    this.stop();
    this.due = at;
    if (at === null) return;
    // Node timers count whole milliseconds from a loop time that can be a millisecond or so stale:
    // one aimed at the due time may fire up to ~2 ms early, find nothing due and need a chain of
    // 1 ms wake-ups. Playing what is due within EARLY_MS costs nothing (the output is buffered).
    this.timer = this.o.clock.setTimeout(() => this.onTimer(at), Math.max(0, Math.ceil(at - this.o.clock.now())));
  }

  /**
   * After a stall (GC, a busy machine) the timer fires late, and Node runs overdue timers before it
   * reads sockets: packets that arrived meanwhile are still unread, and playing now would conceal
   * frames that are already here (and then drop them as late). One turn of the loop lets them in
   * first; a timer at 0 ms runs after this turn's reading, in Node and in browsers alike.
   */
  private onTimer(due: number): void {
    if (!this.deferred && this.o.clock.now() - due > STALLED_MS) {
      this.deferred = true;
      this.timer = this.o.clock.setTimeout(() => this.onTimer(due), 0);
      return;
    }
    this.timer = null;
    this.deferred = false;
    this.play();
  }

  /** Plays what is due; from the timer, or on arrival (playAheadMs) with the timer left armed. */
  private play(): void {
    const inc = this.o.current();
    if (!inc) return;
    const now = this.o.clock.now() + EARLY_MS;
    // Once an over plays, the rest of a packet that is already here goes out with its first frame:
    // one wake-up per packet instead of one per frame, and no later for it (a sound card plays it
    // right after the frame before). The over's first frame still waits for its due time, which
    // is what gives the jitter buffer its depth.
    const ahead = Math.max((inc.fpp - 1) * inc.frameMs, this.o.playAheadMs);
    const late = this.o.playAheadMs > 0 ? this.o.concealLateMs : 0;
    for (let item = inc.jb.pop(now, inc.started ? ahead : 0, inc.started ? late : 0); item; item = inc.jb.pop(now, inc.started ? ahead : 0, inc.started ? late : 0)) {
      if (item.type === 'end') return this.o.ended(inc);
      if (!inc.started) {
        inc.started = true;
        inc.decoder = this.o.createDecoder({ sampleRate: this.o.decodeRate ?? (inc.sampleRate as OpusRate), frameMs: inc.frameMs as 20 });
        this.o.started(inc);
      }
      let pcm: Int16Array;
      let concealed = item.type === 'conceal';
      try {
        pcm = item.type === 'frame' ? inc.decoder!.decode(item.data) : inc.decoder!.conceal();
      } catch (err) {
        this.o.count('decode', (err as Error).message);
        pcm = inc.decoder!.conceal();
        concealed = true;
      }
      this.o.frame({
        pcm,
        sampleRate: inc.decoder!.sampleRate,
        stream: inc.info.stream,
        index: item.index,
        concealed,
        latencyMs: this.o.clock.wall() - (inc.t0 + item.index * inc.frameMs),
        packetStart: item.index % inc.fpp === 0,
        packetMs: inc.fpp * inc.frameMs,
      });
    }
    this.schedule();
  }
}
