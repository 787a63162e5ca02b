/**
 * MQTT connections as talkbridge needs them: QoS 0 audio is never queued while offline (a stale
 * over replayed after an outage would reach the air late), reconnects back off with jitter, and the
 * Last Will clears our retained presence when we vanish.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
// The client alone, not MQTT.js's URL front end (which loads every transport): net/transport.ts.
// A CommonJS module: its default import is module.exports, whose `default` is the class.
import clientModule from 'mqtt/lib/client';
import { UserError } from '../core/errors.js';
import { type TlsOptions, describeTlsError } from './credentials.js';
import { backoffMs, followBrokers, protocolFor, refusesV5, targetOf } from './failover.js';
import { buildStream, prepareTransports } from './transport.js';

const MqttClientImpl = clientModule.default;

export interface ConnectOptions {
  /** One broker, or several tried in order (net/failover.ts). */
  url: string | readonly string[];
  clientId: string;
  username?: string;
  password?: string;
  /** For mqtts:// and wss:// (file contents, net/credentials.ts). */
  tls?: TlsOptions;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  reconnectMs?: number;
  will?: { topic: string; payload: Uint8Array; qos: 0 | 1; retain: boolean };
  /**
   * Keep trying until the broker answers, calling this after each failure (a gateway that boots
   * before its broker or network must wait, not exit). Without it the first failure is final.
   */
  onRetry?: (err: UserError, attempt: number, nextMs: number, nextUrl: string) => void;
  /** Gives up waiting (a daemon stopping while its uplink is still looking for a broker). */
  signal?: AbortSignal;
  /**
   * Speak MQTT 5 to brokers that accept it, 3.1.1 to those that refuse it (net/failover.ts
   * remembers which). A channel wants 5 for its "no local" subscriptions: the broker then does not
   * send a client's own packets back to it, half of the traffic a talking gateway receives.
   */
  mqtt5?: boolean;
}

export function clientOptions(o: ConnectOptions): IClientOptions {
  return {
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    keepalive: o.keepaliveSeconds ?? 30,
    connectTimeout: o.connectTimeoutMs ?? 10000,
    reconnectPeriod: o.reconnectMs ?? 1000,
    // MQTT.js stops reconnecting for good after a refused CONNACK unless told otherwise: one broker
    // of the list refusing us (or saying "server unavailable") must not end the failover.
    reconnectOnConnackError: true,
    clean: true,
    protocolVersion: 4,
    queueQoSZero: false,
    // MQTT.js's default pre-builds 65,536 two-byte Buffers (mqtt-packet's number cache): ~7 MB of
    // heap for ever, to save one tiny allocation per packet header.
    writeCache: false,
    // MQTT.js traces every packet through the `debug` module (~1 % of a sending gateway's CPU even
    // when switched off); DEBUG=mqttjs* still turns its trace on.
    ...(/mqttjs/.test(process.env.DEBUG ?? '') ? {} : { log: () => {} }),
    will: o.will ? { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: o.will.qos, retain: o.will.retain } : undefined,
    ...(o.tls ? tlsClientOptions(o.tls) : {}),
  };
}

/** MQTT.js hands these to tls.connect (mqtts) and to ws (wss); a `ca` replaces Node's default trust store. */
function tlsClientOptions(t: TlsOptions): IClientOptions {
  return {
    rejectUnauthorized: t.rejectUnauthorized ?? true,
    ...(t.ca ? { ca: t.ca } : {}),
    ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}),
    // ws takes the name to verify from its own options, not from the ones MQTT.js copies over.
    ...(t.servername ? { servername: t.servername, wsOptions: { servername: t.servername } as IClientOptions['wsOptions'] } : {}),
  };
}

/** One line for why a connection attempt failed: TLS and login problems name the setting to check. */
export function describeConnectError(err: Error, url = ''): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'connection refused (is the broker running?)';
  if (code === 'ENOTFOUND') return 'host not found';
  const tls = describeTlsError(err as NodeJS.ErrnoException);
  if (tls) return tls;
  // A plain MQTT listener drops a TLS hello as a malformed packet: the handshake just ends.
  if (/^(mqtts|wss):/.test(url) && (code === 'ECONNRESET' || /before secure TLS connection/.test(err.message)))
    return 'the connection closed during the TLS handshake — does this port speak TLS (mqtts://, wss://), or plain mqtt://?';
  // MQTT.js puts the CONNACK return code in err.code (MQTT 3.1.1: 4 bad user name or password,
  // 5 not authorized; MQTT 5: 0x86 and 0x87).
  if ((code as unknown) === 4 || (code as unknown) === 0x86 || /bad user ?name or password/i.test(err.message))
    return 'bad username or password (broker.username/passwordFile, --username/--password-file)';
  if ((code as unknown) === 5 || (code as unknown) === 0x87 || /not authori[sz]ed/i.test(err.message))
    return 'not authorized — the broker wants a username and password (or a client certificate) it accepts';
  return err.message;
}

/**
 * Connects and waits for the first CONNACK, trying the URLs in order. An unreachable broker fails
 * with one clear message (the client keeps no retry loop running behind the error). Once
 * connected, the client follows the list on every reconnect (followBrokers).
 */
export async function connect(o: ConnectOptions): Promise<MqttClient> {
  const urls = typeof o.url === 'string' ? [o.url] : [...o.url];
  if (urls.length === 0) throw new UserError('no broker URL given');
  try {
    await prepareTransports(urls);
  } catch (err) {
    throw new UserError(`cannot connect to ${urls.join(', ')}: ${(err as Error).message}`);
  }
  const reconnectMs = o.reconnectMs ?? 1000;
  const failures: string[] = [];
  for (let round = 0, attempt = 1; ; round++) {
    for (let i = 0; i < urls.length; i++, attempt++) {
      if (o.signal?.aborted) throw new UserError('connecting was cancelled');
      try {
        const client = await connectOnce(o, urls[i]!);
        followBrokers(client, urls, i, reconnectMs, o.mqtt5 ?? false);
        return client;
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        if (!o.onRetry) {
          failures.push(err.message);
          if (i + 1 < urls.length) continue;
          throw failures.length === 1 ? err : new UserError(`cannot connect to any of ${urls.length} brokers: ${failures.map((f) => f.replace(/^cannot connect to broker /, '')).join('; ')}`);
        }
        // The next broker in the list at once; after a whole round, a growing jittered pause.
        const last = i + 1 === urls.length;
        const next = last ? backoffMs(reconnectMs, round) : 0;
        o.onRetry(err, attempt, next, urls[last ? 0 : i + 1]!);
        if (next) await sleep(next, o.signal);
      }
    }
  }
}

async function connectOnce(o: ConnectOptions, url: string): Promise<MqttClient> {
  const version = protocolFor(url, o.mqtt5 ?? false);
  let client: MqttClient;
  try {
    const u = new URL(url);
    // user:password@ in the URL, as MQTT.js's URL front end takes it, unless given apart.
    const auth = u.username && o.username === undefined ? { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) } : {};
    client = new MqttClientImpl(buildStream, { ...clientOptions(o), ...auth, ...targetOf(url), protocolVersion: version, reconnectPeriod: 0 } as IClientOptions);
  } catch (err) {
    throw new UserError(`cannot connect to ${url}: ${(err as Error).message}`);
  }
  let refused = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no answer within ${((o.connectTimeoutMs ?? 10000) / 1000).toFixed(0)} s`)), o.connectTimeoutMs ?? 10000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        // A 3.1.1-only broker (aedes, an old Mosquitto) refuses a v5 CONNECT: ask again in 3.1.1.
        refused = version === 5 && refusesV5(url, err);
        o.signal?.removeEventListener('abort', onAbort);
        client.removeAllListeners();
        // MQTT.js may still fire its own CONNACK timer on the abandoned client: with no 'error'
        // listener that would be an uncaught exception, minutes after we moved on.
        client.on('error', () => {});
        client.end(true);
        const why = describeConnectError(err, url);
        reject(new UserError(`cannot connect to broker ${url}: ${why}`));
      };
      client.once('connect', () => {
        clearTimeout(timer);
        client.removeListener('error', fail);
        client.removeListener('close', onClose);
        resolve();
      });
      const onClose = () => fail(new Error('connection closed by the broker'));
      const onAbort = () => fail(new Error('cancelled'));
      client.once('error', fail);
      client.once('close', onClose);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      client.once('connect', () => o.signal?.removeEventListener('abort', onAbort));
    });
  } catch (err) {
    if (refused) return connectOnce(o, url);
    throw err;
  }
  // From now on MQTT.js reconnects by itself; followBrokers picks the target and the delay.
  client.options.reconnectPeriod = o.reconnectMs ?? 1000;
  client.on('error', () => {}); // reported through 'close'/'offline'; an unhandled 'error' would kill the process
  return client;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => (clearTimeout(t), signal?.removeEventListener('abort', done), resolve());
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Ends the connection politely, or by force after a second (a dead broker never answers). */
export async function disconnect(client: MqttClient): Promise<void> {
  await new Promise<void>((resolve) => {
    // Not connected (the broker lost, a retry pending): nothing queued can go out now, so there is
    // nothing to wait for, and a lost broker must not hold a stop (issue #17: exit within 1 s).
    if (!client.connected) return void client.end(true, {}, () => resolve());
    const t = setTimeout(() => client.end(true, {}, () => resolve()), 1000);
    client.end(false, {}, () => (clearTimeout(t), resolve()));
  });
}
