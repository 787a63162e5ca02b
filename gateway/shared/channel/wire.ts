/**
 * A channel's wire: what a session publishes (clear, or sealed and still in the order it was made)
 * and, on an encrypted channel, what it receives (opened one at a time in arrival order, behind a
 * bounded queue). The session above it deals only in clear messages and packets.
 */
import { type ControlMessage, encodeJson, parseControl } from './control.js';
import { type AudioPacket, HEADER_BYTES, PacketError, decodePacket, encodePacket } from './packet.js';
import type { Sealer } from './sealer.js';
import type { ChannelTopics, TopicKind } from './topics.js';
import type { Clock, PubSub, Wire } from './types.js';

/**
 * Encrypted input waiting to be opened, by count and bytes. A genuine over is 25 packets a second
 * and each opens in well under a millisecond, so a queue this deep is a flood: what does not fit
 * is dropped (counted as `overload`) instead of growing memory and delaying everything behind it.
 */
const INBOX_MAX_ITEMS = 256;
const INBOX_MAX_BYTES = 512 * 1024;
const INBOX_RESERVE = 64;

/** Counts a dropped input by reason (the session's counters and `dropped` event). */
export type Count = (reason: string, detail?: string) => void;

/** The packet, or null when it is malformed (counted by reason). */
export function decodeOrCount(payload: Uint8Array, count: Count): AudioPacket | null {
  try {
    return decodePacket(payload);
  } catch (err) {
    count(err instanceof PacketError ? `packet-${err.reason}` : 'packet', (err as Error).message);
    return null;
  }
}

/** The sending half: the Wire an outgoing over writes to, plus presence. */
export class Publisher implements Wire {
  /** Sealing is asynchronous; publishing stays in the order messages were made. */
  private outbox: Promise<void> = Promise.resolve();

  constructor(
    private readonly mqtt: PubSub,
    private readonly topics: ChannelTopics,
    private readonly clock: Clock,
    private readonly crypto: Sealer | null,
    private readonly count: Count,
  ) {}

  /** Settles once everything handed over so far has been published (or failed to seal). */
  get drained(): Promise<void> {
    return this.outbox;
  }

  control(sender: string, m: ControlMessage): void {
    this.message('control', sender, encodeJson(m));
  }

  audio(sender: string, header: Parameters<Wire['audio']>[1], frames: readonly Uint8Array[]): void {
    const topic = this.topics.topic('audio', sender);
    if (!this.crypto) {
      this.mqtt.publish(topic, encodePacket({ ...header, keyEpoch: 0 }, frames), { qos: 0, retain: false });
      return;
    }
    const c = this.crypto;
    this.sealed(() => c.sealAudio(sender, header, frames, this.clock.wall()), topic, 0);
  }

  message(kind: 'control' | 'presence', sender: string, json: Uint8Array): void {
    const topic = this.topics.topic(kind, sender);
    const retain = kind === 'presence';
    if (!this.crypto) {
      this.mqtt.publish(topic, json, { qos: 1, retain });
      return;
    }
    const c = this.crypto;
    this.sealed(() => c.sealMessage(kind, sender, json, this.clock.wall()), topic, 1, retain);
  }

  private sealed(seal: () => Promise<Uint8Array>, topic: string, qos: 0 | 1, retain = false): void {
    const sealing = seal();
    this.outbox = this.outbox.then(async () => {
      try {
        this.mqtt.publish(topic, await sealing, { qos, retain });
      } catch (err) {
        this.count('seal', (err as Error).message);
      }
    });
  }
}

/** Where opened input goes: the same handlers clear input reaches. */
export interface Opened {
  /** False once the session left: what is still queued is dropped unopened. */
  live(): boolean;
  presence(sender: string, json: Uint8Array): void;
  control(sender: string, m: ControlMessage): void;
  audio(sender: string, p: AudioPacket): void;
}

/**
 * The receiving half on an encrypted channel: everything authenticated, checked for replay, then
 * handed on as clear input, in arrival order, one at a time. What can be refused without WebCrypto
 * is refused on arrival, before it costs a copy and a place in the queue; the queue itself is
 * bounded, so a flood of garbage costs bounded memory and cannot push a genuine over late.
 */
export class SecureInbox {
  private queue: Promise<void> = Promise.resolve();
  private items = 0;
  private bytes = 0;

  constructor(
    private readonly crypto: Sealer,
    private readonly clock: Clock,
    private readonly count: Count,
    private readonly to: Opened,
  ) {}

  receive(kind: TopicKind, sender: string, payload: Uint8Array): void {
    const c = this.crypto;
    const full = this.items >= INBOX_MAX_ITEMS || this.bytes + payload.length > INBOX_MAX_BYTES;
    // When garbage fills the queue, known members keep a lane of their own: control and presence
    // from senders that authenticated before (a START lost here would cut the over's start), and
    // audio of overs whose START authenticated.
    const reserved = this.items < INBOX_MAX_ITEMS + INBOX_RESERVE;
    if (full && kind !== 'audio' && !(reserved && c.isTrusted(sender))) return this.count('overload', `${kind} from ${sender}`);
    // A real copy (Buffer#slice would only be a view): the queued work runs after this handler returns.
    let data: Uint8Array;
    let packet: AudioPacket | null = null;
    const now = this.clock.wall();
    if (kind === 'audio') {
      const p = decodeOrCount(payload, this.count);
      if (!p) return;
      const bad = c.precheckAudio(p, now);
      if (bad) return this.count(bad.reason, bad.detail);
      // (Its START may itself still wait in the queue: a member's audio is admitted on the sender.)
      if (full && !(reserved && (c.isTrusted(sender) || c.replay.announced(sender, p.streamId)))) return this.count('overload', `audio from ${sender}`);
      // The header parsed once: the queued packet points into the copy (an encrypted one has no clear frames).
      data = new Uint8Array(payload);
      packet = { ...p, headerBytes: data.subarray(0, HEADER_BYTES), body: data.subarray(HEADER_BYTES) };
    } else {
      // Empty is a cleared presence (a Last Will); anything else must be a sealed envelope.
      const bad = payload.length === 0 && kind === 'presence' ? null : c.precheckMessage(kind, payload, now);
      if (bad) return this.count(bad.reason, bad.detail);
      data = new Uint8Array(payload);
    }
    this.items++;
    this.bytes += data.length;
    this.queue = this.queue
      .then(() => {
        this.items--;
        this.bytes -= data.length;
        return this.open(kind, sender, data, packet);
      })
      .catch((err) => this.count('internal', (err as Error).message));
  }

  private async open(kind: TopicKind, sender: string, payload: Uint8Array, packet: AudioPacket | null): Promise<void> {
    if (!this.to.live()) return;
    const c = this.crypto;
    const now = this.clock.wall();
    if (kind === 'presence') {
      // An empty retained message is how a Last Will clears presence; it carries nothing to protect.
      if (payload.length === 0) return this.to.presence(sender, payload);
      const r = await c.openMessage('presence', sender, payload, now);
      if (!r.ok) return this.count(r.reason, r.detail);
      if (r.value.length === 0) return this.count('presence', 'empty inside the envelope');
      return this.to.presence(sender, r.value);
    }
    if (kind === 'control') {
      const r = await c.openMessage('control', sender, payload, now);
      if (!r.ok) return this.count(r.reason, r.detail);
      const m = parseControl(r.value);
      if (!m.ok) return this.count('control', m.reason);
      if (m.value.type === 'start') {
        const v = c.replay.overStart(sender, m.value.stream, m.value.t, now);
        if (v) return this.count(v, `start of ${m.value.stream} from ${sender}`);
      }
      return this.to.control(sender, m.value);
    }
    const p = packet!;
    const r = await c.openAudio(sender, p, now);
    if (!r.ok) return this.count(r.reason, r.detail);
    p.frames = r.value;
    this.to.audio(sender, p);
  }
}
