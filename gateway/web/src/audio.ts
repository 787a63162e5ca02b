/**
 * The page's audio graph: one AudioContext at the device's own rate; the microphone (echo
 * cancellation, noise suppression) into the capture worklet, and the playback worklet into the
 * speakers. Resampling to and from the protocol's 16 kHz happens in the worklets.
 */
import { Emitter } from '../../shared/core/emitter.js';
import { toFloat } from '../../shared/dsp/stage.js';
import { TalkerError } from './talker.js';
import type { MicState } from './view.js';

export type AudioEvents = {
  frame: [pcm: Int16Array];
  level: [kind: 'mic' | 'out', rms: number, peak: number];
  mic: [state: MicState];
  /** Only while a test has asked for it: what the playback worklet rendered. */
  tap: [samples: Float32Array];
  stats: [s: { underruns: number; dropped: number; marginMs: number; queuedMs: number }];
};

/** Why the microphone cannot work here, before trying: insecure context or missing APIs. */
export function micAvailability(w: { isSecureContext: boolean; navigator: Navigator; AudioWorkletNode?: unknown }): MicState {
  if (!w.isSecureContext) return 'insecure';
  if (!w.navigator.mediaDevices?.getUserMedia || typeof w.AudioWorkletNode === 'undefined') return 'unsupported';
  return 'unknown';
}

/** How long a context may take to run after a press before the page says there is no sound output. */
const RUNNING_WITHIN_MS = 4000;

export class AudioEngine extends Emitter<AudioEvents> {
  ctx: AudioContext | null = null;
  private playback: AudioWorkletNode | null = null;
  private capture: AudioWorkletNode | null = null;
  private stream: MediaStream | null = null;
  private micOpening: Promise<void> | null = null;
  private flushed: (() => void) | null = null;
  private replaySrc: AudioBufferSourceNode | null = null;
  private ready: Promise<void> | null = null;
  mic: MicState;

  constructor(private readonly workletUrl: URL) {
    super();
    this.mic = micAvailability(globalThis as unknown as Parameters<typeof micAvailability>[0]);
  }

  private setMic(s: MicState): void {
    this.mic = s;
    this.emit('mic', s);
  }

  /** Creates the context and the playback path; safe to call more than once. */
  start(): Promise<void> {
    this.ready ??= (async () => {
      const ctx = new AudioContext({ latencyHint: 'interactive' });
      this.ctx = ctx;
      await ctx.audioWorklet.addModule(this.workletUrl);
      const node = new AudioWorkletNode(ctx, 'tb-playback', { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
      node.port.onmessage = (e: MessageEvent<{ type: string; rms?: number; peak?: number; samples?: Float32Array } & AudioEvents['stats'][0]>) => {
        const m = e.data;
        if (m.type === 'level') this.emit('level', 'out', m.rms!, m.peak!);
        else if (m.type === 'tap') this.emit('tap', m.samples!);
        else if (m.type === 'stats') this.emit('stats', m);
      };
      node.connect(ctx.destination);
      this.playback = node;
    })();
    return this.ready;
  }

  /** Browsers start audio suspended until the user interacts with the page. */
  get suspended(): boolean {
    return this.ctx?.state === 'suspended';
  }

  async resume(): Promise<void> {
    if (this.ctx && this.ctx.state === 'suspended') await this.ctx.resume().catch(() => {});
  }

  /**
   * Whether the context runs within `ms`. Firefox with no output device (no sound card, or no
   * sound server running) keeps its context suspended and never settles resume(): capture, which
   * runs in the same context, would wait forever.
   */
  private async running(ms: number): Promise<boolean> {
    if (this.ctx?.state === 'running') return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([this.resume(), late]);
    clearTimeout(timer);
    return (this.ctx?.state as AudioContextState | undefined) === 'running';
  }

  /** Output latency the browser reports (ms): what is added after the worklet. */
  get outputLatencyMs(): number {
    const c = this.ctx;
    return c ? ((c.baseLatency ?? 0) + (c.outputLatency ?? 0)) * 1000 : 0;
  }

  get sampleRate(): number {
    return this.ctx?.sampleRate ?? 0;
  }

  openMic(): Promise<void> {
    if (this.capture) return Promise.resolve();
    if (this.mic === 'insecure') return Promise.reject(new TalkerError('mic-insecure', 'the microphone needs HTTPS or localhost'));
    if (this.mic === 'unsupported') return Promise.reject(new TalkerError('mic', 'this browser cannot capture audio'));
    this.micOpening ??= this.doOpenMic().finally(() => (this.micOpening = null));
    return this.micOpening;
  }

  private async doOpenMic(): Promise<void> {
    await this.start();
    if (!(await this.running(RUNNING_WITHIN_MS))) {
      this.setMic('no-output');
      throw new TalkerError('no-output', 'no sound output: the browser will not run audio without a speaker or headphones');
    }
    this.setMic('requesting');
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 } });
    } catch (err) {
      const name = (err as DOMException).name;
      if (name === 'NotAllowedError' || name === 'SecurityError') {
        this.setMic('denied');
        throw new TalkerError('mic-denied', 'microphone permission denied');
      }
      if (name === 'NotFoundError' || name === 'OverconstrainedError') {
        this.setMic('missing');
        throw new TalkerError('mic-missing', 'no microphone found');
      }
      this.setMic('error');
      throw new TalkerError('mic', `the microphone could not be opened (${name})`);
    }
    const ctx = this.ctx!;
    const src = ctx.createMediaStreamSource(stream);
    // Its output is silence, connected only so that every browser keeps pulling the node.
    const node = new AudioWorkletNode(ctx, 'tb-capture', { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], channelCount: 1, channelCountMode: 'explicit' });
    node.connect(ctx.destination);
    node.port.onmessage = (e: MessageEvent<{ type: string; pcm?: Int16Array; rms?: number; peak?: number }>) => {
      const m = e.data;
      if (m.type === 'frame') this.emit('frame', m.pcm!);
      else if (m.type === 'level') this.emit('level', 'mic', m.rms!, m.peak!);
      else if (m.type === 'flushed') {
        const f = this.flushed;
        this.flushed = null;
        f?.();
      }
    };
    src.connect(node);
    for (const t of stream.getAudioTracks()) {
      t.addEventListener('ended', () => {
        // Unplugged, or revoked in the browser's UI: the next press asks again.
        this.closeMic();
        this.setMic('unknown');
      });
    }
    this.stream = stream;
    this.capture = node;
    this.setMic('ready');
  }

  arm(): void {
    this.capture?.port.postMessage({ type: 'arm' });
  }

  disarm(): Promise<void> {
    const node = this.capture;
    if (!node) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.flushed;
      this.flushed = () => {
        prev?.();
        resolve();
      };
      node.port.postMessage({ type: 'disarm' });
    });
  }

  closeMic(): void {
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.capture?.disconnect();
    this.capture = null;
    this.stream = null;
    const f = this.flushed;
    this.flushed = null;
    f?.();
  }

  overStart(): void {
    this.stopReplay();
    this.playback?.port.postMessage({ type: 'start' });
  }

  play(pcm: Int16Array): void {
    this.playback?.port.postMessage({ type: 'pcm', pcm });
  }

  overEnd(): void {
    this.playback?.port.postMessage({ type: 'end' });
  }

  setTap(on: boolean): void {
    this.playback?.port.postMessage({ type: 'tap', on });
  }

  /** Plays a stored over (16 kHz PCM); a live over stops it. */
  async replay(pcm: Int16Array, onEnded: () => void): Promise<void> {
    await this.start();
    await this.resume();
    this.stopReplay();
    const ctx = this.ctx!;
    const buf = ctx.createBuffer(1, Math.max(1, pcm.length), 16000);
    const ch = buf.getChannelData(0);
    toFloat(pcm, ch);
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(ctx.destination);
    src.onended = () => {
      if (this.replaySrc === src) this.replaySrc = null;
      onEnded();
    };
    this.replaySrc = src;
    src.start();
  }

  stopReplay(): void {
    const s = this.replaySrc;
    this.replaySrc = null;
    if (s) {
      try {
        s.stop();
      } catch {
        /* not started or already stopped */
      }
    }
  }

  async close(): Promise<void> {
    this.closeMic();
    this.stopReplay();
    await this.ctx?.close().catch(() => {});
    this.ctx = null;
    this.ready = null;
    this.playback = null;
  }
}
