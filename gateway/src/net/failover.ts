/**
 * Broker failover: one MQTT.js client that, whenever its connection drops, goes through a list of
 * broker URLs in order (mqtt, mqtts, ws and wss mixed, a wss on 443 behind a path among them) with
 * a jittered back-off that grows after each full round, and stays on whichever broker answers
 * until that one fails.
 *
 * Why not MQTT.js's own `servers` option: it rotates host, port and protocol but not a WebSocket
 * path, keeps the TLS server name of the first host, and moves to the next server after every
 * reconnect even when the current one was fine. Instead we keep MQTT.js's reconnect machinery
 * (its timer, re-subscription, `offline`/`connect` events, which ChannelSession relies on) and
 * only rewrite the client's target in the 'reconnect' event, which MQTT.js emits synchronously
 * just before it builds the next stream from `client.options`.
 */
import type { MqttClient } from 'mqtt';

/** Back-off after `round` failed rounds (0 = the first retry): base·2^round, capped at 30 s, times 1..2 jitter. */
export function backoffMs(baseMs: number, round: number): number {
  return Math.round(Math.min(30000, baseMs * 2 ** Math.min(round, 5)) * (1 + Math.random()));
}

/** The pause before trying the next URL in the same round: short, a dead broker already cost its attempt. */
export function nextUrlMs(): number {
  return Math.round(50 + Math.random() * 100);
}

/**
 * The first retry after losing a broker that worked: soon enough that an over in progress
 * survives the switch (receivers end an over after floor.silenceMs, 1 s, of nothing), spread
 * enough that a restarted broker is not hit by every client in the same instant.
 */
export function firstRetryMs(): number {
  return Math.round(100 + Math.random() * 200);
}

/** Splits a list given as several values or comma lists ("a,b", "c") into URLs, blanks dropped. */
export function splitUrls(values: string | readonly string[]): string[] {
  return (typeof values === 'string' ? [values] : values)
    .flatMap((v) => v.split(','))
    .map((u) => u.trim())
    .filter((u) => u !== '');
}

/** The fields MQTT.js's stream builders read to know where to connect (connect/tcp, tls, ws). */
export function targetOf(url: string): { protocol: string; host: string; hostname: string; port: number | undefined; path: string | undefined } {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, '');
  const hostname = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    protocol,
    host: hostname,
    hostname,
    // Left out, each builder uses its protocol's default (1883, 8883, 80, 443).
    port: u.port ? Number(u.port) : undefined,
    path: protocol.startsWith('ws') ? u.pathname + u.search : undefined,
  };
}

/** Brokers that refused an MQTT 5 CONNECT, for the life of the process. */
const v3Only = new Set<string>();

/** The MQTT version to ask `url` for: 5 when wanted, unless that broker refused it before. */
export function protocolFor(url: string, mqtt5: boolean): 4 | 5 {
  return mqtt5 && !v3Only.has(url) ? 5 : 4;
}

/**
 * Whether `err` is a broker refusing MQTT 5 ("unacceptable protocol version": return code 1 from
 * a 3.1.1 broker, reason 0x84 from one that parses v5); if so, `url` is asked for 3.1.1 from now on.
 */
export function refusesV5(url: string, err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (code !== 1 && code !== 0x84) return false;
  v3Only.add(url);
  return true;
}

interface State {
  urls: readonly string[];
  /** Index of the broker we are connected to, or were last connected to. */
  active: number;
}

const states = new WeakMap<object, State>();

/** The URL of the broker this client is on (or was last on, while it reconnects); null for a client not made by connect(). */
export function brokerOf(client: object): string | null {
  const s = states.get(client);
  return s ? s.urls[s.active]! : null;
}

/** The broker URLs this client may use, in order of preference. */
export function brokersOf(client: object): readonly string[] {
  return states.get(client)?.urls ?? [];
}

/**
 * Makes a connected client follow the list from now on. `active` is the index of the broker it is
 * connected to. After a drop, the next attempt starts at the top of the list: every client of a
 * team has the same list, so preferring the first broker that answers keeps the team together.
 */
export function followBrokers(client: MqttClient, urls: readonly string[], active: number, reconnectMs: number, mqtt5 = false): void {
  const state: State = { urls, active };
  states.set(client, state);
  const servername = client.options.servername;
  let connected = true;
  let pos = active;
  let round = 0;
  let askAgain = false;
  // A broker first reached after a drop may be one that refuses MQTT 5: the same broker again, in 3.1.1.
  client.on('error', (err) => {
    if (client.options.protocolVersion === 5 && refusesV5(urls[pos]!, err)) askAgain = true;
  });
  // Prepended so it runs before MQTT.js's own 'close' handler, which reads reconnectPeriod to
  // schedule the next attempt: the delay must be chosen before, not after.
  client.prependListener('close', () => {
    if (askAgain) {
      askAgain = false;
      client.options.reconnectPeriod = nextUrlMs();
    } else if (connected) {
      connected = false;
      pos = 0;
      round = 0;
      client.options.reconnectPeriod = Math.min(firstRetryMs(), reconnectMs);
    } else if (pos + 1 < urls.length) {
      pos++;
      client.options.reconnectPeriod = nextUrlMs();
    } else {
      pos = 0;
      round++;
      client.options.reconnectPeriod = backoffMs(reconnectMs, round);
    }
  });
  client.on('reconnect', () => {
    const o = client.options as Record<string, unknown>;
    Object.assign(o, targetOf(urls[pos]!), { protocolVersion: protocolFor(urls[pos]!, mqtt5) });
    // The TLS builder fills in servername from the first host it saw; a new host needs its own.
    if (servername === undefined) delete o.servername;
  });
  client.on('connect', () => {
    connected = true;
    round = 0;
    state.active = pos;
  });
}
