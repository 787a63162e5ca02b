/**
 * The history recorder (issue #19): hears a channel through an MQTT connection it shares with the
 * channel's session — what arrives ('message') and what this gateway itself sends ('packetsend':
 * with MQTT 5 "no local" the broker never echoes a gateway's own radio overs back) — and writes
 * every over, exactly as carried, into the store. It holds no key.
 *
 * A failing store never reaches talk: the store turns errors into a state, and this side only
 * counts. Writes are committed once a second and at each over's end (store.ts says why), and
 * retention runs once a minute.
 */
import type { MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import { ChannelTopics } from '../../shared/channel/topics.js';
import { OverAssembler, type OverInfo } from './overs.js';
import type { HistoryStore } from './store.js';

export interface RecorderOptions {
  store: HistoryStore;
  prefix: string;
  maxAgeMs: number;
  maxBytes: number;
  now?: () => number;
}

export interface RecorderStatus {
  state: HistoryStore['state'];
  problem: string | null;
  channels: string[];
  openOvers: number;
  storedBytes: number;
  counters: HistoryStore['counters'];
  /** What the channels' assemblers refused, by reason. */
  refused: Record<string, number>;
}

export class Recorder {
  private readonly assemblers = new Map<string, OverAssembler>();
  private readonly ids = new WeakMap<OverInfo, number | null>();
  private readonly detach: Array<() => void> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;

  constructor(private readonly o: RecorderOptions) {
    this.now = o.now ?? Date.now;
    this.timers.push(setInterval(() => this.tick(), 1000).unref());
    this.timers.push(setInterval(() => this.enforce(), 60_000).unref());
    this.enforce();
  }

  /** Records `channel` as heard on `client` (already subscribed to the channel by its session). */
  attach(client: MqttClient, channel: string): void {
    const topics = new ChannelTopics(this.o.prefix, channel);
    const a = new OverAssembler({ topics, now: this.now });
    this.assemblers.set(topics.channel, a);
    a.on('open', (info) => {
      this.ids.set(info, this.o.store.addOver({ ...info }));
    });
    a.on('packet', (info, seq, data, at) => {
      const id = this.ids.get(info);
      if (id != null) this.o.store.addPacket(id, seq, at, data);
      else this.o.store.counters.dropped++;
    });
    a.on('control', (info, kind, data) => {
      const id = this.ids.get(info);
      if (id == null) return;
      if (kind === 'start') this.o.store.setStart(id, data, info.name);
      else this.o.store.setEnd(id, data);
    });
    a.on('close', (info, complete, reason) => {
      const id = this.ids.get(info);
      if (id != null) this.o.store.closeOver(id, complete, reason);
      this.o.store.flush();
    });
    const base = `${topics.base}/`;
    const incoming = (topic: string, payload: Buffer) => {
      if (topic.startsWith(base)) a.handle(topic, payload);
    };
    const outgoing = (p: Packet) => {
      if (p.cmd === 'publish' && typeof p.topic === 'string' && p.topic.startsWith(base) && p.payload && typeof p.payload !== 'string') a.handle(p.topic, p.payload);
    };
    client.on('message', incoming);
    client.on('packetsend', outgoing);
    this.detach.push(() => {
      client.removeListener('message', incoming);
      client.removeListener('packetsend', outgoing);
    });
  }

  status(): RecorderStatus {
    const refused: Record<string, number> = {};
    let openOvers = 0;
    for (const a of this.assemblers.values()) {
      openOvers += a.openCount;
      for (const [k, v] of Object.entries(a.counters)) refused[k] = (refused[k] ?? 0) + v;
    }
    const s = this.o.store;
    return { state: s.state, problem: s.problem, channels: [...this.assemblers.keys()], openOvers, storedBytes: s.bytes, counters: { ...s.counters }, refused };
  }

  /** Closes every open over (as 'stop', incomplete unless its END came) and stops the timers. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    for (const d of this.detach) d();
    for (const a of this.assemblers.values()) a.stop();
    this.o.store.flush();
  }

  private tick(): void {
    for (const a of this.assemblers.values()) a.tick();
    this.o.store.flush();
  }

  private enforce(): void {
    this.o.store.retry();
    this.o.store.enforce({ now: this.now(), maxAgeMs: this.o.maxAgeMs, maxBytes: this.o.maxBytes });
  }
}
