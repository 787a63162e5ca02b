/**
 * Turns what a channel carries into overs to record (issue #19), holding no key: every field it
 * uses is one the broker sees too — the topic's sender, the audio header (stream, seq, flags,
 * times, epoch), and control payloads as opaque bytes on an encrypted channel. A talker's name is
 * read only where the channel is clear; on an encrypted one the sealed START is kept with the
 * over, for a member with the key to open.
 *
 * Everything here comes from the network, so every path is bounded and counted: overs open at
 * once, packets per over, streams remembered after they close, senders with a pending START.
 * Nothing throws past handle().
 */
import { Emitter } from '../../shared/core/emitter.js';
import { decodeHeader, Flag, PacketError, type PacketHeader } from '../../shared/channel/packet.js';
import type { ChannelTopics } from '../../shared/channel/topics.js';

/** What is known of an over, as the recorder keeps it (store.ts's OverRow adds what the database adds). */
export interface OverFields {
  channel: string;
  stream: string;
  /** The topic's sender: the only identity a keyless recorder can check. */
  sender: string;
  encrypted: boolean;
  keyEpoch: number;
  sampleRate: number;
  frameMs: number;
  framesPerPacket: number;
  /** The over's start on the sender's clock, from the first packet that arrived. */
  startedAt: number;
  /** This recorder's clock when the first packet arrived. */
  firstAt: number;
  lastAt: number;
  packets: number;
  bytes: number;
  /** The sender's name, from a clear START; null on an encrypted channel or without START. */
  name: string | null;
  /** The START / END control payloads exactly as carried (sealed on an encrypted channel). */
  start: Uint8Array | null;
  end: Uint8Array | null;
}

export interface OverInfo extends OverFields {
  /** seq of the packet flagged END, once seen. */
  endSeq: number | null;
}

export type CloseReason = 'end' | 'silence' | 'limit' | 'stop';

export interface AssemblerEvents {
  open: [over: OverInfo];
  packet: [over: OverInfo, seq: number, data: Uint8Array, at: number];
  /** A control payload attached to an over after it opened (START late, or END). */
  control: [over: OverInfo, kind: 'start' | 'end', data: Uint8Array];
  /** `complete`: the END packet arrived and every packet before it. */
  close: [over: OverInfo, complete: boolean, reason: CloseReason];
}

export interface AssemblerOptions {
  topics: ChannelTopics;
  now?: () => number;
  /** An over no packet has come for this long is closed (incomplete unless END came). */
  silenceMs?: number;
  /** Overs open at once on the channel (the floor allows one; a few overlap at hand-overs). */
  maxOpen?: number;
  /** Packets one over may have: 30 min at 25 packets/s by default, then it is closed. */
  maxPackets?: number;
}

const REMEMBER_CLOSED = 1024;
const MAX_PENDING_STARTS = 256;
/** A START is taken for the next over of its sender only if it came this recently. */
const START_WINDOW_MS = 5000;

interface Open {
  info: OverInfo;
  seen: Set<number>;
}

export class OverAssembler extends Emitter<AssemblerEvents> {
  readonly counters: Record<string, number> = {};
  private readonly open = new Map<string, Open>();
  /** Streams closed lately, and who owned them: stragglers and replays are dropped, not new overs. */
  private readonly closed = new Map<string, string>();
  /** Each sender's over closed last, for the END that follows its last packet. */
  private readonly justClosed = new Map<string, { info: OverInfo; at: number }>();
  /** The last control message of each sender with no open over: the START of its next over. */
  private readonly pending = new Map<string, { at: number; data: Uint8Array; stream: string | null }>();
  private readonly now: () => number;
  private readonly silenceMs: number;
  private readonly maxOpen: number;
  private readonly maxPackets: number;

  constructor(private readonly o: AssemblerOptions) {
    super();
    this.now = o.now ?? Date.now;
    this.silenceMs = o.silenceMs ?? 5000;
    this.maxOpen = o.maxOpen ?? 8;
    this.maxPackets = o.maxPackets ?? 45_000;
  }

  get openCount(): number {
    return this.open.size;
  }

  handle(topic: string, payload: Uint8Array): void {
    const t = this.o.topics.parse(topic);
    if (!t) return this.count('topic');
    if (t.kind === 'audio') this.audio(t.sender, payload);
    else if (t.kind === 'control') this.controlMessage(t.sender, payload);
  }

  /** Closes overs that fell silent; call it about once a second. */
  tick(): void {
    const now = this.now();
    for (const o of [...this.open.values()]) if (now - o.info.lastAt > this.silenceMs) this.close(o, 'silence');
  }

  /** Closes every open over (the recorder is stopping). */
  stop(): void {
    for (const o of [...this.open.values()]) this.close(o, 'stop');
  }

  private audio(sender: string, payload: Uint8Array): void {
    let h: PacketHeader;
    try {
      h = decodeHeader(payload);
    } catch (err) {
      return this.count(err instanceof PacketError ? `packet-${err.reason}` : 'packet');
    }
    const now = this.now();
    let o = this.open.get(h.streamId);
    if (o && o.info.sender !== sender) return this.count('stream-sender');
    if (!o) {
      const owner = this.closed.get(h.streamId);
      if (owner !== undefined) return this.count(owner === sender ? 'ended' : 'stream-sender');
      if (this.open.size >= this.maxOpen) return this.count('open-full');
      o = this.begin(sender, h, now);
    }
    if (h.seq >= this.maxPackets) return this.count('seq-range');
    if (o.seen.has(h.seq)) return this.count('duplicate');
    if (h.sampleRate !== o.info.sampleRate || h.frameMs !== o.info.frameMs || h.frameCount !== o.info.framesPerPacket || h.keyEpoch !== o.info.keyEpoch) return this.count('inconsistent');
    o.seen.add(h.seq);
    o.info.lastAt = now;
    o.info.packets++;
    o.info.bytes += payload.length;
    if (h.flags & Flag.END) o.info.endSeq = h.seq;
    this.emit('packet', o.info, h.seq, payload, now);
    if (o.info.endSeq !== null && o.seen.size === o.info.endSeq + 1) this.close(o, 'end');
    else if (o.info.packets >= this.maxPackets) this.close(o, 'limit');
  }

  private begin(sender: string, h: PacketHeader, now: number): Open {
    const encrypted = (h.flags & Flag.ENCRYPTED) !== 0;
    const packetMs = h.frameMs * h.frameCount;
    const info: OverInfo = {
      channel: this.o.topics.channel,
      stream: h.streamId,
      sender,
      encrypted,
      keyEpoch: h.keyEpoch,
      sampleRate: h.sampleRate,
      frameMs: h.frameMs,
      framesPerPacket: h.frameCount,
      startedAt: h.timestamp - Math.round(h.seq * packetMs),
      firstAt: now,
      lastAt: now,
      packets: 0,
      bytes: 0,
      name: null,
      start: null,
      end: null,
      endSeq: null,
    };
    // The sender's last control message is this over's START when it names this stream (clear)
    // or, sealed, when it came just before: a keyless recorder cannot look inside.
    const p = this.pending.get(sender);
    if (p && now - p.at <= START_WINDOW_MS && (p.stream === null || p.stream === h.streamId)) {
      this.pending.delete(sender);
      info.start = p.data;
      if (!encrypted) info.name = clearName(p.data);
    }
    const o = { info, seen: new Set<number>() };
    this.open.set(h.streamId, o);
    this.emit('open', info);
    return o;
  }

  private controlMessage(sender: string, payload: Uint8Array): void {
    if (payload.length === 0 || payload.length > 2048) return this.count('control-size');
    const clear = payload[0] === 0x7b; // '{': JSON; a sealed envelope starts with 0xE1
    const msg = clear ? clearControl(payload) : null;
    if (clear && !msg) return this.count('control');
    if (msg && msg.type !== 'start' && msg.type !== 'end') return; // notices are not overs
    const mine = [...this.open.values()].find((o) => o.info.sender === sender && (msg === null || msg.stream === o.info.stream));
    // START always comes before the audio, so a sealed message during an over is its END.
    if (mine && (msg?.type === 'end' || !msg)) {
      mine.info.end = payload;
      this.emit('control', mine.info, 'end', payload);
      return;
    }
    if (mine && msg?.type === 'start' && mine.info.start === null) {
      mine.info.start = payload;
      mine.info.name = msg.name;
      this.emit('control', mine.info, 'start', payload);
      return;
    }
    // END follows the last packet, so it usually finds its over just closed.
    const last = this.justClosed.get(sender);
    if (last && last.info.end === null && this.now() - last.at <= START_WINDOW_MS && (msg === null || (msg.type === 'end' && msg.stream === last.info.stream))) {
      last.info.end = payload;
      this.emit('control', last.info, 'end', payload);
      return;
    }
    if (msg?.type === 'end') return; // for an over never heard
    if (!this.pending.has(sender) && this.pending.size >= MAX_PENDING_STARTS) return this.count('pending-full');
    this.pending.delete(sender);
    this.pending.set(sender, { at: this.now(), data: payload, stream: msg?.stream ?? null });
  }

  private close(o: Open, reason: CloseReason): void {
    this.open.delete(o.info.stream);
    this.closed.set(o.info.stream, o.info.sender);
    if (this.closed.size > REMEMBER_CLOSED) this.closed.delete(this.closed.keys().next().value!);
    this.justClosed.delete(o.info.sender);
    this.justClosed.set(o.info.sender, { info: o.info, at: this.now() });
    if (this.justClosed.size > MAX_PENDING_STARTS) this.justClosed.delete(this.justClosed.keys().next().value!);
    const complete = o.info.endSeq !== null && o.seen.size === o.info.endSeq + 1;
    this.emit('close', o.info, complete, reason);
  }

  private count(reason: string): void {
    this.counters[reason] = (this.counters[reason] ?? 0) + 1;
  }
}

function clearControl(payload: Uint8Array): { type: string; stream: string | null; name: string | null } | null {
  try {
    const m = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload)) as Record<string, unknown>;
    if (typeof m !== 'object' || m === null || typeof m.type !== 'string') return null;
    const stream = typeof m.stream === 'string' && /^[0-9a-f]{16}$/.test(m.stream) ? m.stream : null;
    const name = typeof m.name === 'string' ? m.name.slice(0, 64) : null;
    return { type: m.type, stream, name };
  } catch {
    return null;
  }
}

function clearName(payload: Uint8Array): string | null {
  return clearControl(payload)?.name ?? null;
}
