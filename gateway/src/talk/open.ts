/** Connects to a broker and joins one talk channel: the common start of send, listen and the daemon. */
import type { MqttClient } from 'mqtt';
import { ChannelSession, type SessionOptions } from '../../shared/channel/session.js';
import { loginSender, makeSenderId } from '../../shared/channel/topics.js';
import type { Source } from '../../shared/channel/control.js';
import type { ChannelCrypto } from '../../shared/crypto/channel-crypto.js';
import { decoderFactory } from '../codec/opus-node.js';
import { type ConnectOptions, connect, disconnect } from '../net/connect.js';

export interface OpenOptions {
  /** One broker, or several tried in order (net/failover.ts). */
  url: string | readonly string[];
  /**
   * Everything else about reaching the broker (credentials, TLS, time-outs, retry); the channel
   * adds its own client id and Last Will.
   */
  connection?: Partial<Omit<ConnectOptions, 'clientId' | 'will' | 'url'>>;
  prefix: string;
  channel: string;
  name: string;
  source: Source;
  /**
   * Fixed sender id (a gateway's configured id). Default: the broker username when there is one
   * (a broker with talkbridge ACLs lets a user publish only as itself: one login per device),
   * otherwise name + random suffix.
   */
  sender?: string;
  silenceMs: number;
  jitter?: SessionOptions['jitter'];
  decodeRate?: SessionOptions['decodeRate'];
  lateAfterMs?: SessionOptions['lateAfterMs'];
  playAheadMs?: SessionOptions['playAheadMs'];
  concealLateMs?: SessionOptions['concealLateMs'];
  /** The channel's keys (encrypted channel), or none (clear). */
  crypto?: ChannelCrypto | null;
  onRetry?: ConnectOptions['onRetry'];
}

export interface OpenChannel {
  client: MqttClient;
  session: ChannelSession;
  close(): Promise<void>;
}

export { SOFTWARE } from '../core/version.js';
import { SOFTWARE } from '../core/version.js';

export async function openChannel(o: OpenOptions): Promise<OpenChannel> {
  const createDecoder = await decoderFactory();
  const login = o.sender === undefined ? loginSender(o.connection?.username) : null;
  const fromLogin = login !== null;
  const sender = o.sender ?? login ?? makeSenderId(o.name);
  const client = await connect({
    ...o.connection,
    url: o.url,
    // One connection per channel (each has its own Last Will), so the client id names both. A
    // login used by a listener and a sender at once must not make them kick each other off.
    clientId: (fromLogin ? `tb-${makeSenderId('').slice(-8)}-${sender}-${o.channel}` : `tb-${sender}-${o.channel}`).slice(0, 64),
    onRetry: o.onRetry,
    will: ChannelSession.willFor(o.prefix, o.channel, sender),
    mqtt5: o.connection?.mqtt5 ?? true,
  });
  const session = new ChannelSession(client, {
    prefix: o.prefix,
    channel: o.channel,
    sender,
    name: o.name,
    source: o.source,
    silenceMs: o.silenceMs,
    jitter: o.jitter,
    ...(o.decodeRate ? { decodeRate: o.decodeRate } : {}),
    ...(o.lateAfterMs ? { lateAfterMs: o.lateAfterMs } : {}),
    ...(o.playAheadMs ? { playAheadMs: o.playAheadMs, concealLateMs: o.concealLateMs ?? 0 } : {}),
    software: SOFTWARE,
    crypto: o.crypto ?? undefined,
    createDecoder,
  });
  try {
    await session.join();
  } catch (err) {
    await disconnect(client);
    throw err;
  }
  return {
    client,
    session,
    async close() {
      await session.leave();
      await disconnect(client);
    },
  };
}
