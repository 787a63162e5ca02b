/**
 * The genuine talker: real speech, encoded with the project's Opus encoder and sent by the
 * project's own session and send code (ChannelSession.talk + sendPcm, real-time pacing, the
 * project's connection code), sealed on the encrypted channel.
 *
 * It is deaf on purpose. A real talker listens before talking and would refuse to start while a
 * flood holds the floor; this one measures the daemon, so it always sends, and it does not spend
 * the harness's CPU receiving the flood. What it records — when the START went out, when the first
 * and last packets did, and the over's stream id — is what the daemon's keyings are judged against.
 */
import type { MqttClient } from 'mqtt';
import { ChannelSession, type PubSub } from '../../gateway/shared/channel/session.js';
import { connect, disconnect } from '../../gateway/src/net/connect.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { decoderFactory } from '../../gateway/src/codec/opus-node.js';
import { createChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import type { Pcm } from '../../gateway/src/audio/wav.js';
import { sendPcm } from '../../gateway/src/talk/send.js';

export interface GenuineOver {
  label: string;
  channel: string;
  sender: string;
  name: string;
  stream: string;
  /** Wall clock (ms) when the START was handed to the connection. */
  startAt: number;
  firstPacketAt: number;
  lastPacketAt: number;
  packets: number;
  status: string;
  /** Sent where the daemon cannot hear it (held back by a hostile broker, released later). */
  withheld?: boolean;
}

/** A PubSub that publishes but hears nothing (see the file comment). */
function deaf(client: MqttClient): PubSub {
  return {
    get connected() {
      return client.connected;
    },
    publish: (topic, payload, opts, cb) => client.publish(topic, payload as Buffer, opts, cb),
    subscribe: (_topic, _opts, cb) => cb?.(null),
    unsubscribe: (_topic, cb) => cb?.(),
    on: ((event: string, fn: () => void) => (event === 'connect' ? client.on('connect', fn) : undefined)) as PubSub['on'],
    removeListener: (event, fn) => client.removeListener(event as 'connect', fn as never),
  };
}

export class GenuineTalker {
  private client: MqttClient | null = null;
  private session: ChannelSession | null = null;

  constructor(
    readonly o: {
      url: string;
      prefix: string;
      channel: string;
      key?: string;
      sender: string;
      username?: string;
      password?: string;
    },
  ) {}

  async open(): Promise<void> {
    const crypto = this.o.key ? await createChannelCrypto({ channel: this.o.channel, keys: [this.o.key] }) : null;
    this.client = await connect({
      url: this.o.url,
      clientId: `fz-${this.o.sender}-${this.o.channel}-${process.pid}`.slice(0, 64),
      username: this.o.username,
      password: this.o.password,
      reconnectMs: 500,
      will: ChannelSession.willFor(this.o.prefix, this.o.channel, this.o.sender),
      onRetry: () => undefined,
    });
    this.session = new ChannelSession(deaf(this.client), {
      prefix: this.o.prefix,
      channel: this.o.channel,
      sender: this.o.sender,
      name: this.o.sender,
      source: 'cli',
      silenceMs: 1000,
      createDecoder: await decoderFactory(),
      crypto: crypto ?? undefined,
      software: 'talkbridge-fuzz',
    });
    await this.session.join();
  }

  /** One over of `pcm`, paced in real time. The display name is per over so logs can tell them apart. */
  async talk(label: string, pcm: Pcm, onStart?: (over: GenuineOver) => void): Promise<GenuineOver> {
    const s = this.session!;
    (s.opts as { name: string }).name = label;
    const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 });
    const over: GenuineOver = { label, channel: this.o.channel, sender: this.o.sender, name: label, stream: '', startAt: Date.now(), firstPacketAt: 0, lastPacketAt: 0, packets: 0, status: 'sending' };
    const off = s.on('floor', (h) => {
      if (h?.self && !over.stream) {
        over.stream = h.stream;
        onStart?.(over);
      }
    });
    try {
      over.startAt = Date.now();
      const r = await sendPcm(s, enc, pcm, {
        framesPerPacket: 2,
        frameMs: 20,
        fast: false,
        onPacket: (seq) => {
          const now = Date.now();
          if (seq === 0) over.firstPacketAt = now;
          over.lastPacketAt = now;
          over.packets++;
        },
      });
      over.status = r.status;
    } catch (err) {
      over.status = `error: ${(err as Error).message}`;
    } finally {
      off();
      enc.close();
    }
    return over;
  }

  async close(): Promise<void> {
    try {
      await this.session?.leave();
    } catch {
      /* the broker may be gone */
    }
    if (this.client) await disconnect(this.client).catch(() => undefined);
  }
}
