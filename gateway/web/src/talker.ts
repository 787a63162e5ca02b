/**
 * Push-to-talk for the page: turns press/release into one over on the shared ChannelSession.
 *
 * The floor must never be left stuck, whatever happens: every way out of an over — release, the
 * talk time-out, losing the floor, the broker going away, the page being hidden, an encoder or
 * microphone failure, an exception anywhere — ends in OutgoingOver.end(), which publishes END and
 * frees the floor locally. Frames come from the capture worklet through frame(); the encoder may
 * be asynchronous (WebCodecs), so the last packet is sent after a flush, padded with silence.
 */
import { Emitter } from '../../shared/core/emitter.js';
import type { ChannelSession, OutgoingOver, TalkerInfo } from '../../shared/channel/session.js';
import type { EndReason } from '../../shared/channel/control.js';
import type { OutEncoder } from './codec.js';

export type TalkState =
  | { kind: 'idle' }
  /** Pressed; waiting for the microphone (first use may show a permission prompt). */
  | { kind: 'starting' }
  | { kind: 'talking'; stream: string; since: number; deadline: number }
  /** Pressed while someone else holds the floor, or lost it to a better claim: refused until release. */
  | { kind: 'refused'; holder: TalkerInfo }
  /** The time-out ended the over; waits for release. */
  | { kind: 'timeout' }
  /** The over could not start or broke; waits for release. */
  | { kind: 'failed'; reason: 'mic-denied' | 'mic-missing' | 'mic-insecure' | 'mic' | 'no-output' | 'offline' | 'encoder'; message: string };

export interface TalkerDeps {
  session: Pick<ChannelSession, 'talk' | 'holder'>;
  /** Opens the microphone if needed; rejects with a TalkerError when it cannot. */
  openMic(): Promise<void>;
  arm(): void;
  /** Stops capture; resolves after the last partial frame has gone through frame(). */
  disarm(): Promise<void>;
  createEncoder(): OutEncoder;
  silence(): Uint8Array;
  connected(): boolean;
  codec: { sampleRate: number; frameMs: number; framesPerPacket: number };
  talkTimeoutMs: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  /** Longest wait for the encoder to hand over its last frames at release. */
  flushTimeoutMs?: number;
}

export class TalkerError extends Error {
  constructor(
    readonly reason: Extract<TalkState, { kind: 'failed' }>['reason'],
    message: string,
  ) {
    super(message);
  }
}

interface Live {
  over: OutgoingOver;
  enc: OutEncoder;
  pending: Uint8Array[];
  timer: unknown;
  /** Released: frames collect until the flush, so the very last packet can carry END. */
  finishing: boolean;
}

export class Talker extends Emitter<{ state: [TalkState]; sent: [seq: number] }> {
  state: TalkState = { kind: 'idle' };
  private pressed = false;
  private live: Live | null = null;
  /** The over whose audio the capture worklet still feeds: the live one, or one being finished. */
  private capturing: Live | null = null;
  /** Each press gets a number, so a slow microphone prompt from an earlier press cannot act. */
  private gen = 0;
  /** The over being wound down (flush + last packet); a new press waits for it. */
  private closing: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;

  constructor(private readonly d: TalkerDeps) {
    super();
    this.now = d.now ?? (() => Date.now());
    this.setTimer = d.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = d.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
  }

  get isPressed(): boolean {
    return this.pressed;
  }

  private set(s: TalkState): void {
    this.state = s;
    this.emit('state', s);
  }

  async press(): Promise<void> {
    if (this.pressed) return;
    this.pressed = true;
    const gen = ++this.gen;
    const current = () => this.pressed && gen === this.gen;
    await this.closing;
    if (!current()) return;
    const h = this.d.session.holder;
    if (h && !h.self) return this.set({ kind: 'refused', holder: h });
    if (!this.d.connected()) return this.set({ kind: 'failed', reason: 'offline', message: 'not connected to the broker' });
    this.set({ kind: 'starting' });
    try {
      await this.d.openMic();
    } catch (err) {
      const e = err instanceof TalkerError ? err : new TalkerError('mic', (err as Error).message);
      if (current()) this.set({ kind: 'failed', reason: e.reason, message: e.message });
      return;
    }
    // Released while the microphone was opening: nothing was said (release() already went idle).
    if (!current()) return;
    if (!this.d.connected()) return this.set({ kind: 'failed', reason: 'offline', message: 'not connected to the broker' });
    let r: ReturnType<TalkerDeps['session']['talk']>;
    try {
      r = this.d.session.talk(this.d.codec);
    } catch (err) {
      return this.set({ kind: 'failed', reason: 'encoder', message: (err as Error).message });
    }
    if ('busy' in r) return this.set({ kind: 'refused', holder: r.busy });
    let enc: OutEncoder;
    try {
      enc = this.d.createEncoder();
    } catch (err) {
      r.end('error');
      return this.set({ kind: 'failed', reason: 'encoder', message: (err as Error).message });
    }
    const live: Live = { over: r, enc, pending: [], timer: null, finishing: false };
    this.live = live;
    this.capturing = live;
    enc.onFrame = (f) => this.onEncoded(live, f);
    enc.onError = (err) => {
      if (this.live !== live) return;
      this.stop(live, 'error');
      this.set({ kind: 'failed', reason: 'encoder', message: err.message });
    };
    r.once('busy', (winner) => {
      if (this.live !== live) return;
      this.stop(live, null);
      this.set({ kind: 'refused', holder: winner });
    });
    const since = this.now();
    live.timer = this.setTimer(() => {
      if (this.live !== live) return;
      this.closing = this.finish(live, 'timeout');
      this.set({ kind: 'timeout' });
    }, this.d.talkTimeoutMs);
    this.set({ kind: 'talking', stream: r.stream, since, deadline: since + this.d.talkTimeoutMs });
    this.d.arm();
  }

  release(): void {
    if (!this.pressed) return;
    this.pressed = false;
    const live = this.live;
    if (live) {
      this.closing = this.finish(live, 'done');
    }
    this.set({ kind: 'idle' });
  }

  /** PCM from the capture worklet (exactly one codec frame). */
  frame(pcm: Int16Array): void {
    const live = this.capturing;
    if (!live?.over.active) return;
    try {
      live.enc.encode(pcm);
    } catch (err) {
      this.stop(live, 'error');
      this.set({ kind: 'failed', reason: 'encoder', message: (err as Error).message });
    }
  }

  /** The broker connection went away, or the page is being hidden: end now, without a flush. */
  abort(why: 'offline' | 'hidden'): void {
    const live = this.live;
    if (live) this.stop(live, 'aborted');
    if (this.pressed) {
      if (why === 'offline') this.set({ kind: 'failed', reason: 'offline', message: 'the broker connection was lost' });
      else {
        this.pressed = false;
        this.set({ kind: 'idle' });
      }
    }
  }

  private onEncoded(live: Live, f: Uint8Array): void {
    if (!live.over.active) return;
    live.pending.push(f);
    if (!live.finishing && live.pending.length === this.d.codec.framesPerPacket) {
      const frames = live.pending.splice(0);
      if (live.over.send(frames)) this.emit('sent', live.over.packets - 1);
    }
  }

  /** Ends the over at once (END published with `reason`, or already ended when null). */
  private stop(live: Live, reason: EndReason | null): void {
    if (this.live === live) this.live = null;
    if (this.capturing === live) this.capturing = null;
    this.clearTimer(live.timer);
    this.d.disarm().catch(() => {});
    live.enc.onFrame = () => {};
    live.enc.close();
    if (reason) live.over.end(reason);
  }

  /** Ends the over gracefully: the last captured audio goes out, then END. */
  private async finish(live: Live, reason: 'done' | 'timeout'): Promise<void> {
    if (this.live === live) this.live = null;
    live.finishing = true;
    this.clearTimer(live.timer);
    try {
      // The worklet hands over its last partial frame (through frame()) before disarm resolves.
      await withTimeout(this.d.disarm(), this.d.flushTimeoutMs ?? 500);
      if (this.capturing === live) this.capturing = null;
      await withTimeout(live.enc.flush(), this.d.flushTimeoutMs ?? 500);
      const fpp = this.d.codec.framesPerPacket;
      const frames = live.pending.splice(0);
      while (frames.length % fpp !== 0) frames.push(this.d.silence());
      for (let i = 0; i < frames.length && live.over.active; i += fpp) {
        const last = i + fpp >= frames.length;
        if (live.over.send(frames.slice(i, i + fpp), last && reason === 'done')) this.emit('sent', live.over.packets - 1);
      }
    } catch {
      /* whatever failed, the over still ends below */
    } finally {
      if (this.capturing === live) this.capturing = null;
      live.enc.onFrame = () => {};
      live.enc.close();
      live.over.end(reason);
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(t));
}
