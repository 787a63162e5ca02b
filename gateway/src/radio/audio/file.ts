/**
 * Files instead of a sound card, for demos, tests and replaying a recorded over: a WAV input paced
 * in real time (optionally looping), a streaming WAV writer, and a null output.
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Emitter } from '../../../shared/core/emitter.js';
import { readWav, wavHeader } from '../../audio/wav.js';
import { resampleAll } from '../../../shared/audio/resample.js';
import { silentLog } from '../../core/log.js';
import { type AudioIn, type AudioInEvents, type AudioOut, type AudioOutEvents, type AudioState, type Levels, RadioError } from '../types.js';
import { LevelMeter, applyGain, toBytes } from './levels.js';

export interface FileInOptions {
  path: string;
  sampleRate: number;
  loop: boolean;
  frameMs?: number;
  gainDb?: number;
  log?: Logger;
}

export class FileAudioIn extends Emitter<AudioInEvents> implements AudioIn {
  private st: AudioState = 'stopped';
  private timer: NodeJS.Timeout | null = null;
  private readonly meter = new LevelMeter();
  private closed = false;

  constructor(private readonly o: FileInOptions) {
    super();
  }

  get description(): string {
    return `WAV file ${this.o.path}${this.o.loop ? ' (looped)' : ''}`;
  }
  get sampleRate(): number {
    return this.o.sampleRate;
  }
  get state(): AudioState {
    return this.st;
  }
  levels(): Levels {
    return this.meter.take();
  }

  async start(): Promise<void> {
    if (this.closed || this.timer) return;
    const pcm = await readWav(this.o.path);
    const samples = applyGain(pcm.sampleRate === this.o.sampleRate ? pcm.samples : resampleAll(pcm.samples, pcm.sampleRate, this.o.sampleRate), this.o.gainDb ?? 0);
    const frame = Math.round((this.o.sampleRate * (this.o.frameMs ?? 20)) / 1000);
    const frameMs = (frame * 1000) / this.o.sampleRate;
    let pos = 0;
    let n = 0;
    const t0 = performance.now();
    this.st = 'running';
    this.emit('state', 'running', this.description);
    // Each frame is due at t0 + n·frame: timer lateness is caught up, never accumulated. A frame
    // within 2 ms of due goes now: Node's whole-millisecond timers, counted from a slightly stale
    // loop time, fire up to that early and would otherwise wake us again 1 ms later.
    const tick = () => {
      this.timer = null;
      if (this.closed) return;
      while (performance.now() + 2 >= t0 + n * frameMs) {
        if (pos >= samples.length) {
          if (!this.o.loop) {
            this.st = 'stopped';
            this.emit('state', 'stopped', 'end of file');
            this.emit('end');
            return;
          }
          pos = 0;
        }
        const chunk = samples.slice(pos, pos + frame);
        pos += chunk.length;
        n++;
        this.meter.add(chunk);
        this.emit('data', chunk);
      }
      this.timer = setTimeout(tick, Math.max(1, Math.ceil(t0 + n * frameMs - performance.now())));
    };
    tick();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.st !== 'stopped') {
      this.st = 'stopped';
      this.emit('state', 'stopped', 'closed');
    }
  }
}

/** Writes a WAV as audio arrives; the RIFF sizes are patched on close (readers cope until then). */
export class FileAudioOut extends Emitter<AudioOutEvents> implements AudioOut {
  private fh: Promise<FileHandle> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private bytes = 0;
  private readonly meter = new LevelMeter();
  private st: AudioState = 'running';
  private err: Error | null = null;

  constructor(private readonly o: { path: string; sampleRate: number; gainDb?: number; log?: Logger }) {
    super();
  }

  get description(): string {
    return `WAV file ${this.o.path}`;
  }
  get sampleRate(): number {
    return this.o.sampleRate;
  }
  get state(): AudioState {
    return this.st;
  }
  levels(): Levels {
    return this.meter.take();
  }

  private handle(): Promise<FileHandle> {
    this.fh ??= open(this.o.path, 'w').then(async (fh) => {
      await fh.write(wavHeader(this.o.sampleRate, 0), 0, 44, 0);
      return fh;
    });
    return this.fh;
  }

  write(samples: Int16Array): boolean {
    if (this.st === 'stopped') return false;
    const s = applyGain(Int16Array.from(samples), this.o.gainDb ?? 0);
    this.meter.add(s);
    const b = toBytes(s);
    const at = 44 + this.bytes;
    this.bytes += b.length;
    this.queue = this.queue
      .then(() => this.handle())
      .then((fh) => fh.write(b, 0, b.length, at))
      .catch((err: Error) => {
        if (this.err) return;
        this.err = err;
        (this.o.log ?? silentLog).error({ path: this.o.path, err: err.message }, 'WAV output failed');
        this.st = 'stopped';
        this.emit('state', 'stopped', `${this.o.path}: ${err.message}`);
      });
    return true;
  }

  async drain(): Promise<void> {
    await this.queue;
  }

  async close(): Promise<void> {
    await this.queue;
    this.st = 'stopped';
    if (!this.fh) return;
    const fh = await this.fh.catch(() => null);
    if (!fh) return;
    try {
      await fh.write(wavHeader(this.o.sampleRate, this.bytes), 0, 44, 0);
    } finally {
      await fh.close();
    }
    if (this.err) throw new RadioError(`${this.o.path}: ${this.err.message}`);
  }
}

/** Discards audio (a receive-only gateway), still metering it. */
export class NullAudioOut extends Emitter<AudioOutEvents> implements AudioOut {
  readonly description = 'null (discarded)';
  readonly state: AudioState = 'running';
  private readonly meter = new LevelMeter();
  constructor(readonly sampleRate: number) {
    super();
  }
  write(samples: Int16Array): boolean {
    this.meter.add(samples);
    return true;
  }
  async drain(): Promise<void> {}
  levels(): Levels {
    return this.meter.take();
  }
  async close(): Promise<void> {}
}
