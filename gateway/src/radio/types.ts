/**
 * The small interfaces between radio hardware and the rest of talkbridge. The bridge only ever
 * sees these; which cable, chip or module sits behind them is the factory's business.
 */
import type { Emitter } from '../../shared/core/emitter.js';
import { UserError } from '../core/errors.js';

/** A hardware problem a user can act on (device gone, permission, wrong pin): printed as is. */
export class RadioError extends UserError {
  override name = 'RadioError';
}

export interface PttEvents {
  /** The line changed state (true = transmitting). */
  state: [keyed: boolean];
  /**
   * Something went wrong with the line. `unkeyed` tells whether the driver knows the transmitter
   * is off afterwards (it drove the line idle, or the device that held it is gone).
   */
  fault: [err: Error, unkeyed: boolean];
}

/**
 * Push-to-talk output. `open` drives the line to its idle (unkeyed) level before anything else,
 * because several interfaces key the radio the instant they are opened. Every failure while keyed
 * ends with an attempt to unkey, and is reported.
 */
export interface Ptt extends Emitter<PttEvents> {
  readonly description: string;
  readonly keyed: boolean;
  open(): Promise<void>;
  key(): Promise<void>;
  unkey(): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional, for drivers with a PTT guard (radio/ptt/guard.ts). The transmit path calls it for each
   * block it sends, `periodMs` being how often blocks come: while that is often enough for the
   * guard's watchdog, these calls are the heartbeat and the guard's own heartbeat timer (a wake-up
   * 27 times a second) stops. `alive(null)` when the blocks stop (over ended, hang time) hands the
   * heartbeat back to the timer.
   */
  alive?(periodMs: number | null): void;
}

export interface CarrierEvents {
  /** Debounced, inverted as configured: true = a signal is being received. */
  carrier: [open: boolean];
  fault: [err: Error];
}

/** Carrier detect (COS / COR / squelch) input. */
export interface CarrierDetect extends Emitter<CarrierEvents> {
  readonly description: string;
  readonly carrier: boolean;
  /**
   * When (performance.now()) the line first showed the current state: the debounce delays the
   * 'carrier' event, not the start of what the radio received.
   */
  readonly since?: number;
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface Levels {
  /** dBFS of the largest sample in the window; -Infinity for digital silence. */
  peakDb: number;
  rmsDb: number;
  /** Samples at or beyond full scale in the window. */
  clipped: number;
  samples: number;
}

/**
 * running: audio flows; waiting: the device is not there (yet), retrying with back-off;
 * stopped: closed by us or the input ended.
 */
export type AudioState = 'running' | 'waiting' | 'stopped';

export interface AudioInEvents {
  /** Mono 16-bit PCM at `sampleRate`, in blocks of about one period. */
  data: [samples: Int16Array];
  state: [state: AudioState, detail: string];
  end: [];
}

export interface AudioIn extends Emitter<AudioInEvents> {
  readonly description: string;
  readonly sampleRate: number;
  readonly state: AudioState;
  start(): Promise<void>;
  /** Peak/RMS since the last call (then reset). */
  levels(): Levels;
  close(): Promise<void>;
}

export interface AudioOutEvents {
  state: [state: AudioState, detail: string];
}

export interface AudioOut extends Emitter<AudioOutEvents> {
  readonly description: string;
  readonly sampleRate: number;
  readonly state: AudioState;
  /** Queues mono 16-bit PCM at `sampleRate`; false if it was dropped (device not there). */
  write(samples: Int16Array): boolean;
  /**
   * Optional: the transmitter is being keyed and audio follows after the TX delay. An output that
   * takes time to open (a process to spawn) does so now, so that the first audio does not wait.
   */
  prepare?(): void;
  /** Resolves when everything written has been played (or dropped): then it is safe to unkey. */
  drain(): Promise<void>;
  levels(): Levels;
  close(): Promise<void>;
}

export type Bandwidth = 'wide' | 'narrow';

/** A tone: CTCSS in Hz, or DCS as code + polarity. */
export type Tone = { ctcss: number } | { dcs: number; inverted: boolean } | null;

export interface ModuleChannel {
  rxMHz: number;
  txMHz: number;
  rxTone: Tone;
  txTone: Tone;
  /** 0 (open) – 8 */
  squelch: number;
  bandwidth: Bandwidth;
}

export interface ModuleSettings {
  channel: ModuleChannel;
  /** 1–8; undefined = leave as is. */
  volume?: number;
  filters?: { emphasis: boolean; highpass: boolean; lowpass: boolean };
  /** Squelch tail elimination. */
  tail?: boolean;
}

export interface ModuleReadback {
  version: string | null;
  /** null when the module does not support reading its settings back (DRA818, early SA818). */
  channel: ModuleChannel | null;
  rssi: number | null;
}

/** One step of programming a module and how it went: nothing half-done goes unreported. */
export interface ProgramStep {
  step: string;
  ok: boolean;
  detail: string;
}

export interface RadioModule {
  readonly description: string;
  program(settings: ModuleSettings): Promise<ProgramStep[]>;
  read(): Promise<ModuleReadback>;
  close(): Promise<void>;
}
