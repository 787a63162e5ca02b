/**
 * Prometheus metrics (prom-client) for GET /metrics. Totals the bridges already keep (overs,
 * seconds keyed, time-outs…), the sessions' drop counters and the embedded broker's refusals are
 * read at scrape time, so there is one source of truth; per-over packet statistics are added up
 * here as each over ends.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EmbeddedBroker } from '../broker/embedded.js';
import type { BridgeCounters, BridgeState, BridgeStatus, BridgeView } from '../bridge/types.js';
import type { OverReport } from '../../shared/channel/session.js';
import type { Route } from '../core/route.js';
import type { ChannelView, GatewayIdentity } from './views.js';
import type { UplinkStatus } from '../net/uplink.js';
import type { RecorderStatus } from '../history/recorder.js';

export interface MetricsOptions {
  identity: GatewayIdentity;
  bridges: readonly BridgeView[];
  channels: readonly ChannelView[];
  /** The monitor's latest sample of a bridge (status() is not called here: it resets the level window). */
  latest(radio: string): BridgeStatus | null;
  defaultMetrics: boolean;
  path?: string;
  /** A field kit's uplink (net/uplink.ts), when it has one. */
  uplink?: () => UplinkStatus;
  /** The history recorder, on a gateway that records. */
  history?: () => RecorderStatus;
  /** The embedded broker, when this daemon runs one: what its bounds and logins refused. */
  broker?: Pick<EmbeddedBroker, 'limits' | 'auth'> | null;
}

export interface Metrics {
  registry: Registry;
  route: Route;
  /** The exposition text, as served. */
  text(): Promise<string>;
  stop(): void;
}

const STATES: BridgeState[] = ['idle', 'rx', 'tx', 'hang', 'lockout'];

/** Bridge counter → metric (name, help), all `_total` counters labelled by radio. */
const BRIDGE_TOTALS: Array<[keyof BridgeCounters, string, string]> = [
  ['keyedSeconds', 'talkbridge_keyed_seconds_total', 'Seconds the transmitter was keyed'],
  ['timeouts', 'talkbridge_timeouts_total', 'Transmissions cut by the time-out timer'],
  ['starvations', 'talkbridge_starvations_total', 'Unkeys because no valid audio arrived (starvation)'],
  ['refusedBusy', 'talkbridge_refused_busy_total', 'Network overs not transmitted because the radio was receiving'],
  ['refusedStale', 'talkbridge_refused_stale_total', 'Network overs not transmitted because they arrived late'],
  ['pttFaults', 'talkbridge_ptt_faults_total', 'PTT driver faults'],
];

export function createMetrics(o: MetricsOptions): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ gateway: o.identity.gatewayId });
  // prom-client samples event-loop lag with its own 10 ms timer: 100 wake-ups a second on an idle Pi.
  // Ours (below) is the one that matters; prom-client's is kept, coarse.
  if (o.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'talkbridge_', eventLoopMonitoringPrecision: 200 });
  const registers = [registry];

  new Gauge({
    name: 'talkbridge_info',
    help: 'Always 1; the labels say which gateway and software',
    labelNames: ['name', 'version'],
    registers,
    collect() {
      this.set({ name: o.identity.name, version: o.identity.version }, 1);
    },
  });

  const history = o.history;
  if (history) {
    new Gauge({
      name: 'talkbridge_history_state',
      help: 'The history recorder: 1 for its current state (ok; full: stopped recording for want of space; error)',
      labelNames: ['state'],
      registers,
      collect() {
        const now = history().state;
        for (const st of ['ok', 'full', 'error'] as const) this.set({ state: st }, st === now ? 1 : 0);
      },
    });
    new Gauge({
      name: 'talkbridge_history_stored_bytes',
      help: 'Bytes of packets the history holds',
      registers,
      collect() {
        this.set(history().storedBytes);
      },
    });
    new Counter({
      name: 'talkbridge_history_recorded_total',
      help: 'What the history recorder stored: overs, packets, bytes',
      labelNames: ['what'],
      registers,
      collect() {
        this.reset();
        const c = history().counters;
        this.inc({ what: 'overs' }, c.overs);
        this.inc({ what: 'packets' }, c.packets);
        this.inc({ what: 'bytes' }, c.bytes);
      },
    });
    new Counter({
      name: 'talkbridge_history_not_recorded_total',
      help: 'Packets and messages the recorder did not store, by reason (full: no space; the rest refused as malformed or hostile)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        const s = history();
        this.inc({ reason: 'full' }, s.counters.dropped);
        for (const [reason, n] of Object.entries(s.refused)) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'talkbridge_history_removed_overs_total',
      help: 'Overs removed by retention (age or size)',
      registers,
      collect() {
        this.reset();
        this.inc(history().counters.removed);
      },
    });
  }

  const uplink = o.uplink;
  if (uplink) {
    new Gauge({
      name: 'talkbridge_uplink_connected',
      help: '1 while the uplink is connected to its upstream broker',
      registers,
      collect() {
        this.set(uplink().connected ? 1 : 0);
      },
    });
    new Counter({
      name: 'talkbridge_uplink_messages_total',
      help: 'Messages the uplink forwarded: up (kit to upstream), down (upstream to kit)',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const c = uplink().counters;
        this.inc({ direction: 'up' }, c.up);
        this.inc({ direction: 'down' }, c.down);
      },
    });
    new Counter({
      name: 'talkbridge_uplink_not_forwarded_total',
      help: 'Messages the uplink did not forward: loop (our own copy coming back), offline (other side down), dropped',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        const c = uplink().counters;
        this.inc({ reason: 'loop' }, c.loops);
        this.inc({ reason: 'offline' }, c.offline);
        this.inc({ reason: 'dropped' }, c.dropped);
      },
    });
  }

  const broker = o.broker;
  if (broker) {
    new Counter({
      name: 'talkbridge_broker_refused_total',
      help:
        'What the embedded broker refused, by reason: packet-too-large (connection closed), publish-too-large, retained-not-kept, ' +
        'client-id-refused, login-throttled; with embeddedBroker.auth also login-refused, publish-denied, subscribe-denied',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        const l = broker.limits;
        this.inc({ reason: 'packet-too-large' }, l.packetsTooLarge);
        this.inc({ reason: 'publish-too-large' }, l.publishesTooLarge);
        this.inc({ reason: 'retained-not-kept' }, l.retainedRefused);
        this.inc({ reason: 'client-id-refused' }, l.clientIdsRefused);
        this.inc({ reason: 'login-throttled' }, l.loginsThrottled);
        // An open broker has no logins to refuse: absent series, not zeros that look like a guard.
        const a = broker.auth;
        if (a) {
          this.inc({ reason: 'login-refused' }, a.loginsRefused);
          this.inc({ reason: 'publish-denied' }, a.publishesDenied);
          this.inc({ reason: 'subscribe-denied' }, a.subscriptionsDenied);
        }
      },
    });
  }

  new Counter({
    name: 'talkbridge_overs_total',
    help: 'Overs bridged, by direction (radio-to-channel: heard on the radio; channel-to-radio: transmitted)',
    labelNames: ['radio', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const b of o.bridges) {
        this.inc({ radio: b.radio, direction: 'radio-to-channel' }, b.counters.oversFromRadio);
        this.inc({ radio: b.radio, direction: 'channel-to-radio' }, b.counters.oversToRadio);
      }
    },
  });

  for (const [key, name, help] of BRIDGE_TOTALS) {
    new Counter({
      name,
      help,
      labelNames: ['radio'],
      registers,
      collect() {
        this.reset();
        for (const b of o.bridges) this.inc({ radio: b.radio }, Math.max(0, b.counters[key]));
      },
    });
  }

  const perRadio = (name: string, help: string, value: (s: BridgeStatus) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['radio'],
      registers,
      collect() {
        this.reset();
        for (const b of o.bridges) {
          const s = o.latest(b.radio);
          const v = s ? value(s) : null;
          if (v !== null) this.set({ radio: b.radio }, v);
        }
      },
    });
  perRadio('talkbridge_ptt', '1 while the transmitter is keyed', (s) => (s.ptt ? 1 : 0));
  perRadio('talkbridge_cos', '1 while carrier detect is open', (s) => (s.cos ? 1 : 0));
  perRadio('talkbridge_audio_ok', '1 while the radio audio devices are usable', (s) => (s.audioOk ? 1 : 0));
  perRadio('talkbridge_input_level_dbfs', 'RMS level of the radio receive audio over the last sample window (dBFS)', (s) => s.rxLevels?.rmsDb ?? null);
  perRadio('talkbridge_input_peak_dbfs', 'Peak level of the radio receive audio over the last sample window (dBFS)', (s) => s.rxLevels?.peakDb ?? null);
  perRadio('talkbridge_output_level_dbfs', 'RMS level of the audio sent to the transmitter over the last sample window (dBFS)', (s) => s.txLevels?.rmsDb ?? null);

  new Gauge({
    name: 'talkbridge_radio_state',
    help: 'Bridge state machine: 1 for the current state, 0 for the others',
    labelNames: ['radio', 'state'],
    registers,
    collect() {
      this.reset();
      for (const b of o.bridges) {
        const s = o.latest(b.radio);
        if (s) for (const st of STATES) this.set({ radio: b.radio, state: st }, s.state === st ? 1 : 0);
      }
    },
  });

  new Gauge({
    name: 'talkbridge_channel_connected',
    help: '1 while the channel broker connection is up',
    labelNames: ['channel'],
    registers,
    collect() {
      this.reset();
      for (const c of o.channels) this.set({ channel: c.session.topics.channel }, c.client.connected ? 1 : 0);
    },
  });

  new Counter({
    name: 'talkbridge_malformed_input_total',
    help: 'Channel input dropped, by reason: malformed, out of protocol, or over a bound (overload, overs, buffer-full, presence-full, budget…)',
    labelNames: ['channel', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const c of o.channels) for (const [reason, n] of Object.entries(c.session.counters)) this.inc({ channel: c.session.topics.channel, reason }, n);
    },
  });

  const overs = new Counter({ name: 'talkbridge_channel_overs_total', help: 'Overs received on the channel (ended)', labelNames: ['channel'], registers });
  const received = new Counter({ name: 'talkbridge_packets_received_total', help: 'Audio packets that arrived in time to be played', labelNames: ['channel'], registers });
  const lost = new Counter({ name: 'talkbridge_packets_lost_total', help: 'Audio packets that never arrived', labelNames: ['channel'], registers });
  const late = new Counter({ name: 'talkbridge_packets_late_total', help: 'Audio packets that arrived after their playout time and were dropped', labelNames: ['channel'], registers });
  const jitter = new Histogram({
    name: 'talkbridge_jitter_delay_seconds',
    help: 'Jitter buffer delay reached in each over',
    labelNames: ['channel'],
    buckets: [0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2],
    registers,
  });
  const offs = o.channels.map((c) =>
    c.session.on('overEnd', (r: OverReport) => {
      if (r.self) return;
      const channel = c.session.topics.channel;
      const n = (x: number) => (Number.isFinite(x) && x > 0 ? x : 0);
      overs.inc({ channel });
      received.inc({ channel }, n(r.stats.received));
      lost.inc({ channel }, n(r.stats.lost));
      late.inc({ channel }, n(r.stats.late));
      if (Number.isFinite(r.stats.delayMs) && r.stats.delayMs >= 0) jitter.observe({ channel }, r.stats.delayMs / 1000);
    }),
  );

  // Its own window, reset at each scrape: p99 "since the last scrape", which is what alerts want.
  // 20 ms sampling: each sample still measures the delay to the microsecond; fewer idle wake-ups.
  const loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  const loopGauge = (name: string, help: string, pick: (h: IntervalHistogram) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = pick(loop);
        if (loop.count > 0 && Number.isFinite(v)) this.set(v / 1e9);
      },
    });
  loopGauge('talkbridge_event_loop_delay_p99_seconds', 'Event-loop delay, 99th percentile since the previous scrape', (h) => h.percentile(99));
  loopGauge('talkbridge_event_loop_delay_max_seconds', 'Event-loop delay, maximum since the previous scrape', (h) => h.max);

  const text = async () => {
    const out = await registry.metrics();
    loop.reset();
    return out;
  };
  const path = o.path ?? '/metrics';
  return {
    registry,
    text,
    route: async (req, res) => {
      if ((req.url ?? '').split('?')[0] !== path) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
        return true;
      }
      const body = await text();
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
    stop() {
      for (const off of offs) off();
      loop.disable();
      registry.clear();
    },
  };
}
