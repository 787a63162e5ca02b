/**
 * One participant on one talk channel: the protocol engine shared by the gateway, the CLI and the
 * browser client. It owns floor tracking, the receive side (a jitter buffer per over, playout of
 * the floor holder through a FrameDecoder) and the send side (outgoing overs that stop themselves
 * when they lose the floor). It knows nothing of WAV files, sound cards or radios; those feed it
 * encoded frames and consume decoded PCM.
 */
import { type FrameDecoder, frameProblem } from '../codec/codec.js';
import { Emitter } from '../core/emitter.js';
import { type ControlMessage, type EndReason, PRESENCE_REFRESH_MS, PRESENCE_STALE_MS, type Presence, type Source, type StartMessage, encodeJson, parseControl, parsePresence } from './control.js';
import { type Claim, Floor, type FloorChange } from './floor.js';
import { JITTER_DEFAULTS, JitterBuffer, JitterEstimator, type JitterOptions } from './jitter.js';
import { type AudioPacket, Codec, Flag, HEADER_BYTES, PacketError, decodePacket, encodePacket, newStreamId, packetMs } from './packet.js';
import { ChannelTopics, type TopicKind } from './topics.js';
import { StartLag } from './lag.js';
import { ENVELOPE_V1, type Sealer } from './sealer.js';
import { OutgoingOver } from './outgoing.js';
import { type AudioFrame, type Clock, type OpusRate, type OverReport, type PubSub, type TalkerInfo, type Wire, systemClock } from './types.js';

export { OutgoingOver, type OutgoingEvents } from './outgoing.js';
export { type AudioFrame, type Clock, type OpusRate, type OverReport, type PubSub, type TalkerInfo, type Wire, systemClock } from './types.js';

/**
 * Playout for an output that queues what it is given (a gateway's `aplay`): SessionOptions
 * playAheadMs and concealLateMs. Both are small on purpose. A bridge's transmit path beats the PTT
 * guard's watchdog (150 ms by default) with every frame handed out, concealed ones included, so
 * the longest gap between two frames must stay well inside it: a packet handed out up to 40 ms
 * early, then a lost 40 ms packet whose first frame is concealed 30 ms after its due time, is a
 * 110 ms gap. A frame that arrives earlier than 40 ms before its due time (a deep jitter buffer,
 * a burst) waits for the timer, and that also keeps handed-out audio shorter than the shortest
 * starvation time (60 ms).
 */
export const QUEUED_PLAYOUT = { playAheadMs: 40, concealLateMs: 30 } as const;
/** How early (ms) playout may hand out a frame: see schedule(). */
const EARLY_MS = 2;
/** A playout timer this late (ms) means the event loop stalled: see onPlayTimer(). */
const STALLED_MS = 10;
/**
 * Encrypted input waiting to be opened, by count and bytes. A genuine over is 25 packets a second
 * and each opens in well under a millisecond, so a queue this deep is a flood: what does not fit
 * is dropped (counted as `overload`) instead of growing memory and delaying everything behind it.
 */
const INBOX_MAX_ITEMS = 256;
const INBOX_MAX_BYTES = 512 * 1024;
const INBOX_RESERVE = 64;
/** Overs received at once on one channel, and from one sender (its current one and a straggler). */
const MAX_OVERS = 8;
const MAX_OVERS_PER_SENDER = 2;
/** Participants shown online on one channel. */
const MAX_PRESENCE = 256;

export type SessionEvents = {
  presence: [sender: string, presence: Presence | null];
  floor: [holder: TalkerInfo | null];
  overStart: [info: TalkerInfo];
  /** The floor holder has decodable audio (its first packet arrived, or it took the floor with some buffered): the moment a gateway may key. */
  audible: [info: TalkerInfo];
  audio: [frame: AudioFrame];
  overEnd: [report: OverReport];
  dropped: [reason: string, detail: string];
  notice: [sender: string, code: string, text: string];
};

export interface SessionOptions {
  prefix: string;
  channel: string;
  sender: string;
  name: string;
  source: Source;
  silenceMs: number;
  jitter?: Partial<Omit<JitterOptions, 'frameMs'>>;
  createDecoder: (s: { sampleRate: OpusRate; frameMs: 2.5 | 5 | 10 | 20 | 40 | 60 }) => FrameDecoder;
  /**
   * Rate to decode to, when everything that plays this channel runs at one rate (a gateway's sound
   * cards, usually 48 kHz): Opus decodes to any of its rates itself, far cheaper than decoding at
   * the stream's rate and resampling in JavaScript. Default: the stream's own rate.
   */
  decodeRate?: OpusRate;
  clock?: Clock;
  software?: string;
  /**
   * How much later than a talker's usual an over's first audio may arrive and still count as on
   * time, for TalkerInfo.lagMs (a gateway passes bridge.maxStartLagMs). Default 1000 ms.
   */
  lateAfterMs?: number;
  /**
   * For outputs that queue what they are given (a gateway's `aplay`, whose buffer holds 80 ms or
   * more): once an over plays, a frame that is here goes out on arrival, up to this many ms before
   * its due time, and the output's queue holds the jitter buffer's depth. That spares a timer
   * wake-up per packet (at 20 ms packets, half the receiving gateway's wake-ups). Default 0: frames
   * leave at their due time, for outputs that play what they get at once.
   */
  playAheadMs?: number;
  /**
   * With playAheadMs: a missing frame is concealed up to this many ms after its due time (the
   * output's queue covers the wait, and a frame that comes meanwhile plays instead), so that the
   * timer watching for a missing frame fires every few packets, not at each. Default 0.
   */
  concealLateMs?: number;
  /**
   * The channel's keys: with them everything this participant sends is encrypted, and anything
   * that does not authenticate is dropped (docs/security.md). Without them the channel is clear.
   */
  crypto?: Sealer;
}

interface Incoming {
  info: TalkerInfo;
  fromStart: boolean;
  sampleRate: number;
  frameMs: number;
  fpp: number;
  jb: JitterBuffer;
  decoder: FrameDecoder | null;
  sentPackets?: number;
  /** The reason the sender gave in its END, reported when playout reaches the end. */
  endReason?: EndReason;
  started: boolean;
  /** Decodable audio of this over has arrived (info.lagMs is set). */
  audible: boolean;
  /** Wall-clock capture time of frame 0. */
  t0: number;
}

export class ChannelSession extends Emitter<SessionEvents> {
  readonly topics: ChannelTopics;
  readonly counters: Record<string, number> = {};
  private readonly floor: Floor;
  private readonly clock: Clock;
  private readonly incoming = new Map<string, Incoming>();
  private readonly estimators = new Map<string, JitterEstimator>();
  private readonly presence = new Map<string, Presence>();
  private outgoing: OutgoingOver | null = null;
  private playTimer: ReturnType<typeof setTimeout> | null = null;
  /** The due time playTimer is aimed at. */
  private playDue: number | null = null;
  /** playTimer is the one-turn deferral after a stall (onPlayTimer). */
  private playDeferred = false;
  private tickTimer: ReturnType<typeof setTimeout> | null = null;
  private joined = false;
  private readonly crypto: Sealer | null;
  /** Encrypted input is opened asynchronously (WebCrypto) but must be handled in arrival order. */
  private inbox: Promise<void> = Promise.resolve();
  private inboxItems = 0;
  private inboxBytes = 0;
  private readonly lag = new StartLag();
  private get playAhead(): number {
    return this.opts.playAheadMs ?? 0;
  }
  private presenceTimer: ReturnType<typeof setTimeout> | null = null;
  /** When our current connection's presence went out (`since` in it). */
  private onlineSince = 0;
  /** Sealing is asynchronous too; publishing stays in the order messages were made. */
  private outbox: Promise<void> = Promise.resolve();
  private readonly wire: Wire;
  private readonly onMessage = (topic: string, payload: Uint8Array) => this.handle(topic, payload);
  private readonly onConnect = () => this.announce(true);

  constructor(
    private readonly mqtt: PubSub,
    readonly opts: SessionOptions,
  ) {
    super();
    this.topics = new ChannelTopics(opts.prefix, opts.channel);
    this.floor = new Floor({ silenceMs: opts.silenceMs });
    this.clock = opts.clock ?? systemClock;
    this.crypto = opts.crypto ?? null;
    if (this.crypto && this.crypto.channel !== this.topics.channel) throw new Error(`keys are for channel ${this.crypto.channel}, not ${this.topics.channel}`);
    this.wire = {
      control: (sender, m) => this.publishMessage('control', sender, encodeJson(m)),
      audio: (sender, header, frames) => {
        const topic = this.topics.topic('audio', sender);
        if (!this.crypto) {
          this.mqtt.publish(topic, encodePacket({ ...header, keyEpoch: 0 }, frames), { qos: 0, retain: false });
          return;
        }
        const c = this.crypto;
        this.sealed(() => c.sealAudio(sender, header, frames, this.clock.wall()), topic, 0);
      },
    };
  }

  /** Whether what this session sends is end-to-end encrypted. */
  get encrypted(): boolean {
    return this.crypto !== null;
  }

  private publishMessage(kind: 'control' | 'presence', sender: string, json: Uint8Array): void {
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

  get sender(): string {
    return this.opts.sender;
  }

  get holder(): TalkerInfo | null {
    const h = this.floor.holder;
    return h ? this.describe(h) : null;
  }

  private get ownPresence(): string {
    return this.topics.topic('presence', this.sender);
  }

  get online(): ReadonlyMap<string, Presence> {
    return this.presence;
  }

  /** The presence message our Last Will must clear: pass to the connection's `will`. */
  static willFor(prefix: string, channel: string, sender: string) {
    return { topic: new ChannelTopics(prefix, channel).topic('presence', sender), payload: new Uint8Array(0), qos: 1 as const, retain: true };
  }

  async join(): Promise<void> {
    if (this.joined) return;
    this.joined = true;
    this.mqtt.on('message', this.onMessage);
    this.mqtt.on('connect', this.onConnect);
    const sub = (topic: string, nl: boolean) =>
      new Promise<void>((resolve, reject) => this.mqtt.subscribe(topic, { qos: 1, nl }, (err) => (err ? reject(new Error(`subscribe to ${topic} refused: ${err.message}`)) : resolve())));
    // Everything but our own messages (on MQTT 5; 3.1.1 echoes them and handle() drops them), and
    // our own presence after all: its coming back is how a participant knows the broker took it
    // (we are on the channel, the list of who is online includes us).
    await Promise.all([sub(this.topics.all, true), sub(this.ownPresence, false)]);
    this.announce(true);
    this.ensureTick();
    this.refreshPresence();
  }

  /** Re-announces us and forgets whoever stopped doing so: presence has a freshness bound. */
  private refreshPresence(): void {
    const t = setTimeout(() => {
      if (!this.joined) return;
      this.announce(false);
      const now = this.clock.wall();
      for (const [sender, p] of this.presence) {
        if (now - (p.at ?? p.since) <= PRESENCE_STALE_MS) continue;
        this.presence.delete(sender);
        this.emit('presence', sender, null);
      }
      this.refreshPresence();
    }, PRESENCE_REFRESH_MS);
    (t as { unref?: () => void }).unref?.();
    this.presenceTimer = t;
  }

  /** Clears our presence and stops; an over in progress ends first. */
  async leave(): Promise<void> {
    if (!this.joined) return;
    this.outgoing?.end('aborted');
    this.joined = false;
    // What is still being sealed (the END of our over) goes out before we say goodbye.
    await Promise.race([this.outbox, new Promise((r) => setTimeout(r, 1000))]);
    if (this.tickTimer) clearTimeout(this.tickTimer);
    if (this.playTimer) clearTimeout(this.playTimer);
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.tickTimer = this.playTimer = this.presenceTimer = null;
    for (const [stream] of this.incoming) this.finish(stream, 'aborted');
    this.mqtt.removeListener('message', this.onMessage as never);
    this.mqtt.removeListener('connect', this.onConnect as never);
    if (this.mqtt.connected) {
      // A broker that died a moment ago never acknowledges: leaving must not wait on it (the Last
      // Will clears the presence then).
      const bounded = (fn: (done: () => void) => void) =>
        new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 1000);
          fn(() => (clearTimeout(t), resolve()));
        });
      await bounded((done) => this.mqtt.publish(this.ownPresence, new Uint8Array(0), { qos: 1, retain: true }, done));
      await bounded((done) => this.mqtt.unsubscribe(this.topics.all, done));
      await bounded((done) => this.mqtt.unsubscribe(this.ownPresence, done));
    }
  }

  private announce(connected: boolean): void {
    if (!this.joined) return;
    const now = this.clock.wall();
    if (connected || !this.onlineSince) this.onlineSince = now;
    const p: Presence = { v: 1, name: this.opts.name, source: this.opts.source, since: this.onlineSince, software: this.opts.software ?? 'talkbridge', at: now };
    this.publishMessage('presence', this.sender, encodeJson(p));
  }

  private count(reason: string, detail = ''): void {
    this.counters[reason] = (this.counters[reason] ?? 0) + 1;
    this.emit('dropped', reason, detail);
  }

  // ---- receiving ------------------------------------------------------------------------------

  private handle(topic: string, payload: Uint8Array): void {
    const t = this.topics.parse(topic);
    if (!t) {
      if (topic.startsWith(this.topics.base + '/')) this.count('topic', topic);
      return;
    }
    // Our own echo is never played, never re-sent; our presence is ours to know already.
    if (t.sender === this.sender && t.kind !== 'presence') return;
    if (this.crypto) return this.enqueueSecure(t.kind, t.sender, payload);
    if (t.kind === 'presence') {
      // Retained sealed presence tells a participant without a key, as soon as it joins, that the
      // channel is encrypted (rather than only once someone talks).
      if (payload[0] === ENVELOPE_V1) return this.count('encrypted', 'no key for this channel');
      return this.onPresence(t.sender, payload);
    }
    if (t.kind === 'control') {
      if (payload[0] === ENVELOPE_V1) return this.count('encrypted', 'no key for this channel');
      const m = parseControl(payload);
      if (!m.ok) return this.count('control', m.reason);
      return this.onControl(t.sender, m.value);
    }
    const p = this.decode(payload);
    if (!p) return;
    if (p.flags & Flag.ENCRYPTED) return this.count('encrypted', 'no key for this channel');
    this.onAudio(t.sender, p);
  }

  /**
   * Encrypted input is opened in arrival order, one at a time. What can be refused without
   * WebCrypto is refused here, before it costs a copy and a place in the queue; the queue itself is
   * bounded, so a flood of garbage costs bounded memory and cannot push a genuine over late.
   */
  private enqueueSecure(kind: TopicKind, sender: string, payload: Uint8Array): void {
    const c = this.crypto!;
    const full = this.inboxItems >= INBOX_MAX_ITEMS || this.inboxBytes + payload.length > INBOX_MAX_BYTES;
    // When garbage fills the queue, known members keep a lane of their own: control and presence
    // from senders that authenticated before (a START lost here would cut the over's start), and
    // audio of overs whose START authenticated.
    const reserved = this.inboxItems < INBOX_MAX_ITEMS + INBOX_RESERVE;
    if (full && kind !== 'audio' && !(reserved && c.isTrusted(sender))) return this.count('overload', `${kind} from ${sender}`);
    // A real copy (Buffer#slice would only be a view): the queued work runs after this handler returns.
    let data: Uint8Array;
    let packet: AudioPacket | null = null;
    const now = this.clock.wall();
    if (kind === 'audio') {
      const p = this.decode(payload);
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
    this.inboxItems++;
    this.inboxBytes += data.length;
    this.inbox = this.inbox
      .then(() => {
        this.inboxItems--;
        this.inboxBytes -= data.length;
        return this.handleSecure(kind, sender, data, packet);
      })
      .catch((err) => this.count('internal', (err as Error).message));
  }

  /** The packet, or null when it is malformed (counted by reason). */
  private decode(payload: Uint8Array): AudioPacket | null {
    try {
      return decodePacket(payload);
    } catch (err) {
      this.count(err instanceof PacketError ? `packet-${err.reason}` : 'packet', (err as Error).message);
      return null;
    }
  }

  private onPresence(sender: string, payload: Uint8Array): void {
    const p = parsePresence(payload);
    if (!p.ok) return this.count('presence', p.reason);
    if (p.value) {
      if (this.clock.wall() - (p.value.at ?? p.value.since) > PRESENCE_STALE_MS) return this.count('stale-presence', sender);
      if (!this.presence.has(sender) && this.presence.size >= MAX_PRESENCE) return this.count('presence-full', sender);
      this.presence.set(sender, p.value);
    } else this.presence.delete(sender);
    this.emit('presence', sender, p.value);
  }

  /** Everything on an encrypted channel: authenticated, checked for replay, then handled as clear input. */
  private async handleSecure(kind: TopicKind, sender: string, payload: Uint8Array, packet: AudioPacket | null): Promise<void> {
    if (!this.joined) return;
    const c = this.crypto!;
    const now = this.clock.wall();
    if (kind === 'presence') {
      // An empty retained message is how a Last Will clears presence; it carries nothing to protect.
      if (payload.length === 0) return this.onPresence(sender, payload);
      const r = await c.openMessage('presence', sender, payload, now);
      if (!r.ok) return this.count(r.reason, r.detail);
      if (r.value.length === 0) return this.count('presence', 'empty inside the envelope');
      return this.onPresence(sender, r.value);
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
      return this.onControl(sender, m.value);
    }
    const p = packet!;
    const r = await c.openAudio(sender, p, now);
    if (!r.ok) return this.count(r.reason, r.detail);
    p.frames = r.value;
    this.onAudio(sender, p);
  }

  private onControl(sender: string, m: ControlMessage): void {
    if (m.type === 'notice') return this.emit('notice', sender, m.code, m.text);
    const now = this.clock.now();
    // Only the sender that owns a stream may start, rename or end it.
    const owner = this.outgoing?.stream === m.stream ? this.sender : (this.incoming.get(m.stream)?.info.sender ?? this.floor.owner(m.stream));
    if (owner !== null && owner !== sender) return this.count('stream-sender', `${m.type} of ${m.stream} (${owner}'s) from ${sender}`);
    if (m.type === 'start') {
      if (this.floor.isEnded(m.stream)) return;
      const inc = this.track(sender, m.stream, m.t, m.sampleRate, m.frameMs, m.framesPerPacket, true);
      if (!inc) return;
      inc.info.name = m.name;
      inc.info.source = m.source;
      this.apply(this.floor.claim({ stream: m.stream, sender, t: m.t, priority: m.priority }, now));
      return;
    }
    const inc = this.incoming.get(m.stream);
    if (inc && inc.info.sender === sender) {
      inc.sentPackets = m.packets;
      inc.endReason = m.reason;
      inc.jb.endAfter(m.packets, inc.fpp);
      // The holder plays out what it has buffered (even if playout has not begun: a short over can
      // end before its first frame is due) and ends in the playout loop; anyone else ends now.
      if (this.floor.holder?.stream !== m.stream || inc.jb.nextDue() === null) this.apply(this.floor.release(m.stream), m.reason);
      else this.schedule();
    } else {
      this.apply(this.floor.release(m.stream), m.reason);
    }
  }

  /** A packet that parsed (and, on an encrypted channel, authenticated). */
  private onAudio(sender: string, p: AudioPacket): void {
    if (p.codec !== Codec.OPUS) return this.count('codec', String(p.codec));
    if (this.floor.isEnded(p.streamId)) return this.count('ended-stream', p.streamId);
    if (this.outgoing?.stream === p.streamId) return this.count('stream-sender', `${p.streamId} (ours) claimed by ${sender}`);
    let inc = this.incoming.get(p.streamId);
    if (inc && inc.info.sender !== sender) return this.count('stream-sender', `${p.streamId} claimed by ${sender}`);
    if (inc && (inc.fpp !== p.frameCount || inc.frameMs !== p.frameMs || inc.sampleRate !== p.sampleRate)) {
      return this.count('packet-inconsistent', `${p.streamId} changed codec parameters mid-over`);
    }
    // Audio that cannot decode never claims the floor, keeps an over alive or reaches a radio.
    const samples = (p.sampleRate * p.frameMs) / 1000;
    for (let i = 0; i < p.frames.length; i++) {
      const why = frameProblem(p.frames[i]!, p.sampleRate, samples);
      if (why) return this.count('opus', `${p.streamId}/${p.seq} from ${sender}: ${why}`);
    }
    const now = this.clock.now();
    if (!inc) {
      // Joined late (or START lost): the over's start follows from any packet.
      const t = p.timestamp - Math.round(p.seq * packetMs(p));
      const tracked = this.track(sender, p.streamId, t, p.sampleRate, p.frameMs, p.frameCount, false);
      if (!tracked) return;
      inc = tracked;
      this.apply(this.floor.claim({ stream: p.streamId, sender, t, priority: 0 }, now));
      if (this.floor.isEnded(p.streamId)) return;
    }
    // A clear packet's frames are views of the transport's read buffer, which can be far larger
    // than the packet: what waits in the jitter buffer must not keep that alive.
    const frames = this.crypto ? p.frames : p.frames.map((f) => f.slice());
    const r = inc.jb.push({ seq: p.seq, frames, last: (p.flags & Flag.END) !== 0 }, now);
    if (r !== 'queued') {
      this.count(r, p.streamId);
      if (r !== 'late' && r !== 'duplicate') return;
    }
    // An over that arrived in a burst is live until the audio it already sent has played.
    this.floor.heard(p.streamId, Math.max(now, inc.jb.heardUntil() ?? now));
    if (r === 'queued' && !inc.audible) {
      inc.audible = true;
      inc.info.lagMs = this.lag.observe(sender, p.timestamp, this.clock.wall(), this.opts.lateAfterMs ?? 1000);
      if (this.floor.holder?.stream === p.streamId) this.emit('audible', inc.info);
    }
    if (this.floor.holder?.stream !== p.streamId) return;
    // Played on arrival where the output queues it (playAheadMs): no timer, no second wake-up.
    if (inc.started && this.playAhead > 0 && !this.playDeferred) this.play();
    else this.schedule();
  }

  private track(sender: string, stream: string, t: number, sampleRate: number, frameMs: number, fpp: number, fromStart: boolean): Incoming | null {
    let inc = this.incoming.get(stream);
    if (inc) {
      inc.fromStart ||= fromStart;
      return inc;
    }
    if (!this.makeRoom(sender)) {
      this.count('overs', `${stream} from ${sender}: ${MAX_OVERS} overs already in progress`);
      return null;
    }
    let est = this.estimators.get(sender);
    if (!est) {
      est = new JitterEstimator();
      this.estimators.set(sender, est);
      if (this.estimators.size > 64) this.estimators.delete(this.estimators.keys().next().value as string);
    }
    const jb = new JitterBuffer({ ...JITTER_DEFAULTS, ...this.opts.jitter, frameMs }, est);
    inc = {
      info: { stream, sender, name: this.presence.get(sender)?.name ?? sender, source: this.presence.get(sender)?.source ?? 'cli', t, self: false },
      fromStart,
      sampleRate,
      frameMs,
      fpp,
      jb,
      decoder: null,
      started: false,
      audible: false,
      t0: t,
    };
    this.incoming.set(stream, inc);
    return inc;
  }

  /**
   * Overs that do not hold the floor only buffer, and each buffer is bounded: their number is
   * bounded too, per sender and per channel. The oldest over that does not hold the floor makes
   * room for a new one (a sender's own first); the holder is never dropped for a newcomer.
   */
  private makeRoom(sender: string): boolean {
    const holder = this.floor.holder?.stream;
    let own = 0;
    let oldestOwn: string | null = null;
    let oldest: string | null = null;
    for (const [stream, inc] of this.incoming) {
      if (stream === holder) continue;
      oldest ??= stream;
      if (inc.info.sender === sender) {
        own++;
        oldestOwn ??= stream;
      }
    }
    let ownTotal = own;
    if (holder && this.incoming.get(holder)?.info.sender === sender) ownTotal++;
    const victim = ownTotal >= MAX_OVERS_PER_SENDER ? oldestOwn : this.incoming.size >= MAX_OVERS ? oldest : null;
    if ((ownTotal >= MAX_OVERS_PER_SENDER || this.incoming.size >= MAX_OVERS) && victim === null) return false;
    if (victim !== null) {
      this.count('overs-dropped', `${victim}: too many overs in progress`);
      this.finish(victim, 'aborted');
      this.apply(this.floor.release(victim));
    }
    return true;
  }

  private describe(c: Claim): TalkerInfo {
    if (this.outgoing && c.stream === this.outgoing.stream) return this.outgoing.info;
    const inc = this.incoming.get(c.stream);
    return inc?.info ?? { stream: c.stream, sender: c.sender, name: c.sender, source: 'cli', t: c.t, self: false };
  }

  private apply(changes: FloorChange[], reason?: EndReason): void {
    for (const ch of changes) {
      if (ch.type === 'released') {
        if (this.incoming.has(ch.claim.stream)) this.finish(ch.claim.stream, ch.reason === 'silence' ? 'silence' : (reason ?? 'done'));
      } else {
        if (ch.previous && this.incoming.has(ch.previous.stream)) this.finish(ch.previous.stream, 'preempted');
        if (this.outgoing && ch.claim.stream !== this.outgoing.stream) this.outgoing.lose(this.describe(ch.claim));
      }
    }
    if (changes.length) {
      const holder = this.holder;
      this.emit('floor', holder);
      const inc = holder && this.incoming.get(holder.stream);
      // The new holder already has audio buffered (it was waiting behind another over).
      if (holder && inc?.audible && this.floor.holder?.stream === holder.stream) this.emit('audible', inc.info);
      this.schedule();
    }
    this.ensureTick();
    // Streams that are active but not holding the floor only buffer; drop their state when they end.
    for (const [stream] of this.incoming) if (!this.floor.isActive(stream) && this.floor.isEnded(stream)) this.finish(stream, reason ?? 'done');
  }

  private tick(): void {
    this.tickTimer = null;
    // Our own over lives while we send it: only other talkers can fall silent. Without this a
    // talker holding the button past silenceMs saw the channel as clear while still on air.
    if (this.outgoing?.active) this.floor.heard(this.outgoing.stream, this.clock.now());
    this.apply(this.floor.tick(this.clock.now()));
  }

  /**
   * One timer at the moment the quietest over would fall silent, re-aimed when it fires (being
   * heard only moves that moment later, and a new claim's is the latest of all, so the armed timer
   * is never too late). A periodic check cost ten wake-ups a second while anyone talked; a quiet
   * channel needs none (a gateway waits most of its life, and on a Pi every wake-up costs).
   */
  private ensureTick(): void {
    if (!this.joined || this.tickTimer) return;
    const due = this.floor.nextSilence();
    if (due === null) return;
    this.tickTimer = setTimeout(() => this.tick(), Math.max(1, Math.ceil(due - this.clock.now())));
  }

  /**
   * Arms the playout timer for the holder's next due frame; with playAheadMs, once the over plays,
   * for the moment a missing next frame must be concealed (due + concealLateMs). A timer that is
   * already armed and fires no later than needed is left alone: it finds nothing to do and aims
   * again, which is cheaper than re-arming, since Node still wakes at a cleared timer's expiry.
   */
  private schedule(): void {
    const h = this.floor.holder;
    const inc = h && this.incoming.get(h.stream);
    const due = inc ? inc.jb.nextDue() : null;
    let at = due;
    if (inc && due !== null && inc.started && this.playAhead > 0) at = inc.jb.nextHere() ? due - this.playAhead : due + (this.opts.concealLateMs ?? 0);
    if (this.playTimer && at !== null && this.playDue !== null && this.playDue <= at) return;
    if (this.playTimer) clearTimeout(this.playTimer);
    this.playTimer = null;
    this.playDeferred = false;
    this.playDue = at;
    if (at === null) return;
    // Node timers count whole milliseconds from a loop time that can be a millisecond or so stale:
    // one aimed at the due time may fire up to ~2 ms early, find nothing due and need a chain of
    // 1 ms wake-ups. Playing what is due within EARLY_MS costs nothing (the output is buffered).
    this.playTimer = setTimeout(() => this.onPlayTimer(at), Math.max(0, Math.ceil(at - this.clock.now())));
  }

  /**
   * After a stall (GC, a busy machine) the timer fires late, and Node runs overdue timers before it
   * reads sockets: packets that arrived meanwhile are still unread, and playing now would conceal
   * frames that are already here (and then drop them as late). One turn of the loop lets them in
   * first; a timer at 0 ms runs after this turn's reading, in Node and in browsers alike.
   */
  private onPlayTimer(due: number): void {
    if (!this.playDeferred && this.clock.now() - due > STALLED_MS) {
      this.playDeferred = true;
      this.playTimer = setTimeout(() => this.onPlayTimer(due), 0);
      return;
    }
    this.playTimer = null;
    this.playDeferred = false;
    this.play();
  }

  /** Plays what is due; from the timer, or on arrival (playAheadMs) with the timer left armed. */
  private play(): void {
    const h = this.floor.holder;
    const inc = h && this.incoming.get(h.stream);
    if (!inc) return;
    const now = this.clock.now() + EARLY_MS;
    // Once an over plays, the rest of a packet that is already here goes out with its first frame:
    // one wake-up per packet instead of one per frame, and no later for it (a sound card plays it
    // right after the frame before). The over's first frame still waits for its due time, which
    // is what gives the jitter buffer its depth.
    const ahead = Math.max((inc.fpp - 1) * inc.frameMs, this.playAhead);
    const late = this.playAhead > 0 ? (this.opts.concealLateMs ?? 0) : 0;
    for (let item = inc.jb.pop(now, inc.started ? ahead : 0, inc.started ? late : 0); item; item = inc.jb.pop(now, inc.started ? ahead : 0, inc.started ? late : 0)) {
      if (item.type === 'end') {
        this.apply(this.floor.release(inc.info.stream), inc.endReason);
        this.finish(inc.info.stream, inc.endReason ?? 'done');
        return;
      }
      if (!inc.started) {
        inc.started = true;
        inc.decoder = this.opts.createDecoder({ sampleRate: this.opts.decodeRate ?? (inc.sampleRate as OpusRate), frameMs: inc.frameMs as 20 });
        this.emit('overStart', inc.info);
      }
      let pcm: Int16Array;
      let concealed = item.type === 'conceal';
      try {
        pcm = item.type === 'frame' ? inc.decoder!.decode(item.data) : inc.decoder!.conceal();
      } catch (err) {
        this.count('decode', (err as Error).message);
        pcm = inc.decoder!.conceal();
        concealed = true;
      }
      this.emit('audio', {
        pcm,
        sampleRate: inc.decoder!.sampleRate,
        stream: inc.info.stream,
        index: item.index,
        concealed,
        latencyMs: this.clock.wall() - (inc.t0 + item.index * inc.frameMs),
        packetStart: item.index % inc.fpp === 0,
        packetMs: inc.fpp * inc.frameMs,
      });
    }
    this.schedule();
  }

  private finish(stream: string, reason: OverReport['reason']): void {
    const inc = this.incoming.get(stream);
    if (!inc) return;
    this.incoming.delete(stream);
    inc.decoder?.close();
    if (inc.started) {
      const stats = inc.jb.stats(inc.fromStart, inc.sentPackets);
      this.emit('overEnd', { ...inc.info, reason, stats, durationMs: (stats.played + stats.concealed) * inc.frameMs });
    }
    if (this.floor.isActive(stream)) this.apply(this.floor.release(stream), reason === 'silence' ? undefined : (reason as EndReason));
  }

  // ---- sending --------------------------------------------------------------------------------

  /** Tells everyone on the channel something they must know (a gateway timed out, lost its radio). */
  notice(code: string, text: string): void {
    this.wire.control(this.sender, { v: 1, type: 'notice', code, text: text.slice(0, 200) });
  }

  /**
   * Takes the floor and returns the over to feed, or the current holder when the channel is busy.
   * The caller must listen before talking: join() first, and give the channel a moment to be heard.
   */
  talk(o: { sampleRate: number; frameMs: number; framesPerPacket: number; priority?: number }): OutgoingOver | { busy: TalkerInfo } {
    if (this.outgoing) throw new Error('already talking');
    const holder = this.holder;
    if (holder) return { busy: holder };
    const stream = newStreamId();
    const t = this.clock.wall();
    const info: TalkerInfo = { stream, sender: this.sender, name: this.opts.name, source: this.opts.source, t, self: true };
    const over = new OutgoingOver(this.wire, info, o.sampleRate, o.frameMs, o.framesPerPacket, () => {
      this.outgoing = null;
      this.apply(this.floor.release(stream));
    });
    this.outgoing = over;
    const start: StartMessage = {
      v: 1,
      type: 'start',
      stream,
      t,
      name: this.opts.name,
      source: this.opts.source,
      priority: o.priority ?? 0,
      sampleRate: o.sampleRate,
      frameMs: o.frameMs,
      framesPerPacket: o.framesPerPacket,
    };
    this.wire.control(this.sender, start);
    this.apply(this.floor.claim({ stream, sender: this.sender, t, priority: o.priority ?? 0 }, this.clock.now()));
    return over;
  }
}
