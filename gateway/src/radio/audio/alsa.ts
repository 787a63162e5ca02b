/**
 * ALSA capture and playback by running `arecord` / `aplay` (alsa-utils): no native addon to build
 * on the Pi, and a USB card that vanishes only kills a child process. Raw S16_LE mono at the
 * chosen rate, explicit period and buffer sizes (the defaults are up to half a second), device named
 * by card id (plughw:CARD=Device,DEV=0) because card indexes change with plug order.
 *
 * When the card goes away the child exits; the driver reports `waiting` and re-opens with
 * exponential back-off until the card is back, then reports `running` again.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { Emitter } from '../../../shared/core/emitter.js';
import { silentLog } from '../../core/log.js';
import { type AudioIn, type AudioInEvents, type AudioOut, type AudioOutEvents, type AudioState, type Levels, RadioError } from '../types.js';
import { LevelMeter, PcmAssembler, applyGain, toBytes } from './levels.js';

export interface AlsaOptions {
  device: string;
  sampleRate: number;
  /** Frames per period; default 20 ms. */
  periodFrames?: number;
  /** Frames in the ring buffer; default 4 periods. */
  bufferFrames?: number;
  gainDb?: number;
  /** Executable (tests put a fake first on PATH or name one here). */
  exe?: string;
  backoff?: { minMs: number; maxMs: number };
  /** Playback: close the card this long after the last audio played. */
  idleCloseMs?: number;
  log?: Logger;
}

export function alsaArgs(o: AlsaOptions): string[] {
  if (!/^[\w:=,.\-/]+$/.test(o.device)) throw new RadioError(`ALSA device name "${o.device}" has unexpected characters`);
  const period = o.periodFrames ?? Math.round(o.sampleRate / 50);
  const buffer = o.bufferFrames ?? period * 4;
  if (buffer < period * 2) throw new RadioError(`ALSA buffer (${buffer} frames) must hold at least two periods (${period} frames each)`);
  return ['-q', '-D', o.device, '-t', 'raw', '-f', 'S16_LE', '-c', '1', '-r', String(o.sampleRate), `--period-size=${period}`, `--buffer-size=${buffer}`];
}

/** Shared child-process life cycle: spawn, watch, back off, report state. */
abstract class AlsaChild<E extends { [K in keyof E]: unknown[] } & { state: [AudioState, string] }> extends Emitter<E> {
  protected proc: ChildProcessWithoutNullStreams | null = null;
  protected st: AudioState = 'stopped';
  protected stopped = false;
  protected failures = 0;
  protected nextTry = 0;
  private retry: NodeJS.Timeout | null = null;
  protected readonly log: Logger;
  protected readonly meter = new LevelMeter();
  private stderr = '';

  constructor(
    protected readonly o: AlsaOptions,
    private readonly exe: string,
  ) {
    super();
    this.log = o.log ?? silentLog;
    alsaArgs(o);
  }

  get state(): AudioState {
    return this.st;
  }

  get sampleRate(): number {
    return this.o.sampleRate;
  }

  levels(): Levels {
    return this.meter.take();
  }

  protected setState(s: AudioState, detail: string): void {
    if (s === this.st) return;
    this.st = s;
    this.log.info({ device: this.o.device, state: s, detail }, 'audio device state');
    (this as unknown as Emitter<{ state: [AudioState, string] }>).emit('state', s, detail);
  }

  protected spawnChild(): ChildProcessWithoutNullStreams {
    const proc = spawn(this.o.exe ?? this.exe, alsaArgs(this.o), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = proc;
    this.stderr = '';
    proc.stdin.on('error', () => undefined);
    createInterface({ input: proc.stderr }).on('line', (l) => {
      if (/underrun|overrun/i.test(l)) return;
      this.stderr = l;
    });
    proc.once('error', (err) => (this.stderr = `cannot run ${this.o.exe ?? this.exe}: ${err.message}`));
    proc.once('close', (code, signal) => {
      if (this.proc !== proc) return;
      this.proc = null;
      if (this.stopped) return;
      this.failures++;
      const delay = Math.min(this.o.backoff?.maxMs ?? 10000, (this.o.backoff?.minMs ?? 500) * 2 ** Math.min(this.failures - 1, 10));
      this.nextTry = Date.now() + delay;
      const why = this.stderr.replace(/^\S+:\s*\S+:\d+:\s*/, '') || (signal ? `killed by ${signal}` : `exited with status ${code}`);
      this.onLost(`${this.o.device}: ${why}; retrying in ${(delay / 1000).toFixed(1)} s`, delay);
    });
    return proc;
  }

  protected abstract onLost(detail: string, delay: number): void;

  protected scheduleRetry(delay: number, fn: () => void): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.stopped) fn();
    }, delay);
  }

  protected async stopChild(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const proc = this.proc;
    this.proc = null;
    if (proc) {
      const done = new Promise((r) => proc.once('close', r));
      proc.stdin.end();
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await done;
      clearTimeout(t);
    }
    this.setState('stopped', 'closed');
  }
}

export class AlsaCapture extends AlsaChild<AudioInEvents> implements AudioIn {
  private readonly pcm = new PcmAssembler();

  constructor(o: AlsaOptions) {
    super(o, 'arecord');
  }

  get description(): string {
    return `ALSA capture ${this.o.device} @ ${this.o.sampleRate} Hz`;
  }

  async start(): Promise<void> {
    if (this.proc || this.stopped) return;
    this.open();
  }

  private open(): void {
    this.pcm.reset();
    const proc = this.spawnChild();
    proc.stdout.on('data', (d: Buffer) => {
      if (this.proc !== proc) return;
      const s = this.pcm.push(d);
      if (s.length === 0) return;
      this.failures = 0;
      this.setState('running', `${this.o.device} capturing`);
      applyGain(s, this.o.gainDb ?? 0);
      this.meter.add(s);
      this.emit('data', s);
    });
  }

  protected onLost(detail: string, delay: number): void {
    this.setState('waiting', detail);
    this.scheduleRetry(delay, () => this.open());
  }

  close(): Promise<void> {
    return this.stopChild();
  }
}

/**
 * What keeps the PTT up after the card's clock says the last sample has left its buffer: Node's
 * whole-millisecond timers (which fire up to 1 ms early), the USB audio driver and codec behind the
 * ring buffer (snd-usb-audio counts a period played when it is queued to the bus, a few ms before
 * the DAC has it), and the time aplay itself takes to open the card when it was spawned with the
 * audio rather than ahead of it (see `prepare`).
 */
export const DRAIN_MARGIN_MS = 10;
/** The card's crystal against the system clock: ±100 ppm of a run (30 ms after five minutes). */
export const CLOCK_PPM = 100;
/** Assumed time for a freshly spawned aplay to open and set up the card. */
export const OPEN_MS = 50;

export class AlsaPlayback extends AlsaChild<AudioOutEvents> implements AudioOut {
  private idleTimer: NodeJS.Timeout | null = null;
  /** When the card has to stay open until (idle close), checked when the one idle timer fires. */
  private idleUntil = 0;
  private spawnedAt = 0;
  /**
   * The card's state as aplay drives it. aplay reads stdin a period at a time (`frames` counts what
   * it has handed on, `partial` the rest of a period it still waits for) and starts the card once
   * a full buffer has been written (its default start threshold), or after an underrun once the
   * buffer has filled again. From then on the card plays in real time: the run's last sample is out
   * at `startedAt + frames / rate`; a write after that moment finds the card run dry (an underrun:
   * aplay re-prepares it and a new run begins).
   */
  private run = { frames: 0, partial: 0, startedAt: null as number | null, firstAt: 0, real: 0 };

  constructor(o: AlsaOptions) {
    super(o, 'aplay');
    this.st = 'waiting';
  }

  get description(): string {
    return `ALSA playback ${this.o.device} @ ${this.o.sampleRate} Hz`;
  }

  private get period(): number {
    return this.o.periodFrames ?? Math.round(this.o.sampleRate / 50);
  }

  private get threshold(): number {
    return this.o.bufferFrames ?? this.period * 4;
  }

  /**
   * The transmitter is being keyed: have aplay running (it opens the card, then blocks on its
   * stdin at no cost; the card does not start until audio fills its buffer) so that the TX delay
   * hides the ~25 ms of spawning it, which the first audio would otherwise wait for.
   */
  prepare(): void {
    if (this.stopped || this.proc || Date.now() < this.nextTry) return;
    this.open();
    this.armIdle(performance.now());
  }

  private open(): void {
    this.spawnChild();
    this.spawnedAt = performance.now();
    this.run = { frames: 0, partial: 0, startedAt: null, firstAt: 0, real: 0 };
    this.setState('running', `${this.o.device} playing`);
  }

  write(samples: Int16Array): boolean {
    if (this.stopped) return false;
    if (!this.proc) {
      // Backing off after a loss: drop rather than queue stale audio.
      if (Date.now() < this.nextTry) return false;
      this.open();
    }
    const s = applyGain(Int16Array.from(samples), this.o.gainDb ?? 0);
    this.meter.add(s);
    this.push(s, true);
    return true;
  }

  private push(s: Int16Array, real: boolean): void {
    this.proc!.stdin.write(toBytes(s));
    const now = performance.now();
    const r = this.run;
    if (r.startedAt !== null && now > r.startedAt + (r.frames * 1000) / this.o.sampleRate) {
      // The card ran dry before this write: underrun, aplay re-prepares, a new run fills the buffer.
      this.run = { frames: 0, partial: r.partial, startedAt: null, firstAt: now, real: r.real > r.frames ? r.partial : 0 };
    }
    const run = this.run;
    if (run.frames + run.partial === 0) run.firstAt = now;
    const whole = Math.floor((run.partial + s.length) / this.period) * this.period;
    run.partial = run.partial + s.length - whole;
    run.frames += whole;
    if (real) run.real = run.frames + run.partial;
    if (run.startedAt === null && run.frames >= this.threshold) {
      // Started by this write, but not before aplay has opened the card.
      run.startedAt = Math.max(now, this.spawnedAt + OPEN_MS);
    }
    this.armIdle(now);
  }

  /** One idle timer, re-armed only when it fires early (a refreshed Node timer still wakes us). */
  private armIdle(now: number): void {
    // A card left open underruns continuously; close it once an over has played out.
    this.idleUntil = this.playedUntil(now) + (this.o.idleCloseMs ?? 3000);
    if (this.idleTimer) return;
    const fire = () => {
      this.idleTimer = null;
      const t = performance.now();
      if (t + 1 < this.idleUntil) this.idleTimer = setTimeout(fire, this.idleUntil - t);
      else this.closeIdle();
    };
    this.idleTimer = setTimeout(fire, this.idleUntil - now);
  }

  /** When the last sample handed to the card so far will have been played (now if nothing is queued). */
  private playedUntil(now: number): number {
    const r = this.run;
    const rate = this.o.sampleRate;
    if (r.startedAt === null) return now + ((r.frames + r.partial) * 1000) / rate;
    return Math.max(now, r.startedAt + (r.frames * 1000) / rate);
  }

  /** Milliseconds of audio written and not yet played (for tests and status). */
  get queuedMs(): number {
    const now = performance.now();
    return this.playedUntil(now) - now;
  }

  private closeIdle(): void {
    const proc = this.proc;
    if (!proc || this.stopped) return;
    this.proc = null;
    proc.stdin.end();
    proc.kill('SIGTERM');
  }

  /**
   * Resolves once the last sample written is out of the card, plus a margin (DRAIN_MARGIN_MS and
   * the clock tolerance): what is queued, not a whole buffer. The over ends here, so the audio
   * aplay would otherwise hold back is pushed through with silence: the rest of a period (aplay
   * reads whole periods), and, if the over was shorter than the card's buffer, enough to reach the
   * start threshold (the card would not start at all before the next over).
   */
  async drain(): Promise<void> {
    if (!this.proc) return;
    const r = this.run;
    if (r.real === 0) return;
    if (r.partial > 0) this.push(new Int16Array(this.period - r.partial), false);
    if (this.run.startedAt === null) this.push(new Int16Array(this.threshold - this.run.frames), false);
    const run = this.run;
    if (run.startedAt === null || run.real === 0) return;
    const now = performance.now();
    const end = run.startedAt + (run.real * 1000) / this.o.sampleRate;
    const wait = end - now + DRAIN_MARGIN_MS + ((end - run.firstAt) * CLOCK_PPM) / 1e6;
    if (wait > 0) await new Promise((res) => setTimeout(res, Math.ceil(wait)));
  }

  protected onLost(detail: string): void {
    this.run = { frames: 0, partial: 0, startedAt: null, firstAt: 0, real: 0 };
    this.setState('waiting', detail);
  }

  close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    return this.stopChild();
  }
}
