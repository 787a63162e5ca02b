/**
 * The browser's broker connection: MQTT.js over WebSocket, with the gateway's reconnect policy
 * (exponential back-off with jitter, so a kit's worth of phones does not hammer a broker that
 * just came back all at the same instant) and a connection state the page can show.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { Emitter } from '../../shared/core/emitter.js';

export type ConnState =
  | { kind: 'connecting'; url: string }
  | { kind: 'connected'; url: string }
  | { kind: 'reconnecting'; url: string; attempt: number; retryAt: number; reason: string }
  | { kind: 'closed' }
  /** The broker refused the login (CONNACK 4/5, or 134/135 in MQTT 5): retrying cannot help. */
  | { kind: 'refused'; url: string; reason: string };

/** CONNACK return codes that mean "these credentials will not do" (MQTT 3.1.1, then MQTT 5). */
const LOGIN_REFUSED = new Set([4, 5, 134, 135]);

/** Delay before reconnect attempt n (1-based): base·2^(n-1), capped at 30 s, times 1..2 at random. */
export function backoffMs(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const base = Math.min(30000, baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 5));
  return Math.round(base * (1 + random()));
}

export interface BrokerOptions {
  url: string;
  clientId: string;
  will: { topic: string; qos: 0 | 1; retain: boolean };
  baseMs?: number;
  /** Broker login; the password is only ever handed to MQTT.js. */
  username?: string;
  password?: string;
}

export class BrokerConnection extends Emitter<{ state: [ConnState] }> {
  readonly client: MqttClient;
  state: ConnState;
  private attempt = 0;

  constructor(o: BrokerOptions) {
    super();
    const baseMs = o.baseMs ?? 1000;
    this.state = { kind: 'connecting', url: o.url };
    this.client = mqtt.connect(o.url, {
      clientId: o.clientId,
      keepalive: 20,
      connectTimeout: 8000,
      reconnectPeriod: backoffMs(1, baseMs),
      clean: true,
      // 3.1.1 on purpose: the listen-only probe (channel.ts) needs the broker to echo our own audio,
      // which an MQTT 5 session subscribed "no local" (as the gateway's are) would not.
      protocolVersion: 4,
      ...(o.username ? { username: o.username, password: o.password ?? '' } : {}),
      // A stale over replayed after an outage would be worse than lost audio.
      queueQoSZero: false,
      // MQTT.js otherwise builds a cache of 65,536 small buffers (~7 MB) that a phone keeps for good.
      writeCache: false,
      // An empty retained payload clears our presence when the connection dies.
      will: { topic: o.will.topic, payload: '', qos: o.will.qos, retain: o.will.retain },
    });
    let lastError = 'connection lost';
    this.client.on('connect', () => {
      this.attempt = 0;
      this.set({ kind: 'connected', url: o.url });
    });
    this.client.on('error', (err) => {
      lastError = err.message || 'connection error';
      // The same credentials would be refused again every few seconds, forever: stop and say so.
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number' && LOGIN_REFUSED.has(code) && this.state.kind !== 'closed') {
        this.set({ kind: 'refused', url: o.url, reason: lastError });
        this.client.end(true);
      }
    });
    this.client.on('close', () => {
      if (this.state.kind === 'closed' || this.state.kind === 'refused') return;
      this.attempt++;
      const wait = backoffMs(this.attempt, baseMs);
      this.client.options.reconnectPeriod = wait;
      this.set({ kind: 'reconnecting', url: o.url, attempt: this.attempt, retryAt: Date.now() + wait, reason: lastError });
      lastError = 'connection lost';
    });
  }

  private set(s: ConnState): void {
    this.state = s;
    this.emit('state', s);
  }

  async close(): Promise<void> {
    this.set({ kind: 'closed' });
    await new Promise<void>((resolve) => this.client.end(false, {}, () => resolve()));
  }
}
