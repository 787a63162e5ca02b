/**
 * Radio → channel audio: capture kept in a pre-roll ring while idle; once an over is being sent,
 * resampled to the codec's rate, through the receive filters, cut into frames, encoded and handed
 * on a packet at a time. Whether an over is being sent is the state machine's decision (start,
 * stop); this only does the audio work.
 */
import { ResampleToFloat } from '../../shared/audio/resample.js';
import type { OutgoingOver } from '../../shared/channel/session.js';
import type { FrameEncoder } from '../../shared/codec/codec.js';
import { agc, AGC_DEFAULTS, limiter } from '../../shared/dsp/dynamics.js';
import { dcBlock, deemphasis, highpass } from '../../shared/dsp/filters.js';
import { type Stage, chain, toInt16Sample } from '../../shared/dsp/stage.js';
import type { BridgeConfig } from './schema.js';

/**
 * Capture kept, unprocessed, while no over is being sent (ms): the start of the next over is in
 * it (the carrier is announced a debounce after it rose), and running this much through the
 * receive filters first settles them. Idle, the receive path costs a copy, not the filter chain.
 */
const PRE_ROLL_KEEP_MS = 120;
/** Sent from before the carrier's edge: the carrier input's own delay (ms). */
const PRE_ROLL_MARGIN_MS = 5;

/**
 * How much audio the bridge asks a radio's sound card to deliver per read: a whole packet (or the
 * largest whole-frame part of one up to 60 ms). A packet leaves only when its last frame has been
 * captured, so reading it in one go adds no delay; at the default two 20 ms frames per packet it
 * halves the wake-ups of the sending side, and the work each wake-up costs around the audio itself
 * (measured in docs/operations.md). Longer reads would only coarsen VOX.
 */
export function capturePeriodMs(frameMs: number, framesPerPacket: number): number {
  let k = framesPerPacket;
  while (k > 1 && (framesPerPacket % k !== 0 || frameMs * k > 60)) k--;
  return frameMs * k;
}

export interface RxOptions {
  /** The sound card's capture rate. */
  inRate: number;
  /** Its rate and frame size are the channel's. */
  encoder: FrameEncoder;
  frameMs: number;
  framesPerPacket: number;
  squelchTailMs: number;
  audio: BridgeConfig['rxAudio'];
}

export class RxPipeline {
  private readonly rate: number;
  /** The card's rate to the codec's, and the frame being filled (both reused). */
  private readonly resample: ResampleToFloat;
  private readonly frame: Int16Array;
  private fill = 0;
  private readonly chain: Stage;
  /** The last PRE_ROLL_KEEP_MS of capture while idle (a ring at the card's rate). */
  private readonly ring: Int16Array;
  private ringPos = 0;
  private ringFill = 0;
  /** When the newest capture block arrived: about when its last sample was captured. */
  private lastBlockAt = 0;
  private readonly tail: Int16Array[] = [];
  private encoded: Uint8Array[] = [];
  private sending: OutgoingOver | null = null;

  constructor(private readonly o: RxOptions) {
    const rate = o.encoder.sampleRate;
    this.rate = rate;
    this.resample = new ResampleToFloat(o.inRate, rate);
    this.frame = new Int16Array(o.encoder.frameSamples);
    this.ring = new Int16Array(Math.ceil((o.inRate * PRE_ROLL_KEEP_MS) / 1000));
    const a = o.audio;
    const rx: Stage[] = [dcBlock(rate)];
    if (a.highpassHz > 0) rx.push(highpass(rate, a.highpassHz));
    if (a.deemphasis) rx.push(deemphasis(rate));
    if (a.agc) rx.push(agc(rate, { ...AGC_DEFAULTS, targetDb: a.targetDb }));
    rx.push(limiter(rate, { ceilingDb: -1, releaseMs: 80 }));
    this.chain = chain(rx);
  }

  /** A block of capture from the card. */
  input(pcm: Int16Array): void {
    // Real time, whatever clock the bridge runs on: compared with the carrier driver's `since`,
    // which is performance.now() (radio/types.ts).
    this.lastBlockAt = performance.now();
    if (this.sending) this.toFrames(this.resample.process(pcm), 0);
    else this.keep(pcm);
  }

  /** The over being sent to, if any. */
  get over(): OutgoingOver | null {
    return this.sending;
  }

  /**
   * Sends to `over` from now on, starting with the pre-roll from `edge` (when the carrier line
   * rose, on performance.now(); unknown: now).
   */
  start(over: OutgoingOver, edge: number | undefined): void {
    this.sending = over;
    this.encoded = [];
    this.tail.length = 0;
    this.preRoll(edge ?? performance.now());
  }

  /** Stops sending: the unsent part is the squelch tail and is dropped. Returns the over it was sent to; ending it is the caller's. */
  stop(): OutgoingOver | null {
    const over = this.sending;
    this.sending = null;
    this.encoded = [];
    this.tail.length = 0;
    return over;
  }

  close(): void {
    this.o.encoder.close();
  }

  private keep(pcm: Int16Array): void {
    const ring = this.ring;
    let src = pcm;
    if (src.length > ring.length) src = src.subarray(src.length - ring.length);
    const first = Math.min(src.length, ring.length - this.ringPos);
    ring.set(src.subarray(0, first), this.ringPos);
    ring.set(src.subarray(first), 0);
    this.ringPos = (this.ringPos + src.length) % ring.length;
    this.ringFill = Math.min(ring.length, this.ringFill + src.length);
  }

  /**
   * The over's start, from the idle ring: everything kept goes through the receive path, so its
   * filters and AGC settle on this radio's audio, and what was captured since the carrier's edge
   * (less a margin) is sent: the debounce no longer clips the first syllable.
   */
  private preRoll(edge: number): void {
    const n = this.ringFill;
    this.fill = 0;
    if (n === 0) return;
    const pcm = new Int16Array(n);
    const start = (this.ringPos - n + this.ring.length) % this.ring.length;
    const first = Math.min(n, this.ring.length - start);
    pcm.set(this.ring.subarray(start, start + first), 0);
    pcm.set(this.ring.subarray(0, n - first), first);
    this.ringFill = 0;
    const ms = Math.max(0, this.lastBlockAt - edge) + PRE_ROLL_MARGIN_MS;
    const f = this.resample.process(pcm);
    this.toFrames(f, Math.max(0, f.length - Math.round((ms * this.rate) / 1000)));
  }

  /** Filters a block of received audio and cuts it into frames; the first `from` samples only settle the filters. */
  private toFrames(f: Float32Array, from: number): void {
    this.chain.process(f);
    const frame = this.frame;
    let fill = this.fill;
    for (let i = from; i < f.length; i++) {
      frame[fill++] = toInt16Sample(f[i]!);
      if (fill === frame.length) {
        fill = 0;
        this.onFrame(frame);
      }
    }
    this.fill = fill;
  }

  private onFrame(frame: Int16Array): void {
    if (!this.sending) return;
    // `frame` is the receive path's own buffer, refilled by the next read: held frames are copies.
    let pcm = frame;
    if (this.o.squelchTailMs > 0) {
      this.tail.push(frame.slice());
      if (this.tail.length * this.o.frameMs <= this.o.squelchTailMs) return;
      pcm = this.tail.shift()!;
    }
    this.encoded.push(this.o.encoder.encode(pcm));
    if (this.encoded.length === this.o.framesPerPacket) {
      this.sending.send(this.encoded);
      this.encoded = [];
    }
  }
}
