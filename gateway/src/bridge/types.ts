/**
 * What the outside gives a radio bridge, and what it (status topic, /metrics, systemd watchdog,
 * logs) can see of one.
 */
import type { Logger } from 'pino';
import type { ChannelSession } from '../../shared/channel/session.js';
import type { Clock } from '../../shared/channel/types.js';
import type { FrameEncoder } from '../../shared/codec/codec.js';
import type { Emitter } from '../../shared/core/emitter.js';
import type { AudioIn, AudioOut, CarrierDetect, Levels, Ptt } from '../radio/types.js';
import type { BridgeConfig } from './schema.js';

export interface RadioIo {
  name: string;
  ptt: Ptt;
  cos: CarrierDetect;
  input: AudioIn | null;
  output: AudioOut;
}

export interface BridgeOptions {
  radio: RadioIo;
  /** Where overs heard on the radio go; null for a receive-only gateway. */
  transmit: ChannelSession | null;
  /** Channels whose overs are transmitted on the radio. */
  monitor: ChannelSession[];
  /** Encoder for the radio → channel path; its rate and frame size are the channel's. */
  encoder: FrameEncoder;
  frameMs: number;
  framesPerPacket: number;
  config: BridgeConfig;
  log: Logger;
  /**
   * What the state machine's timing rules run on: systemClock unless a test drives it. The receive
   * pre-roll stays on real time (rx.ts says why).
   */
  clock?: Clock;
}

export type BridgeState = 'idle' | 'rx' | 'tx' | 'hang' | 'lockout';

export interface OverInfo {
  /** radio→channel: heard on the radio, sent to a channel; channel→radio: transmitted on the radio. */
  direction: 'radio-to-channel' | 'channel-to-radio';
  channel: string;
  stream: string;
  talker: string;
  since: number;
}

export interface BridgeStatus {
  radio: string;
  state: BridgeState;
  ptt: boolean;
  cos: boolean;
  over: OverInfo | null;
  /** Since the last status() call. */
  rxLevels: Levels | null;
  txLevels: Levels | null;
  /** The radio's audio devices are usable (false while a USB card is gone). */
  audioOk: boolean;
}

export interface BridgeCounters {
  oversFromRadio: number;
  oversToRadio: number;
  /** Seconds the transmitter was keyed, summed. */
  keyedSeconds: number;
  timeouts: number;
  starvations: number;
  /** Network overs not transmitted because the radio was receiving. */
  refusedBusy: number;
  /** Network overs not transmitted because they arrived too late (bridge.maxStartLagMs). */
  refusedStale: number;
  pttFaults: number;
}

export type BridgeEvents = {
  state: [from: BridgeState, to: BridgeState, reason: string];
  ptt: [on: boolean, reason: string];
  cos: [open: boolean];
  over: [phase: 'start' | 'end', over: OverInfo, reason: string];
};

export interface BridgeView extends Emitter<BridgeEvents> {
  readonly radio: string;
  status(): BridgeStatus;
  readonly counters: Readonly<BridgeCounters>;
}
