/**
 * One participant on one talk channel: the protocol engine shared by the gateway, the CLI and the
 * browser client. It joins, keeps who is online, dispatches what arrives, tracks the floor and
 * starts our overs. Beside it: the wire (wire.ts: clear and sealed publishing, the ordered
 * encrypted inbox), the overs being received (incoming.ts), the playout of the one holding the
 * floor (playout.ts) and the over we send (outgoing.ts); the floor rule itself is floor.ts. It
 * knows nothing of WAV files, sound cards or radios; those feed it encoded frames and consume
 * decoded PCM.
 */
import { frameProblem } from '../codec/codec.js';
import { Emitter } from '../core/emitter.js';
import { type ControlMessage, type EndReason, PRESENCE_REFRESH_MS, PRESENCE_STALE_MS, type Presence, type StartMessage, encodeJson, parseControl, parsePresence } from './control.js';
import { type Claim, Floor, type FloorChange } from './floor.js';
import { type AudioPacket, Codec, Flag, newStreamId, packetMs } from './packet.js';
import { ChannelTopics } from './topics.js';
import { StartLag } from './lag.js';
import { ENVELOPE_V1, type Sealer } from './sealer.js';
import { OutgoingOver } from './outgoing.js';
import { type IncomingOver, IncomingOvers, MAX_OVERS } from './incoming.js';
import { Playout } from './playout.js';
import { type Clock, type OverReport, type PubSub, type SessionEvents, type SessionOptions, type TalkerInfo, type Timer, systemClock } from './types.js';
import { Publisher, SecureInbox, decodeOrCount } from './wire.js';

export { OutgoingOver, type OutgoingEvents } from './outgoing.js';
export { QUEUED_PLAYOUT } from './playout.js';
export { type AudioFrame, type Clock, type OpusRate, type OverReport, type PubSub, type SessionEvents, type SessionOptions, type TalkerInfo, type Timer, type Wire, systemClock } from './types.js';

/** Participants shown online on one channel. */
const MAX_PRESENCE = 256;

export class ChannelSession extends Emitter<SessionEvents> {
  readonly topics: ChannelTopics;
  readonly counters: Record<string, number> = {};
  private readonly floor: Floor;
  private readonly clock: Clock;
  private readonly incoming: IncomingOvers;
  private readonly presence = new Map<string, Presence>();
  private outgoing: OutgoingOver | null = null;
  private readonly playout: Playout;
  private tickTimer: Timer | null = null;
  private joined = false;
  private readonly crypto: Sealer | null;
  /** Encrypted input is opened asynchronously (WebCrypto) but must be handled in arrival order. */
  private readonly inbox: SecureInbox | null;
  private readonly lag = new StartLag();
  private presenceTimer: Timer | null = null;
  /** When our current connection's presence went out (`since` in it). */
  private onlineSince = 0;
  private readonly wire: Publisher;
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
    this.incoming = new IncomingOvers(opts.jitter);
    this.crypto = opts.crypto ?? null;
    if (this.crypto && this.crypto.channel !== this.topics.channel) throw new Error(`keys are for channel ${this.crypto.channel}, not ${this.topics.channel}`);
    const count = (reason: string, detail?: string) => this.count(reason, detail);
    this.wire = new Publisher(mqtt, this.topics, this.clock, this.crypto, count);
    this.inbox = this.crypto
      ? new SecureInbox(this.crypto, this.clock, count, {
          live: () => this.joined,
          presence: (sender, json) => this.onPresence(sender, json),
          control: (sender, m) => this.onControl(sender, m),
          audio: (sender, p) => this.onAudio(sender, p),
        })
      : null;
    this.playout = new Playout({
      clock: this.clock,
      playAheadMs: opts.playAheadMs ?? 0,
      concealLateMs: opts.concealLateMs ?? 0,
      createDecoder: opts.createDecoder,
      ...(opts.decodeRate ? { decodeRate: opts.decodeRate } : {}),
      current: () => {
        const h = this.floor.holder;
        return (h && this.incoming.get(h.stream)) ?? null;
      },
      started: (inc) => this.emit('overStart', inc.info),
      frame: (f) => this.emit('audio', f),
      ended: (inc) => {
        this.apply(this.floor.release(inc.info.stream), inc.endReason);
        this.finish(inc.info.stream, inc.endReason ?? 'done');
      },
      count,
    });
  }

  /** Whether what this session sends is end-to-end encrypted. */
  get encrypted(): boolean {
    return this.crypto !== null;
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
    const t = this.clock.setTimeout(() => {
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
    await this.within(1000, this.wire.drained);
    if (this.tickTimer !== null) this.clock.clearTimeout(this.tickTimer);
    if (this.presenceTimer !== null) this.clock.clearTimeout(this.presenceTimer);
    this.tickTimer = this.presenceTimer = null;
    this.playout.stop();
    for (const stream of this.incoming.streams()) this.finish(stream, 'aborted');
    this.mqtt.removeListener('message', this.onMessage as never);
    this.mqtt.removeListener('connect', this.onConnect as never);
    if (this.mqtt.connected) {
      // A broker that died a moment ago never acknowledges: leaving must not wait on it (the Last
      // Will clears the presence then).
      const acked = (fn: (done: () => void) => void) => this.within(1000, new Promise<void>((resolve) => fn(resolve)));
      await acked((done) => this.mqtt.publish(this.ownPresence, new Uint8Array(0), { qos: 1, retain: true }, done));
      await acked((done) => this.mqtt.unsubscribe(this.topics.all, done));
      await acked((done) => this.mqtt.unsubscribe(this.ownPresence, done));
    }
  }

  /** `p`, or nothing after `ms`. */
  private within(ms: number, p: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = this.clock.setTimeout(resolve, ms);
      void p.then(() => (this.clock.clearTimeout(t), resolve()));
    });
  }

  private announce(connected: boolean): void {
    if (!this.joined) return;
    const now = this.clock.wall();
    if (connected || !this.onlineSince) this.onlineSince = now;
    const p: Presence = { v: 1, name: this.opts.name, source: this.opts.source, since: this.onlineSince, software: this.opts.software ?? 'talkbridge', at: now };
    this.wire.message('presence', this.sender, encodeJson(p));
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
    if (this.inbox) return this.inbox.receive(t.kind, t.sender, payload);
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
    const p = decodeOrCount(payload, (reason, detail) => this.count(reason, detail));
    if (!p) return;
    if (p.flags & Flag.ENCRYPTED) return this.count('encrypted', 'no key for this channel');
    this.onAudio(t.sender, p);
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
      else this.playout.schedule();
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
    this.playout.arrived(inc);
  }

  private track(sender: string, stream: string, t: number, sampleRate: number, frameMs: number, fpp: number, fromStart: boolean): IncomingOver | null {
    const known = this.incoming.get(stream);
    if (known) {
      known.fromStart ||= fromStart;
      return known;
    }
    const room = this.incoming.roomFor(sender, this.floor.holder?.stream);
    if (!room.fits) {
      this.count('overs', `${stream} from ${sender}: ${MAX_OVERS} overs already in progress`);
      return null;
    }
    if (room.victim !== null) {
      this.count('overs-dropped', `${room.victim}: too many overs in progress`);
      this.finish(room.victim, 'aborted');
      this.apply(this.floor.release(room.victim));
    }
    const p = this.presence.get(sender);
    return this.incoming.add({ sender, stream, t, sampleRate, frameMs, fpp, fromStart, name: p?.name ?? sender, source: p?.source ?? 'cli' });
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
      this.playout.schedule();
    }
    this.ensureTick();
    // Streams that are active but not holding the floor only buffer; drop their state when they end.
    for (const stream of this.incoming.streams()) if (!this.floor.isActive(stream) && this.floor.isEnded(stream)) this.finish(stream, reason ?? 'done');
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
    this.tickTimer = this.clock.setTimeout(() => this.tick(), Math.max(1, Math.ceil(due - this.clock.now())));
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
