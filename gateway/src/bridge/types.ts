/** What the outside (status topic, /metrics, systemd watchdog, logs) can see of a radio bridge. */
import type { Emitter } from '../core/emitter.js';
import type { Levels } from '../radio/types.js';

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
