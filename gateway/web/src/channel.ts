/**
 * One joined channel, without the page: the broker connection, the shared ChannelSession, the
 * push-to-talk Talker and the playback of what arrives, the state the page shows and events for
 * everything it reacts to. No DOM (the page's parts render it), so a second instance could join
 * a second channel.
 */
import { ChannelSession, type AudioFrame, type OverReport, type TalkerInfo } from '../../shared/channel/session.js';
import { makeSenderId } from '../../shared/channel/topics.js';
import type { ChannelCrypto } from '../../shared/crypto/channel-crypto.js';
import { Emitter } from '../../shared/core/emitter.js';
import type { Codecs } from './codec.js';
import { CODEC, type JoinParams, SILENCE_MS } from './config.js';
import { BrokerConnection, type ConnState } from './net.js';
import { OverLog } from './over-log.js';
import { Talker, type TalkState } from './talker.js';
import { type CryptoModel, cryptoProblemAfter, cryptoProblemAfterAuthenticated, cryptoView } from './view.js';

const SOFTWARE = 'talkbridge-web/0.1';
const LISTEN_ONLY_AFTER_MS = 3000;

/** What a channel needs of the page's audio (audio.ts): the microphone to talk, the speaker to listen. */
export interface ChannelAudio {
  openMic(): Promise<void>;
  arm(): void;
  disarm(): Promise<void>;
  on(event: 'frame', fn: (pcm: Int16Array) => void): () => void;
  overStart(): void;
  play(pcm: Int16Array): void;
  overEnd(): void;
}

export interface ChannelOptions {
  params: JoinParams;
  /** Null: a clear channel. */
  crypto: ChannelCrypto | null;
  codecs: Codecs;
  audio: ChannelAudio;
  /** Our sender id on the channel. */
  sender: string;
}

export interface ChannelState {
  conn: ConnState;
  talk: TalkState;
  holder: TalkerInfo | null;
  crypto: CryptoModel;
  /** The broker dropped what we sent on an over: the login may listen here but not talk. */
  listenOnly: boolean;
}

/** The state of a channel still being joined (its key read, its codecs loading). */
export function joiningState(broker: string, crypto: ChannelCrypto | null): ChannelState {
  return { conn: { kind: 'connecting', url: broker }, talk: { kind: 'idle' }, holder: null, crypto: { encrypted: !!crypto, epoch: crypto?.sendEpoch ?? null, problem: null }, listenOnly: false };
}

/** Nobody could hear an over sealed with the wrong key (or sent in clear on an encrypted channel). */
export function talkBlocked(s: ChannelState): boolean {
  return cryptoView(s.crypto).blocksTalk || s.listenOnly;
}

export type ChannelEvents = {
  /** Something in `state` changed. */
  change: [];
  conn: [ConnState];
  talk: [TalkState];
  /** Someone came, went or changed; `session.online` has who. */
  presence: [];
  /** A gateway's notice (its transmitter timed out…), for everyone on the channel to see. */
  notice: [text: string];
  overStart: [TalkerInfo];
  audio: [AudioFrame];
  /** `overs` changed: an over started or ended. */
  overs: [];
  /** A packet of our over went out. */
  sent: [];
  /** The session's join finished, or failed with this error. */
  entered: [error: Error | null];
};

export class JoinedChannel extends Emitter<ChannelEvents> {
  readonly params: JoinParams;
  readonly codecs: Codecs;
  readonly conn: BrokerConnection;
  readonly session: ChannelSession;
  readonly talker: Talker;
  readonly overs = new OverLog();
  readonly state: ChannelState;
  private closed = false;
  /** Someone else's message authenticated under our key since joining (so our key is right). */
  private othersAuthenticated = false;
  /** What we published on the current over, and whether any of it came back from the broker. */
  private probe = { echoed: false, sent: 0 };
  private readonly offs: Array<() => void> = [];

  constructor(o: ChannelOptions) {
    super();
    const { params, codecs, audio, sender, crypto } = o;
    this.params = params;
    this.codecs = codecs;
    const will = ChannelSession.willFor(params.prefix, params.channel, sender);
    // As talk/open.ts: two tabs (or a tab and a CLI) on one login must not kick each other off.
    const clientId = (sender === params.user ? `tb-${makeSenderId('').slice(-8)}-${sender}` : `tb-${sender}`).slice(0, 64);
    const conn = new BrokerConnection({
      url: params.broker,
      clientId,
      will: { topic: will.topic, qos: will.qos, retain: will.retain },
      ...(params.user ? { username: params.user, password: params.password ?? '' } : {}),
    });
    const session = new ChannelSession(conn.client, {
      prefix: params.prefix,
      channel: params.channel,
      sender,
      name: params.name,
      source: 'web',
      silenceMs: SILENCE_MS,
      software: SOFTWARE,
      createDecoder: (s) => codecs.wasm.createDecoder(s),
      ...(crypto ? { crypto } : {}),
    });
    const talker = new Talker({
      session,
      openMic: () => audio.openMic(),
      arm: () => audio.arm(),
      disarm: () => audio.disarm(),
      createEncoder: () => codecs.createEncoder(),
      silence: () => codecs.silence(),
      connected: () => conn.client.connected,
      codec: CODEC,
      talkTimeoutMs: params.talkTimeoutS * 1000,
    });
    this.conn = conn;
    this.session = session;
    this.talker = talker;
    this.state = { ...joiningState(params.broker, crypto), conn: conn.state, talk: talker.state };
    const state = this.state;
    this.offs.push(
      audio.on('frame', (pcm: Int16Array) => talker.frame(pcm)),
      conn.on('state', (s: ConnState) => {
        state.conn = s;
        if (s.kind === 'reconnecting') talker.abort('offline');
        this.emit('conn', s);
        this.emit('change');
      }),
      session.on('floor', (h: TalkerInfo | null) => {
        state.holder = h;
        this.emit('change');
      }),
      session.on('presence', (sender, p) => {
        if (p && sender !== session.sender && session.encrypted) this.authenticated();
        this.emit('presence');
      }),
      // What could not be opened says what is wrong with the key; nothing of it is ever played.
      session.on('dropped', (reason: string, detail: string) => {
        // The session's detail names the kind of message first ("presence from …").
        const next = cryptoProblemAfter(state.crypto.problem, reason, this.othersAuthenticated, detail.startsWith('presence'));
        if (next !== state.crypto.problem) {
          state.crypto.problem = next;
          this.emit('change');
        }
      }),
      session.on('notice', (_sender: string, _code: string, text: string) => this.emit('notice', text)),
      session.on('overStart', (i: TalkerInfo) => {
        if (session.encrypted) this.authenticated();
        audio.overStart();
        this.overs.start(i, new Date());
        this.emit('overStart', i);
        this.emit('overs');
      }),
      session.on('audio', (f: AudioFrame) => {
        audio.play(f.pcm);
        this.overs.audio(f);
        this.emit('audio', f);
      }),
      session.on('overEnd', (r: OverReport) => {
        audio.overEnd();
        this.overs.end(r);
        this.emit('overs');
      }),
      talker.on('state', (s: TalkState) => {
        if (s.kind === 'talking' && state.talk.kind !== 'talking') this.probeListenOnly();
        state.talk = s;
        this.emit('talk', s);
        this.emit('change');
      }),
      talker.on('sent', () => {
        this.probe.sent++;
        this.emit('sent');
      }),
    );
    // The broker echoes what we publish back to us (MQTT 3.1.1 has no "no local"); a broker that
    // drops a listen-only login's audio (embedded broker, Mosquitto's ACL) says nothing else.
    const ownPrefix = `${params.prefix}/${params.channel}/`;
    const onMessage = (topic: string) => {
      if (topic.startsWith(ownPrefix) && !topic.includes('/presence/') && topic.endsWith(`/${sender}`)) this.probe.echoed = true;
    };
    conn.client.on('message', onMessage);
    this.offs.push(() => void conn.client.off('message', onMessage));
  }

  /** Joins the channel (presence, subscriptions) once the broker connection is up. */
  async start(): Promise<void> {
    if (this.conn.client.connected) await this.enter();
    else this.conn.client.once('connect', () => void this.enter());
  }

  /** Ends any over (the talker says so), leaves the channel and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.talker.release();
    this.talker.abort('hidden');
    for (const off of this.offs) off();
    await this.session.leave().catch(() => {});
    await this.conn.close().catch(() => {});
  }

  private async enter(): Promise<void> {
    if (this.closed) return;
    let error: Error | null = null;
    try {
      await this.session.join();
    } catch (err) {
      error = err as Error;
    }
    this.emit('entered', error);
  }

  private probeListenOnly(): void {
    this.probe = { echoed: false, sent: 0 };
    setTimeout(() => {
      if (this.closed || !this.conn.client.connected || this.probe.echoed || this.probe.sent === 0) return;
      this.state.listenOnly = true;
      this.talker.release();
      this.emit('change');
    }, LISTEN_ONLY_AFTER_MS);
  }

  private authenticated(): void {
    this.othersAuthenticated = true;
    const next = cryptoProblemAfterAuthenticated(this.state.crypto.problem);
    if (next !== this.state.crypto.problem) {
      this.state.crypto.problem = next;
      this.emit('change');
    }
  }
}
