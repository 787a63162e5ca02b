/**
 * Channel → radio audio: resampled to the card's rate, limited so the transmitter is never
 * over-deviated, held back until the TX delay has passed, then written to the radio's output.
 * When audio may go out is the state machine's decision (begin, drop); this only does the audio
 * work.
 */
import { ResampleToFloat } from '../../shared/audio/resample.js';
import { limiter } from '../../shared/dsp/dynamics.js';
import { type Stage, toInt16 } from '../../shared/dsp/stage.js';
import type { AudioFrame, ChannelSession, TalkerInfo } from '../../shared/channel/session.js';
import type { Clock, Timer } from '../../shared/channel/types.js';
import type { AudioOut } from '../radio/types.js';

export class TxPipeline {
  /** From the rate the channel's audio arrives at (the codec's, or the card's when decoded to it). */
  private resample: ResampleToFloat | null = null;
  private readonly chain: Stage;
  private start = 0;
  private queue: Int16Array[] = [];
  private flushTimer: Timer | null = null;

  constructor(
    private readonly output: AudioOut,
    limiterDb: number,
    private readonly clock: Clock,
  ) {
    this.chain = limiter(output.sampleRate, { ceilingDb: limiterDb, releaseMs: 80 });
  }

  /** When audio may start to go out (clock ms): key-up plus the TX delay. */
  get startAt(): number {
    return this.start;
  }

  /** A new over: nothing of the last one is queued, and nothing goes out before `startAt`. */
  begin(startAt: number): void {
    this.drop();
    this.start = startAt;
  }

  /** Audio is still held for the TX delay. */
  get holding(): boolean {
    return this.flushTimer !== null;
  }

  /** PCM to the transmitter, held back until the TX delay has passed. */
  play(pcm: Int16Array, rate: number): void {
    const outRate = this.output.sampleRate;
    if (this.resample?.inRate !== rate) this.resample = new ResampleToFloat(rate, outRate);
    const f = this.resample.process(pcm);
    this.chain.process(f);
    // A new block each time: the output (or the TX-delay queue) keeps it.
    const out = toInt16(f);
    const wait = this.start - this.clock.now();
    if (wait > 0 || this.queue.length) {
      this.queue.push(out);
      this.flushTimer ??= this.clock.setTimeout(() => this.flush(), Math.max(0, wait));
      return;
    }
    this.output.write(out);
  }

  /** Audio at the card's rate (tones, announcements), limited and written at once; its length in ms. */
  tone(pcm: Float32Array): number {
    this.chain.process(pcm);
    this.output.write(toInt16(pcm));
    return (pcm.length * 1000) / this.output.sampleRate;
  }

  /**
   * Forgets what is held for the TX delay: it is not transmitted. Its flush timer goes with it: it
   * was due at the dropped over's start, and left armed it would flush the next over's audio
   * before that over's own TX delay is up.
   */
  drop(): void {
    if (this.flushTimer !== null) this.clock.clearTimeout(this.flushTimer);
    // A handle left set would still count as `holding`, and the bridge would wait for it forever.
    this.flushTimer = null;
    this.queue = [];
  }

  close(): void {
    this.drop();
  }

  private flush(): void {
    this.flushTimer = null;
    for (const b of this.queue.splice(0)) this.output.write(b);
  }
}

/** busyPolicy "wait": a network over's audio, held while the radio receives. */
export class HeldOver {
  private readonly pcm: Int16Array[] = [];
  private samples = 0;
  /** It has ended on the channel: nothing more of it will come. */
  ended = false;

  constructor(
    readonly session: ChannelSession,
    readonly info: TalkerInfo,
    private rate: number,
  ) {}

  get empty(): boolean {
    return this.pcm.length === 0;
  }

  /** Keeps a block of the over; false once it holds more than `maxSeconds`. */
  add(f: AudioFrame, maxSeconds: number): boolean {
    this.pcm.push(f.pcm);
    this.rate = f.sampleRate;
    this.samples += f.pcm.length;
    return this.samples <= maxSeconds * f.sampleRate;
  }

  /** Plays all of it, from its start; returns how long that is (ms). */
  playInto(tx: TxPipeline): number {
    for (const pcm of this.pcm) tx.play(pcm, this.rate);
    return (this.samples * 1000) / this.rate;
  }
}
