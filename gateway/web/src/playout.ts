/**
 * The playback queue inside the audio thread. Frames arrive from the main thread at their due
 * times (the shared jitter buffer schedules them); main-thread timers wobble by a few ms, so the
 * queue starts each over `marginMs` after its first samples arrive and grows that margin after an
 * underrun (up to maxMarginMs). It also bounds its own length: audio queued behind a stalled tab is
 * dropped rather than played late. Pure logic on a preallocated ring, unit-tested in Node.
 */
export interface PlayoutOptions {
  rate: number;
  marginMs: number;
  maxMarginMs: number;
  /** Queue longer than this (ms) drops its oldest audio. */
  maxQueueMs: number;
}

export const PLAYOUT_DEFAULTS = { marginMs: 12, maxMarginMs: 80, maxQueueMs: 400 };

export class Playout {
  private readonly ring: Float32Array;
  private read = 0;
  private size = 0;
  /** Sample time at which a waiting queue starts playing; null while playing or empty. */
  private startAt: number | null = null;
  playing = false;
  margin: number;
  underruns = 0;
  dropped = 0;
  /** The sender finished: play what is queued without waiting, then go idle. */
  private draining = false;

  constructor(private readonly o: PlayoutOptions) {
    this.ring = new Float32Array(Math.ceil((o.rate * o.maxQueueMs) / 1000) + 8192);
    this.margin = Math.round((o.rate * o.marginMs) / 1000);
  }

  get queued(): number {
    return this.size;
  }

  push(samples: Float32Array, n: number, now: number): void {
    const cap = Math.ceil((this.o.rate * this.o.maxQueueMs) / 1000);
    for (let i = 0; i < n; i++) {
      if (this.size >= cap) {
        this.read = (this.read + 1) % this.ring.length;
        this.size--;
        this.dropped++;
      }
      this.ring[(this.read + this.size) % this.ring.length] = samples[i]!;
      this.size++;
    }
    this.draining = false;
    if (!this.playing && this.startAt === null && this.size > 0) this.startAt = now + this.margin;
  }

  /** No more audio for this over: do not hold back what is queued. */
  end(): void {
    this.draining = true;
    if (!this.playing && this.size > 0) this.startAt = 0;
  }

  clear(): void {
    this.read = this.size = 0;
    this.playing = false;
    this.startAt = null;
    this.draining = false;
  }

  /**
   * Fills `out` (length n) for the render quantum starting at sample time `now`; returns how many
   * samples were real audio (the rest is silence).
   */
  render(out: Float32Array, n: number, now: number): number {
    if (!this.playing) {
      if (this.startAt === null || now + n <= this.startAt) {
        out.fill(0, 0, n);
        return 0;
      }
      this.playing = true;
      this.startAt = null;
    }
    const take = Math.min(n, this.size);
    for (let i = 0; i < take; i++) out[i] = this.ring[(this.read + i) % this.ring.length]!;
    out.fill(0, take, n);
    this.read = (this.read + take) % this.ring.length;
    this.size -= take;
    if (take < n) {
      this.playing = false;
      if (!this.draining) {
        // Ran dry mid-over: the main thread's timing is worse than the margin allowed for.
        this.underruns++;
        this.margin = Math.min(Math.round((this.o.rate * this.o.maxMarginMs) / 1000), this.margin + Math.round(this.o.rate * 0.01));
      }
    }
    return take;
  }
}
