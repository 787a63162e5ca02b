/**
 * The words a channel session and its users share: the seams it is driven through (PubSub, Clock,
 * Wire), its options, and what it reports (SessionEvents: TalkerInfo, OverReport, AudioFrame). Apart from session.ts so that
 * the outgoing over and the session's users need not import the session itself.
 */
import type { FrameDecoder } from '../codec/codec.js';
import type { ControlMessage, EndReason, Presence, Source } from './control.js';
import type { JitterOptions, OverStats } from './jitter.js';
import type { PacketHeader } from './packet.js';
import type { Sealer } from './sealer.js';

/** The part of an MQTT.js client the session uses (the same class in Node and in browsers). */
export interface PubSub {
  readonly connected: boolean;
  publish(topic: string, payload: Uint8Array | string, opts: { qos: 0 | 1; retain: boolean }, cb?: (err?: Error) => void): unknown;
  /** `nl` (MQTT 5 "no local"; ignored on 3.1.1): the broker does not send our own messages back. */
  subscribe(topic: string, opts: { qos: 0 | 1; nl?: boolean }, cb?: (err: Error | null) => void): unknown;
  unsubscribe(topic: string, cb?: (err?: Error) => void): unknown;
  on(event: 'message', fn: (topic: string, payload: Uint8Array) => void): unknown;
  on(event: 'connect', fn: () => void): unknown;
  removeListener(event: string, fn: (...args: never[]) => void): unknown;
}

/**
 * Time as a session sees it: reading it and waiting on it. Everything a session times (playout,
 * silence, presence, bounded waits) goes through here, so that tests can drive it millisecond by
 * millisecond on a manual clock instead of sleeping in real time.
 */
export interface Clock {
  /** Monotonic ms, for scheduling. */
  now(): number;
  /** Wall clock ms since the epoch, for what goes on the wire. */
  wall(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
}

/** A clock's timer handle (Node's Timeout, a browser's number, a manual clock's own). */
export type Timer = unknown;

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as Parameters<typeof clearTimeout>[0]),
};

export interface TalkerInfo {
  stream: string;
  sender: string;
  name: string;
  source: Source;
  /** Start on the sender's clock. */
  t: number;
  self: boolean;
  /**
   * Set once the over's first decodable audio has arrived: how much later than this sender's
   * overs usually arrive it came (ms, inbox wait included; 0 for a sender not heard before). A
   * gateway does not put a stale over on the air (see StartLag).
   */
  lagMs?: number;
}

export interface OverReport extends TalkerInfo {
  reason: EndReason | 'silence';
  stats: OverStats;
  durationMs: number;
}

export type OpusRate = 8000 | 12000 | 16000 | 24000 | 48000;

export interface AudioFrame {
  pcm: Int16Array;
  sampleRate: number;
  stream: string;
  index: number;
  concealed: boolean;
  /** Capture (sender clock) to playout (our clock), ms. Meaningful when both clocks agree. */
  latencyMs: number;
  /** First frame of a packet (per-packet latency is measured on these). */
  packetStart: boolean;
  /** Audio per packet of this over: playout runs once per packet while packets come on time. */
  packetMs: number;
}

/** How a session puts messages on the wire: published at once on a clear channel, sealed in order on an encrypted one. */
export interface Wire {
  control(sender: string, m: ControlMessage): void;
  audio(sender: string, header: Omit<PacketHeader, 'version' | 'frameCount' | 'keyEpoch'>, frames: readonly Uint8Array[]): void;
}

export type SessionEvents = {
  presence: [sender: string, presence: Presence | null];
  floor: [holder: TalkerInfo | null];
  overStart: [info: TalkerInfo];
  /** The floor holder has decodable audio (its first packet arrived, or it took the floor with some buffered): the moment a gateway may key. */
  audible: [info: TalkerInfo];
  audio: [frame: AudioFrame];
  overEnd: [report: OverReport];
  dropped: [reason: string, detail: string];
  notice: [sender: string, code: string, text: string];
};

export interface SessionOptions {
  prefix: string;
  channel: string;
  sender: string;
  name: string;
  source: Source;
  silenceMs: number;
  jitter?: Partial<Omit<JitterOptions, 'frameMs'>>;
  createDecoder: (s: { sampleRate: OpusRate; frameMs: 2.5 | 5 | 10 | 20 | 40 | 60 }) => FrameDecoder;
  /**
   * Rate to decode to, when everything that plays this channel runs at one rate (a gateway's sound
   * cards, usually 48 kHz): Opus decodes to any of its rates itself, far cheaper than decoding at
   * the stream's rate and resampling in JavaScript. Default: the stream's own rate.
   */
  decodeRate?: OpusRate;
  clock?: Clock;
  software?: string;
  /**
   * How much later than a talker's usual an over's first audio may arrive and still count as on
   * time, for TalkerInfo.lagMs (a gateway passes bridge.maxStartLagMs). Default 1000 ms.
   */
  lateAfterMs?: number;
  /**
   * For outputs that queue what they are given (a gateway's `aplay`, whose buffer holds 80 ms or
   * more): once an over plays, a frame that is here goes out on arrival, up to this many ms before
   * its due time, and the output's queue holds the jitter buffer's depth. That spares a timer
   * wake-up per packet (at 20 ms packets, half the receiving gateway's wake-ups). Default 0: frames
   * leave at their due time, for outputs that play what they get at once.
   */
  playAheadMs?: number;
  /**
   * With playAheadMs: a missing frame is concealed up to this many ms after its due time (the
   * output's queue covers the wait, and a frame that comes meanwhile plays instead), so that the
   * timer watching for a missing frame fires every few packets, not at each. Default 0.
   */
  concealLateMs?: number;
  /**
   * The channel's keys: with them everything this participant sends is encrypted, and anything
   * that does not authenticate is dropped (docs/security.md). Without them the channel is clear.
   */
  crypto?: Sealer;
}
