/**
 * The field kit's uplink: forwards the configured channels' topics between the kit's own broker
 * (which serves the local team and never depends on this) and an upstream broker, both ways,
 * whenever the upstream is reachable.
 *
 * - Opaque: payloads are copied byte for byte, so encrypted channels need no key here.
 * - Nothing stale: a message is forwarded only while the other side is connected, never queued
 *   (a late over would reach the air).
 * - QoS is preserved (we subscribe at 2, so each message arrives at its publisher's QoS). Retain
 *   is the protocol's (presence is retained, audio and control never are), because an MQTT 3.1.1
 *   broker (aedes) clears the retain flag on live deliveries.
 * - Loops: we subscribe to what we publish and MQTT 3.1.1 has no noLocal, so every message we
 *   forward comes back once. We remember (side, topic, payload digest) of what we published and
 *   drop the echo. Retained copies that a broker hands us on (re)subscribing are ours too when the
 *   topic's value came from the other side: they are not forwarded back, and if the other side no
 *   longer has that value (someone left while the link was down) the copy is corrected.
 * - Status: only this kit's own status document goes upstream (`_gateways/<gatewayId>/status`),
 *   never other gateways' that happen to share the local broker: the upstream must not learn, or be
 *   told in this kit's name, about gateways that did not ask to be bridged.
 * - URLs are shown (status, logs) without their login (net/redact.ts).
 */
import { createHash } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt';
import { STATUS_SEGMENT, TOPIC_KINDS, statusFilter, validatePrefix } from '../../shared/channel/topics.js';
import type { Logger } from '../core/log.js';
import { type ConnectOptions, connect, disconnect } from './connect.js';
import { brokerOf as brokerOfRaw } from './failover.js';
import { redactUrl } from './redact.js';

/** The broker a client is on, fit to show. */
const brokerOf = (client: object): string | null => redactUrl(brokerOfRaw(client));

export type Side = 'local' | 'remote';

export interface UplinkOptions {
  /** The kit's own broker: the URL(s) and credentials the channels use. */
  local: Omit<ConnectOptions, 'clientId' | 'will' | 'onRetry' | 'signal'>;
  remote: Omit<ConnectOptions, 'clientId' | 'will' | 'onRetry' | 'signal'>;
  localPrefix: string;
  remotePrefix: string;
  channels: readonly string[];
  /** Client-id stem (the gateway id); the two connections are `<stem>:uplink-local` and `:uplink`. */
  gatewayId: string;
  /** Upstream Last Will, e.g. this gateway's offline status document: the kit vanishing is news upstream. */
  remoteWill?: ConnectOptions['will'];
  log?: Logger;
  /** How long an expected echo is remembered (ms). */
  echoMs?: number;
}

export interface UplinkCounters {
  /** Messages forwarded local → upstream. */
  up: number;
  /** Messages forwarded upstream → local. */
  down: number;
  /** Our own messages coming back, not forwarded again. */
  loops: number;
  /** Not forwarded because the other side was disconnected. */
  offline: number;
  /** Topics that are not channel topics, or publishes that failed. */
  dropped: number;
}

export interface UplinkStatus {
  /** Connected to the upstream broker. */
  connected: boolean;
  /** Connected to the kit's own broker. */
  local: boolean;
  /** The upstream broker in use (or last used); null before the first connection. */
  broker: string | null;
  channels: string[];
  counters: UplinkCounters;
}

export interface Uplink {
  status(): UplinkStatus;
  readonly counters: UplinkCounters;
  /** Resolves when both sides are connected for the first time (tests). */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

/** Remembers what we published to each side until its echo arrives (or echoMs passes). */
class Echoes {
  private readonly pending = new Map<string, { n: number; at: number }>();
  private readonly sent = new Map<string, number>();
  constructor(private readonly ttlMs: number) {}

  expect(key: string): void {
    const now = Date.now();
    for (const [k, v] of this.pending) {
      if (now - v.at < this.ttlMs && this.pending.size < 20000) break;
      this.pending.delete(k);
    }
    for (const [k, at] of this.sent) {
      if (now - at < this.ttlMs && this.sent.size < 20000) break;
      this.sent.delete(k);
    }
    this.sent.delete(key);
    this.sent.set(key, now);
    const e = this.pending.get(key);
    if (e) e.n++;
    else this.pending.set(key, { n: 1, at: now });
  }

  /** True (and forgotten) if this is the echo of something we published. */
  /** True if we published this within the last ttlMs, echo or not (not consumed). */
  recent(key: string): boolean {
    const e = this.sent.get(key);
    return e !== undefined && Date.now() - e < this.ttlMs;
  }

  take(key: string): boolean {
    const e = this.pending.get(key);
    if (!e || Date.now() - e.at >= this.ttlMs) return false;
    if (--e.n === 0) this.pending.delete(key);
    return true;
  }
}

/** Presence topics remembered per side (far more than a team's members). */
const MAX_TRACKED = 10000;

const digest = (payload: Buffer) => createHash('sha1').update(payload).digest('base64');

export function startUplink(o: UplinkOptions): Uplink {
  const prefix: Record<Side, string> = { local: validatePrefix(o.localPrefix), remote: validatePrefix(o.remotePrefix) };
  const channels = new Set(o.channels);
  const counters: UplinkCounters = { up: 0, down: 0, loops: 0, offline: 0, dropped: 0 };
  const clients: Record<Side, MqttClient | null> = { local: null, remote: null };
  const echoes = new Echoes(o.echoMs ?? 10000);
  /** The presence values each side holds, as last seen (topic below the prefix → payload). */
  const held: Record<Side, Map<string, Buffer>> = { local: new Map(), remote: new Map() };
  /** For a presence topic we copied: the side whose value it is. */
  const origin = new Map<string, Side>();
  const abort = new AbortController();
  const other = (s: Side): Side => (s === 'local' ? 'remote' : 'local');
  const log = o.log;
  let sameBrokerSaid = false;

  /** `<channel>/<kind>/<sender>` of a bridged channel topic, or a status topic's rest, or null. */
  const below = (side: Side, topic: string): { rest: string; kind: string } | null => {
    if (!topic.startsWith(prefix[side] + '/')) return null;
    const rest = topic.slice(prefix[side].length + 1);
    const parts = rest.split('/');
    if (parts.length !== 3) return null;
    // Our own status only: another gateway on the kit's broker is not ours to publish upstream.
    if (parts[0] === STATUS_SEGMENT) return side === 'local' && parts[1] === o.gatewayId && parts[2] === 'status' ? { rest, kind: 'status' } : null;
    if (!channels.has(parts[0]!) || !(TOPIC_KINDS as readonly string[]).includes(parts[1]!)) return null;
    return { rest, kind: parts[1]! };
  };

  const publish = (to: Side, rest: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean): boolean => {
    const c = clients[to];
    if (!c?.connected) {
      counters.offline++;
      return false;
    }
    const topic = `${prefix[to]}/${rest}`;
    echoes.expect(`${to} ${topic} ${digest(payload)}`);
    c.publish(topic, payload, { qos, retain }, (err) => {
      if (err) counters.dropped++;
    });
    return true;
  };

  const onMessage = (from: Side) => (topic: string, payload: Buffer, packet: IPublishPacket) => {
    const t = below(from, topic);
    if (!t) {
      counters.dropped++;
      return;
    }
    const to = other(from);
    const presence = t.kind === 'presence';
    if (presence) {
      // Bounded: a flood of made-up senders must not grow memory without end (the copy still goes).
      if (!payload.length) held[from].delete(t.rest);
      else if (held[from].size < MAX_TRACKED || held[from].has(t.rest)) held[from].set(t.rest, payload);
    }
    const d = digest(payload);
    if (echoes.take(`${from} ${topic} ${d}`)) {
      counters.loops++;
      return;
    }
    if (echoes.recent(`${to} ${prefix[to]}/${t.rest} ${d}`)) {
      // What we just sent to the other side is arriving on this one: the two are the same broker,
      // or already bridged. Forwarding it again would go round for ever.
      counters.loops++;
      if (!sameBrokerSaid)
        log?.error(
          { event: 'uplink', state: 'loop' },
          'uplink: messages sent upstream come back on the local broker — is the upstream the local broker, or bridged to it already? Not forwarding them again.',
        );
      sameBrokerSaid = true;
      return;
    }
    if (presence && packet.retain && origin.get(t.rest) === to) {
      // A stored copy of a value we brought here from the other side: not news. If the other side
      // has moved on meanwhile (the talker left while the link was down), correct the copy.
      counters.loops++;
      const now = held[to].get(t.rest);
      if (!now?.equals(payload)) publish(from, t.rest, now ?? Buffer.alloc(0), 1, true);
      return;
    }
    const qos = packet.qos;
    if (!publish(to, t.rest, payload, qos, presence || t.kind === 'status')) return;
    if (presence && (origin.size < MAX_TRACKED || origin.has(t.rest))) origin.set(t.rest, from);
    if (from === 'local') counters.up++;
    else counters.down++;
  };

  /** After a side (re)connects: what the other side holds, it should hold too (joins during an outage). */
  const resync = (side: Side) => {
    const from = other(side);
    for (const [rest, payload] of held[from]) {
      if (origin.get(rest) === side) continue;
      if (publish(side, rest, payload, 1, true)) origin.set(rest, from);
    }
  };

  const filters = (side: Side) => [...[...channels].map((ch) => `${prefix[side]}/${ch}/+/+`), ...(side === 'local' ? [statusFilter(prefix.local, o.gatewayId)] : [])];

  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const up = async (side: Side): Promise<void> => {
    const opts = side === 'local' ? o.local : o.remote;
    let warned = false;
    const client = await connect({
      ...opts,
      clientId: `tb-${o.gatewayId}:${side === 'local' ? 'uplink-local' : 'uplink'}`.slice(0, 64),
      will: side === 'remote' ? o.remoteWill : undefined,
      signal: abort.signal,
      onRetry: (err, attempt, next, url) => {
        // An unreachable upstream is the normal state of a kit in the field: say it once, then quietly.
        const fields = { event: 'uplink', side, state: 'waiting', attempt, retryMs: next, err: redactUrl(err.message) };
        const msg = `uplink: ${redactUrl(err.message)}; trying ${redactUrl(url)} ${next ? `in ${(next / 1000).toFixed(1)} s` : 'next'}`;
        if (warned) log?.debug(fields, msg);
        else log?.warn(fields, msg);
        warned = true;
      },
    });
    if (abort.signal.aborted) {
      await disconnect(client);
      return;
    }
    clients[side] = client;
    client.on('message', onMessage(side));
    // MQTT.js would resend unacknowledged QoS 1 messages after reconnecting, possibly minutes late:
    // a forwarded over start or end is news now or never.
    client.on('close', () => {
      for (const id of Object.keys(client.outgoing)) client.removeOutgoingMessage(Number(id));
    });
    const online = () => {
      log?.info({ event: 'uplink', side, state: 'online', broker: brokerOf(client) }, `uplink: ${side === 'local' ? 'local' : 'upstream'} broker ${brokerOf(client)} connected`);
      resync(side);
    };
    client.on('connect', online);
    client.on('offline', () => log?.warn({ event: 'uplink', side, state: 'offline' }, `uplink: ${side === 'local' ? 'local' : 'upstream'} broker ${brokerOf(client)} lost, reconnecting`));
    await new Promise<void>((resolve) =>
      client.subscribe(
        filters(side).map((f) => f),
        { qos: 2 },
        (err) => {
          if (err) log?.error({ event: 'uplink', side, err: err.message }, `uplink: subscribing on the ${side} broker failed: ${err.message}`);
          resolve();
        },
      ),
    );
    online();
  };

  const started = Promise.allSettled([up('local'), up('remote')]).then((r) => {
    for (const x of r) if (x.status === 'rejected' && !abort.signal.aborted) log?.error({ event: 'uplink', err: (x.reason as Error).message }, `uplink stopped: ${(x.reason as Error).message}`);
    if (r.every((x) => x.status === 'fulfilled')) readyResolve();
  });

  return {
    counters,
    ready,
    status: () => ({
      connected: clients.remote?.connected ?? false,
      local: clients.local?.connected ?? false,
      broker: clients.remote ? brokerOf(clients.remote) : null,
      channels: [...channels],
      counters: { ...counters },
    }),
    async stop() {
      abort.abort();
      await started;
      // A clean disconnect discards the Will, so say it ourselves: upstream learns the kit is gone.
      const remote = clients.remote;
      if (o.remoteWill && remote?.connected) {
        const w = o.remoteWill;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 1000);
          remote.publish(w.topic, Buffer.from(w.payload), { qos: w.qos, retain: w.retain }, () => (clearTimeout(t), resolve()));
        });
      }
      await Promise.all((['local', 'remote'] as const).map((s) => (clients[s] ? disconnect(clients[s]) : undefined)));
    },
  };
}
