/**
 * The gateway's retained status topic, `<prefix>/_gateways/<gatewayId>/status`, and the one place
 * that samples the bridges for it, for /metrics and for the systemd watchdog's health check.
 *
 * Online/offline rides on a dedicated MQTT connection whose Last Will is the offline document
 * (statusWill): the broker publishes it, retained, when the gateway vanishes without a word. The
 * channel connections cannot carry it, their Will already clears their presence.
 *
 * A bridge's status() hands out levels measured since its previous call, so only the monitor calls
 * it; metrics and the health check read the monitor's latest sample.
 */
import type { BridgeStatus, BridgeView, OverInfo } from '../bridge/types.js';
import { statusTopic, validateSender } from '../../shared/channel/topics.js';
import type { Logger } from '../core/log.js';
import type { Route } from '../core/route.js';
import { brokerOf } from '../net/failover.js';
import { redactUrl } from '../net/redact.js';
import type { UplinkStatus } from '../net/uplink.js';
import type { RecorderStatus } from '../history/recorder.js';
import type { Levels } from '../radio/types.js';
import type { Metrics, createMetrics } from './metrics.js';
import type { ChannelView, GatewayIdentity } from './views.js';

const SEALED = '(sealed)';

/** A client id no channel connection can take: channel names cannot contain ':'. */
export function statusClientId(gatewayId: string): string {
  return `tb-${validateSender(gatewayId)}:status`.slice(0, 64);
}

export interface LevelsJson {
  /** dBFS, one decimal; null for digital silence. */
  peakDb: number | null;
  rmsDb: number | null;
  clipped: number;
}

export interface RadioStatusJson {
  radio: string;
  state: BridgeStatus['state'];
  ptt: boolean;
  cos: boolean;
  audioOk: boolean;
  over: OverInfo | null;
  rx: LevelsJson | null;
  tx: LevelsJson | null;
  counters: Record<string, number>;
}

export interface ChannelStatusJson {
  channel: string;
  connected: boolean;
  /** The broker URL this channel is on (or last was, while reconnecting). */
  broker?: string | null;
  /** Display name of whoever holds the floor ("(sealed)" on an encrypted channel), null when the channel is quiet. */
  talking: string | null;
  /** End-to-end encrypted (docs/security.md). */
  encrypted?: boolean;
}

export interface GatewayStatusJson {
  v: 1;
  online: boolean;
  id: string;
  name: string;
  version: string;
  /** Wall-clock ms when this connection came up (online documents only). */
  since?: number;
  /** Wall-clock ms this document was made (absent in the Last Will, which is written at connect). */
  updated?: number;
  radios: RadioStatusJson[];
  channels: ChannelStatusJson[];
  /** The broker the status connection is on (online documents only). */
  broker?: string | null;
  /** A field kit's bridge to its upstream broker (net/uplink.ts), when configured. */
  uplink?: UplinkStatus;
  /** The history recorder (history/recorder.ts), when configured: 'full' means it stopped recording. */
  history?: RecorderStatus;
}

function offlineDoc(o: GatewayIdentity): GatewayStatusJson {
  return { v: 1, online: false, id: o.gatewayId, name: o.name, version: o.version, radios: [], channels: [] };
}

/** The Last Will for the status connection: pass it as `will` to connect() (net/connect.ts). */
export function statusWill(o: GatewayIdentity): { topic: string; payload: Uint8Array; qos: 1; retain: true } {
  return { topic: statusTopic(o.prefix, o.gatewayId), payload: new TextEncoder().encode(JSON.stringify(offlineDoc(o))), qos: 1, retain: true };
}

/** The part of an MQTT.js client the status publisher uses. */
export interface StatusClient {
  readonly connected: boolean;
  publish(topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }, cb?: (err?: Error) => void): unknown;
  on(event: 'connect', fn: () => void): unknown;
  removeListener(event: 'connect', fn: () => void): unknown;
}

export interface MonitorOptions extends GatewayIdentity {
  bridges: readonly BridgeView[];
  channels: readonly ChannelView[];
  /** The dedicated status connection, made with `will: statusWill(…)`; null = metrics and health only. */
  client: StatusClient | null;
  /** The uplink's state, for a kit that has one. */
  uplink?: () => UplinkStatus;
  /** The history recorder's state, for a gateway that records. */
  history?: () => RecorderStatus;
  /** Levels republished this often, even when nothing happens (ms). */
  levelsMs?: number;
  /** Bursts of bridge events are coalesced to one publish per this interval (ms). */
  minIntervalMs?: number;
  log?: Logger;
  /** false leaves out prom-client's process and Node.js metrics. */
  defaultMetrics?: boolean;
  /**
   * metrics.ts's createMetrics, passed in by a gateway that serves /metrics. Without it there are
   * no Prometheus metrics at all: prom-client (~1 MB resident) and its samplers stay unloaded on a
   * gateway whose web port is off, where nothing could scrape them.
   */
  createMetrics?: typeof createMetrics;
}

/** GET /healthz: the watchdog's judgement, and the same view of the channels as the status topic. */
export interface HealthJson {
  status: 'ok' | 'degraded';
  channels: ChannelStatusJson[];
  /** Informational: local talk never depends on the uplink, so neither does health. */
  uplink: UplinkStatus | null;
  radios: Array<Pick<RadioStatusJson, 'radio' | 'state' | 'ptt' | 'audioOk'>>;
}

export interface Monitor {
  /** The status document as it would be published now (samples the bridges). */
  snapshot(): GatewayStatusJson;
  /**
   * The /healthz document, from the latest samples (it does not sample the bridges: /healthz is
   * unauthenticated, and a client polling it must not steal the status topic's level readings).
   */
  health(): HealthJson;
  /** Every channel connected and every radio's audio usable: the watchdog's predicate. */
  healthy(): boolean;
  /** GET /metrics in Prometheus text format; a Route for startHttpServer (null: no metrics). */
  readonly metricsRoute: Route | null;
  readonly metrics: Metrics | null;
  /** Publishes the offline document (when connected) and stops; does not close the client. */
  stop(): Promise<void>;
}

/**
 * `broker: URL` for a connection made by net/connect (which knows its broker), nothing otherwise.
 * Without its userinfo: the document is retained in clear, and copied upstream by the uplink.
 */
const brokerField = (client: object): { broker?: string } => {
  const b = brokerOf(client);
  return b ? { broker: redactUrl(b) } : {};
};

const round1 = (x: number) => Math.round(x * 10) / 10;

function levelsJson(l: Levels | null): LevelsJson | null {
  if (!l) return null;
  const db = (x: number) => (Number.isFinite(x) ? round1(x) : null);
  return { peakDb: db(l.peakDb), rmsDb: db(l.rmsDb), clipped: l.clipped };
}

export function startMonitor(o: MonitorOptions): Monitor {
  const topic = statusTopic(o.prefix, o.gatewayId);
  const levelsMs = o.levelsMs ?? 2000;
  const minIntervalMs = o.minIntervalMs ?? 250;
  const latest = new Map<string, BridgeStatus>();
  let since = Date.now();
  let lastPublish = 0;
  let pending: NodeJS.Timeout | null = null;
  let stopped = false;

  const sample = (): BridgeStatus[] =>
    o.bridges.map((b) => {
      let s: BridgeStatus;
      try {
        s = b.status();
      } catch (err) {
        // A bridge that cannot describe itself is reported as broken, never allowed to stop the rest.
        o.log?.warn({ event: 'status', radio: b.radio, err: (err as Error).message }, 'bridge status failed');
        s = { radio: b.radio, state: 'idle', ptt: false, cos: false, over: null, rxLevels: null, txLevels: null, audioOk: false };
      }
      latest.set(b.radio, s);
      return s;
    });

  // The status document is retained in clear on the broker: on an encrypted channel it must not
  // name who is talking (the channel itself hides names from the broker).
  const sealed = new Set(o.channels.filter((c) => (c.session as { encrypted?: boolean }).encrypted).map((c) => c.session.topics.channel));
  /** One description of the channels for every reader: the status topic and /healthz. */
  const channelsJson = (): ChannelStatusJson[] =>
    o.channels.map((c) => ({
      channel: c.session.topics.channel,
      connected: c.client.connected,
      ...brokerField(c.client),
      encrypted: sealed.has(c.session.topics.channel),
      talking: c.session.holder ? (sealed.has(c.session.topics.channel) ? SEALED : c.session.holder.name) : null,
    }));
  const snapshot = (): GatewayStatusJson => ({
    v: 1,
    online: true,
    id: o.gatewayId,
    name: o.name,
    version: o.version,
    since,
    updated: Date.now(),
    radios: sample().map((s, i) => ({
      radio: s.radio,
      state: s.state,
      ptt: s.ptt,
      cos: s.cos,
      audioOk: s.audioOk,
      over: s.over && sealed.has(s.over.channel) ? { ...s.over, talker: SEALED } : s.over,
      rx: levelsJson(s.rxLevels),
      tx: levelsJson(s.txLevels),
      counters: { ...o.bridges[i]!.counters },
    })),
    channels: channelsJson(),
    ...(o.client ? brokerField(o.client) : {}),
    ...(o.uplink ? { uplink: o.uplink() } : {}),
    ...(o.history ? { history: o.history() } : {}),
  });

  // Without a connection the samples still keep healthy() and /metrics current.
  const publish = () => {
    if (pending) clearTimeout(pending);
    pending = null;
    if (stopped) return;
    lastPublish = Date.now();
    if (!o.client?.connected) {
      sample();
      return;
    }
    o.client.publish(topic, JSON.stringify(snapshot()), { qos: 1, retain: true }, (err) => {
      if (err) o.log?.warn({ event: 'status', err: err.message }, 'status publish failed');
    });
  };

  // Rate-limited: the first event after a quiet spell goes out at once, a burst coalesces.
  const kick = () => {
    if (stopped || pending) return;
    const wait = lastPublish + minIntervalMs - Date.now();
    if (wait <= 0) publish();
    else pending = setTimeout(publish, wait);
  };

  const offs: Array<() => void> = [];
  for (const b of o.bridges) {
    offs.push(b.on('state', kick), b.on('ptt', kick), b.on('cos', kick), b.on('over', kick));
  }
  for (const c of o.channels) offs.push(c.session.on('floor', kick));
  const onConnect = () => {
    since = Date.now();
    publish();
  };
  o.client?.on('connect', onConnect);
  const periodic = setInterval(publish, levelsMs);
  periodic.unref();

  const metrics = o.createMetrics?.({
    identity: o,
    bridges: o.bridges,
    channels: o.channels,
    latest: (radio) => latest.get(radio) ?? null,
    defaultMetrics: o.defaultMetrics ?? true,
    uplink: o.uplink,
    history: o.history,
  });
  // net/connect resolves after the first CONNACK, so that 'connect' has already been and gone.
  if (o.client?.connected) onConnect();
  else sample();

  const healthy = (): boolean => {
    if (!o.channels.every((c) => c.client.connected)) return false;
    return o.bridges.every((b) => latest.get(b.radio)?.audioOk === true);
  };

  return {
    snapshot,
    healthy,
    health: () => ({
      status: healthy() ? 'ok' : 'degraded',
      channels: channelsJson(),
      uplink: o.uplink?.() ?? null,
      radios: o.bridges.map((b) => {
        const s = latest.get(b.radio);
        return { radio: b.radio, state: s?.state ?? 'idle', ptt: s?.ptt ?? false, audioOk: s?.audioOk ?? false };
      }),
    }),
    metricsRoute: metrics?.route ?? null,
    metrics: metrics ?? null,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (pending) clearTimeout(pending);
      clearInterval(periodic);
      for (const off of offs) off();
      o.client?.removeListener('connect', onConnect);
      metrics?.stop();
      const client = o.client;
      if (!client?.connected) return;
      // A clean stop says offline itself: the broker discards the Will on a normal disconnect.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        client.publish(topic, JSON.stringify({ ...offlineDoc(o), updated: Date.now() }), { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}
