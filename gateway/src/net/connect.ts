/**
 * MQTT connections as talkbridge needs them: QoS 0 audio is never queued while offline (a stale
 * over replayed after an outage would reach the air late), reconnects back off with jitter, and the
 * Last Will clears our retained presence when we vanish.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { UserError } from '../core/errors.js';

export interface ConnectOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  reconnectMs?: number;
  will?: { topic: string; payload: Uint8Array; qos: 0 | 1; retain: boolean };
  /**
   * Keep trying until the broker answers, calling this after each failure (a gateway that boots
   * before its broker or network must wait, not exit). Without it the first failure is final.
   */
  onRetry?: (err: UserError, attempt: number, nextMs: number) => void;
}

export function clientOptions(o: ConnectOptions): IClientOptions {
  return {
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    keepalive: o.keepaliveSeconds ?? 30,
    connectTimeout: o.connectTimeoutMs ?? 10000,
    reconnectPeriod: o.reconnectMs ?? 1000,
    clean: true,
    protocolVersion: 4,
    queueQoSZero: false,
    will: o.will ? { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: o.will.qos, retain: o.will.retain } : undefined,
  };
}

/**
 * Connects and waits for the first CONNACK. An unreachable broker fails with one clear message
 * (the client keeps no retry loop running behind the error).
 */
export async function connect(o: ConnectOptions): Promise<MqttClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectOnce(o);
    } catch (err) {
      if (!o.onRetry || !(err instanceof UserError)) throw err;
      const next = Math.min(30000, (o.reconnectMs ?? 1000) * 2 ** Math.min(attempt - 1, 5)) * (1 + Math.random());
      o.onRetry(err, attempt, Math.round(next));
      await new Promise((r) => setTimeout(r, next));
    }
  }
}

async function connectOnce(o: ConnectOptions): Promise<MqttClient> {
  let client: MqttClient;
  try {
    client = mqtt.connect(o.url, { ...clientOptions(o), reconnectPeriod: 0 });
  } catch (err) {
    throw new UserError(`cannot connect to ${o.url}: ${(err as Error).message}`);
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`no answer within ${((o.connectTimeoutMs ?? 10000) / 1000).toFixed(0)} s`)), o.connectTimeoutMs ?? 10000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      client.removeAllListeners();
      // MQTT.js may still fire its own CONNACK timer on the abandoned client: with no 'error'
      // listener that would be an uncaught exception, minutes after we moved on.
      client.on('error', () => {});
      client.end(true);
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ECONNREFUSED' ? 'connection refused (is the broker running?)' : code === 'ENOTFOUND' ? 'host not found' : err.message;
      reject(new UserError(`cannot connect to broker ${o.url}: ${why}`));
    };
    client.once('connect', () => {
      clearTimeout(timer);
      client.removeListener('error', fail);
      client.removeListener('close', onClose);
      resolve();
    });
    const onClose = () => fail(new Error('connection closed by the broker'));
    client.once('error', fail);
    client.once('close', onClose);
  });
  // From now on keep reconnecting with a jittered back-off (1×..2× the period, growing to 30 s).
  client.options.reconnectPeriod = o.reconnectMs ?? 1000;
  let attempt = 0;
  client.on('connect', () => (attempt = 0));
  client.on('close', () => {
    attempt++;
    const base = Math.min(30000, (o.reconnectMs ?? 1000) * 2 ** Math.min(attempt - 1, 5));
    client.options.reconnectPeriod = Math.round(base * (1 + Math.random()));
  });
  client.on('error', () => {}); // reported through 'close'/'offline'; an unhandled 'error' would kill the process
  return client;
}

/** Ends the connection politely, or by force after a second (a dead broker never answers). */
export async function disconnect(client: MqttClient): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => client.end(true, {}, () => resolve()), 1000);
    client.end(false, {}, () => (clearTimeout(t), resolve()));
  });
}
