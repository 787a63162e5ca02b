/**
 * A BridgeView and a channel built on the real Emitter: bridge.ts is the lead's, and these tests are
 * about what the monitor makes of a bridge's status, counters and events, not about bridging.
 */
import type { BridgeCounters, BridgeEvents, BridgeStatus, BridgeView, OverInfo } from '../../gateway/src/bridge/types.js';
import { Emitter } from '../../gateway/shared/core/emitter.js';
import type { OverReport, SessionEvents, TalkerInfo } from '../../gateway/shared/channel/session.js';
import type { ChannelView } from '../../gateway/src/app/views.js';

export class FakeBridge extends Emitter<BridgeEvents> implements BridgeView {
  readonly counters: BridgeCounters = { oversFromRadio: 0, oversToRadio: 0, keyedSeconds: 0, timeouts: 0, starvations: 0, refusedBusy: 0, refusedStale: 0, pttFaults: 0 };
  st: BridgeStatus;
  statusCalls = 0;
  constructor(readonly radio: string) {
    super();
    this.st = { radio, state: 'idle', ptt: false, cos: false, over: null, rxLevels: { peakDb: -30, rmsDb: -42.04, clipped: 0, samples: 960 }, txLevels: null, audioOk: true };
  }
  status(): BridgeStatus {
    this.statusCalls++;
    return { ...this.st };
  }
  /** A network over arrives and is transmitted, as the bridge would report it. */
  transmit(over: OverInfo): void {
    this.st = { ...this.st, state: 'tx', ptt: true, over };
    this.emit('state', 'idle', 'tx', 'over');
    this.emit('ptt', true, 'over');
    this.emit('over', 'start', over, 'start');
  }
  endTransmit(seconds: number): void {
    const over = this.st.over!;
    this.counters.oversToRadio++;
    this.counters.keyedSeconds += seconds;
    this.st = { ...this.st, state: 'idle', ptt: false, over: null };
    this.emit('over', 'end', over, 'end');
    this.emit('ptt', false, 'hang expired');
    this.emit('state', 'tx', 'idle', 'hang expired');
  }
}

class FakeSession extends Emitter<SessionEvents> {
  readonly counters: Record<string, number> = {};
  holder: TalkerInfo | null = null;
  readonly topics: { channel: string };
  constructor(channel: string) {
    super();
    this.topics = { channel };
  }
}

export class FakeChannel implements ChannelView {
  readonly session: FakeSession;
  readonly client = { connected: true };
  constructor(channel: string) {
    this.session = new FakeSession(channel);
  }
  talk(name: string): TalkerInfo {
    const info: TalkerInfo = { stream: 's1', sender: name.toLowerCase(), name, source: 'web', t: Date.now(), self: false };
    this.session.holder = info;
    this.session.emit('floor', info);
    return info;
  }
  endTalk(stats: Partial<OverReport['stats']>): void {
    const info = this.session.holder!;
    this.session.holder = null;
    const report: OverReport = {
      ...info,
      reason: 'done',
      durationMs: 2000,
      stats: { received: 0, lost: 0, late: 0, duplicates: 0, concealed: 0, played: 0, stretched: 0, delayMs: 0, ...stats },
    };
    this.session.emit('overEnd', report);
    this.session.emit('floor', null);
  }
}
