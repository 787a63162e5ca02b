/**
 * An in-memory MQTT broker for unit tests of ChannelSession: clients implement the session's
 * PubSub seam, and what one publishes reaches every client subscribed to a matching filter (MQTT
 * wildcards `+` and `#`), in publish order, a microtask later, as a fresh Buffer per receiver (what
 * MQTT.js hands a session). Retained messages are kept (an empty payload clears one) and delivered
 * on subscribe; `nl` (MQTT 5 "no local") keeps a client's own messages from it on that filter.
 */
import { EventEmitter } from 'node:events';
import { ChannelSession, type PubSub, type SessionOptions } from '../../gateway/shared/channel/session.js';
import { type ControlMessage, type EndReason, encodeJson } from '../../gateway/shared/channel/control.js';
import { Codec, Flag, encodePacket } from '../../gateway/shared/channel/packet.js';
import type { ChannelTopics } from '../../gateway/shared/channel/topics.js';

/** Whether `topic` matches the MQTT subscription `filter`. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

interface Subscription {
  client: MemoryClient;
  filter: string;
  nl: boolean;
}

export class MemoryBroker {
  private subs: Subscription[] = [];
  private readonly retained = new Map<string, Uint8Array>();
  /** Messages published (for tests that count). */
  published = 0;

  client(): MemoryClient {
    return new MemoryClient(this);
  }

  subscribe(client: MemoryClient, filter: string, nl: boolean): void {
    this.subs = this.subs.filter((s) => !(s.client === client && s.filter === filter));
    this.subs.push({ client, filter, nl });
    const retained = [...this.retained].filter(([topic]) => topicMatches(filter, topic));
    queueMicrotask(() => {
      for (const [topic, payload] of retained) client.deliver(topic, payload);
    });
  }

  unsubscribe(client: MemoryClient, filter: string): void {
    this.subs = this.subs.filter((s) => !(s.client === client && s.filter === filter));
  }

  publish(from: MemoryClient, topic: string, payload: Uint8Array, retain: boolean): void {
    this.published++;
    if (retain) {
      if (payload.length === 0) this.retained.delete(topic);
      else this.retained.set(topic, payload.slice());
    }
    // One copy per client, however many of its filters match (unless every matching one is no-local).
    const to = new Set<MemoryClient>();
    for (const s of this.subs) if (topicMatches(s.filter, topic) && !(s.nl && s.client === from)) to.add(s.client);
    if (to.size === 0) return;
    const copy = payload.slice();
    queueMicrotask(() => {
      for (const c of to) c.deliver(topic, copy);
    });
  }
}

export class MemoryClient extends EventEmitter implements PubSub {
  connected = true;

  constructor(private readonly broker: MemoryBroker) {
    super();
  }

  /** Hands a message to this client's 'message' listeners as MQTT.js would (a Buffer of its own). */
  deliver(topic: string, payload: Uint8Array): void {
    if (this.connected) this.emit('message', topic, Buffer.from(payload));
  }

  override removeListener(event: string | symbol, fn: (...args: never[]) => void): this {
    return super.removeListener(event, fn as (...args: unknown[]) => void);
  }

  publish(topic: string, payload: Uint8Array | string, opts: { qos: 0 | 1; retain: boolean }, cb?: (err?: Error) => void): this {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    this.broker.publish(this, topic, bytes, opts.retain);
    if (cb) queueMicrotask(() => cb());
    return this;
  }

  subscribe(topic: string, opts: { qos: 0 | 1; nl?: boolean }, cb?: (err: Error | null) => void): this {
    // SUBACK first, then the retained messages (as a broker sends them).
    if (cb) queueMicrotask(() => cb(null));
    this.broker.subscribe(this, topic, opts.nl ?? false);
    return this;
  }

  unsubscribe(topic: string, cb?: (err?: Error) => void): this {
    this.broker.unsubscribe(this, topic);
    if (cb) queueMicrotask(() => cb());
    return this;
  }
}

/**
 * A session joined to `broker` as sender "rx" (a radio gateway's receive side), left at the end of
 * the test; `o` overrides any option.
 */
export async function joinReceiver(
  t: { teardown(fn: () => unknown): void },
  broker: MemoryBroker,
  o: Pick<SessionOptions, 'prefix' | 'channel' | 'createDecoder'> & Partial<SessionOptions>,
): Promise<ChannelSession> {
  const s = new ChannelSession(broker.client(), { sender: 'rx', name: 'Receiver', source: 'radio', silenceMs: 1000, ...o });
  await s.join();
  t.teardown(() => s.leave());
  return s;
}

/** A participant that speaks the wire protocol directly: what a hostile (or old, or odd) client can publish. */
export class Raw {
  readonly client: MemoryClient;
  constructor(
    broker: MemoryBroker,
    private readonly topics: ChannelTopics,
    readonly sender: string,
  ) {
    this.client = broker.client();
  }
  control(m: ControlMessage, as = this.sender): void {
    this.client.publish(this.topics.topic('control', as), encodeJson(m), { qos: 1, retain: false });
  }
  start(stream: string, o: { t: number; name: string; frameMs: number; fpp: number; priority?: number }): void {
    this.control({ v: 1, type: 'start', stream, t: o.t, name: o.name, source: 'cli', priority: o.priority ?? 0, sampleRate: 16000, frameMs: o.frameMs, framesPerPacket: o.fpp });
  }
  end(stream: string, packets: number, reason: EndReason = 'done'): void {
    this.control({ v: 1, type: 'end', stream, reason, packets });
  }
  audio(stream: string, seq: number, timestamp: number, frameMs: number, frames: readonly Uint8Array[], flags = 0): void {
    const p = encodePacket({ flags: flags | (seq === 0 ? Flag.START : 0), codec: Codec.OPUS, sampleRate: 16000, frameMs, streamId: stream, seq, timestamp, keyEpoch: 0 }, frames);
    this.client.publish(this.topics.topic('audio', this.sender), p, { qos: 0, retain: false });
  }
  presence(p: Record<string, unknown>, as = this.sender): void {
    this.client.publish(this.topics.topic('presence', as), new TextEncoder().encode(JSON.stringify(p)), { qos: 1, retain: true });
  }
  /**
   * A START, then packets paced in real time (each leaves when its audio has been captured), then
   * an END: an ordinary over. Resolves with the number of frames sent.
   */
  async over(stream: string, frames: readonly Uint8Array[], o: { frameMs: number; fpp: number; name: string; t?: number }): Promise<number> {
    const t0 = o.t ?? Date.now();
    this.start(stream, { t: t0, name: o.name, frameMs: o.frameMs, fpp: o.fpp });
    const packets = frames.length / o.fpp;
    const packetMs = o.frameMs * o.fpp;
    const mono = performance.now();
    for (let seq = 0; seq < packets; seq++) {
      const wait = mono + (seq + 1) * packetMs - performance.now();
      if (wait > 0) await new Promise<void>((r) => setTimeout(r, wait));
      this.audio(stream, seq, t0 + seq * packetMs, o.frameMs, frames.slice(seq * o.fpp, (seq + 1) * o.fpp), seq === packets - 1 ? Flag.END : 0);
    }
    this.end(stream, packets);
    return frames.length;
  }
}
