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
import { Emitter } from '../../core/emitter.js';
import { silentLog } from '../ptt/base.js';
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

  constructor(protected readonly o: AlsaOptions, private readonly exe: string) {
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

export class AlsaPlayback extends AlsaChild<AudioOutEvents> implements AudioOut {
  private playedUntil = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(o: AlsaOptions) {
    super(o, 'aplay');
    this.st = 'waiting';
  }

  get description(): string {
    return `ALSA playback ${this.o.device} @ ${this.o.sampleRate} Hz`;
  }

  write(samples: Int16Array): boolean {
    if (this.stopped) return false;
    if (!this.proc) {
      // Backing off after a loss: drop rather than queue stale audio.
      if (Date.now() < this.nextTry) return false;
      this.spawnChild();
      this.setState('running', `${this.o.device} playing`);
    }
    const s = applyGain(Int16Array.from(samples), this.o.gainDb ?? 0);
    this.meter.add(s);
    this.proc!.stdin.write(toBytes(s));
    const now = Date.now();
    this.playedUntil = Math.max(now, this.playedUntil) + (s.length * 1000) / this.o.sampleRate;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    // A card left open underruns continuously; close it once an over has played out.
    const idle = this.o.idleCloseMs ?? 3000;
    this.idleTimer = setTimeout(() => this.closeIdle(), this.playedUntil - now + idle);
    return true;
  }

  private closeIdle(): void {
    const proc = this.proc;
    if (!proc || this.stopped) return;
    this.proc = null;
    proc.stdin.end();
    proc.kill('SIGTERM');
  }

  /** Played = written audio time elapsed plus one ALSA buffer still in the card. */
  async drain(): Promise<void> {
    const period = this.o.periodFrames ?? Math.round(this.o.sampleRate / 50);
    const bufferMs = ((this.o.bufferFrames ?? period * 4) * 1000) / this.o.sampleRate;
    const wait = this.playedUntil + bufferMs - Date.now();
    if (wait > 0 && this.proc) await new Promise((r) => setTimeout(r, wait));
  }

  protected onLost(detail: string): void {
    this.playedUntil = 0;
    this.setState('waiting', detail);
  }

  close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    return this.stopChild();
  }
}
