/**
 * The words a channel session and its users share: the seams it is driven through (PubSub, Clock,
 * Wire) and what it reports (TalkerInfo, OverReport, AudioFrame). Apart from session.ts so that
 * the outgoing over and the session's users need not import the session itself.
 */
import type { ControlMessage, EndReason, Source } from './control.js';
import type { OverStats } from './jitter.js';
import type { PacketHeader } from './packet.js';

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

export interface Clock {
  /** Monotonic ms, for scheduling. */
  now(): number;
  /** Wall clock ms since the epoch, for what goes on the wire. */
  wall(): number;
}

export const systemClock: Clock = { now: () => performance.now(), wall: () => Date.now() };

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
