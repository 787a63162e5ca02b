/**
 * One radio bridged to talk channels: the gateway's state machine.
 *
 *   idle ──carrier opens──▶ rx ──carrier closes──▶ idle              (radio → channel)
 *   idle ──over starts on a monitored channel──▶ tx ──over ends──▶ hang ──hang time──▶ idle
 *   hang ──another over──▶ tx                                         (no re-key between overs)
 *   tx ──time-out timer──▶ lockout ──channels quiet──▶ idle
 *
 * Every transition is logged with its reason. The transmitter is keyed only for a live over whose
 * audio keeps arriving: no valid frame for `starvationMs` unkeys at once, independent of MQTT
 * keep-alive; the time-out timer unkeys and latches; losing the output device unkeys. Carrier
 * detect is ignored while we transmit and for a hold-off after, and a carrier that rises while the
 * channel is busy or just after an over ended there is never forwarded — so two gateways on one
 * frequency and one channel cannot ping-pong. Our own audio never comes back (the session drops
 * its own echoes).
 */
import type { Logger } from 'pino';
import { Emitter } from '../../shared/core/emitter.js';
import type { AudioFrame, ChannelSession, OverReport, TalkerInfo } from '../../shared/channel/session.js';
import { type Clock, systemClock } from '../../shared/channel/types.js';
import { BridgeIo } from './devices.js';
import { HangExtras } from './extras.js';
import { Refusals } from './refusals.js';
import { RxPipeline } from './rx.js';
import type { BridgeConfig } from './schema.js';
import { Timers } from './timers.js';
import { HeldOver, TxPipeline } from './tx.js';
import type { BridgeCounters, BridgeEvents, BridgeOptions, BridgeState, BridgeStatus, BridgeView, OverInfo } from './types.js';

/**
 * How much longer than starvationMs an over's first frame may take to play after its first audio
 * arrived (ms): the jitter buffer's largest default delay. The radio keys only once decodable audio
 * is here, so this is all the grace a new over needs.
 */
const FIRST_AUDIO_GRACE_MS = 200;

export { capturePeriodMs } from './rx.js';
export type { BridgeOptions, RadioIo } from './types.js';

export class Bridge extends Emitter<BridgeEvents> implements BridgeView {
  readonly radio: string;
  readonly counters: BridgeCounters = { oversFromRadio: 0, oversToRadio: 0, keyedSeconds: 0, timeouts: 0, starvations: 0, refusedBusy: 0, refusedStale: 0, pttFaults: 0 };
  private st: BridgeState = 'idle';
  private readonly c: BridgeConfig;
  private readonly log: Logger;
  private stopped = false;

  private readonly rx: RxPipeline;
  private readonly tx: TxPipeline;
  private readonly extras: HangExtras;
  private readonly io: BridgeIo;

  // radio → channel
  private rxInfo: OverInfo | null = null;
  /**
   * The rx time-out cut the carrier and it has not closed since: a stuck squelch, which every
   * re-check after our own overs would otherwise put back on the channel.
   */
  private carrierTimedOut = false;

  // channel → radio
  /** The channel's over on the air, and whose it is. */
  private onAir: { session: ChannelSession; talker: TalkerInfo; info: OverInfo } | null = null;
  private lastValid = 0;
  private keyedSince: number | null = null;
  private holdoffUntil = 0;
  private lastChannelOverEnd = -Infinity;
  private readonly refusals: Refusals;
  private held: HeldOver | null = null;
  /**
   * rx: the rx time-out; tot: the time-out timer; lockout: a backstop poll; txEnd: an over's end,
   * put off until its audio held for the TX delay has gone out (here, so that stop cancels it).
   */
  private readonly timers: Timers<'rx' | 'tot' | 'hang' | 'starve' | 'lockout' | 'txEnd'>;
  private readonly clock: Clock;

  constructor(private readonly o: BridgeOptions) {
    super();
    this.radio = o.radio.name;
    this.c = o.config;
    this.log = o.log;
    this.clock = o.clock ?? systemClock;
    this.timers = new Timers(this.clock);
    this.onListenerError = (err, event) => this.log.error({ err: String(err), event }, 'bridge listener failed');
    const { encoder, frameMs, framesPerPacket } = o;
    const inRate = o.radio.input?.sampleRate ?? encoder.sampleRate;
    this.rx = new RxPipeline({ inRate, encoder, frameMs, framesPerPacket, squelchTailMs: this.c.squelchTailMs, audio: this.c.rxAudio });
    this.tx = new TxPipeline(o.radio.output, this.c.txAudio.limiterDb, this.clock);
    this.refusals = new Refusals(this.c.maxStartLagMs);
    this.extras = new HangExtras(this.c, o.radio.output.sampleRate, this.radio, this.log);
    this.io = new BridgeIo(o, this.log, this.counters);
  }

  get state(): BridgeState {
    return this.st;
  }

  status(): BridgeStatus {
    return this.io.status(this.st, this.onAir?.info ?? this.rxInfo);
  }

  async start(): Promise<void> {
    await this.extras.load();
    await this.io.open({
      pttFault: () => (this.st === 'tx' || this.st === 'hang') && this.abortTx('ptt fault'),
      carrier: (open) => this.onCarrier(open),
      capture: (pcm) => this.rx.input(pcm),
      outputLost: () => (this.st === 'tx' || this.st === 'hang') && this.abortTx('audio output lost'),
      inputLost: (state) => this.st === 'rx' && this.endRx(state === 'stopped' ? 'done' : 'error'),
      floor: (s, h) => this.onFloor(s, h),
      overStart: (s, info) => this.onChannelOverStart(s, info),
      audio: (f) => this.onChannelAudio(f),
      overEnd: (rep, monitored) => this.onChannelOverEnd(rep, monitored),
    });
    // An over already under way when we start (a restart mid-over) goes on the air from here on.
    for (const s of this.o.monitor) {
      const h = s.holder;
      if (h && !h.self && h.lagMs !== undefined && this.st === 'idle') this.onChannelOverStart(s, h);
    }
    this.io.logBridged();
  }

  /** Unkeys and releases everything; safe to call on any exit path. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.clearAll();
    this.tx.close();
    if (this.st === 'rx') this.endRx('aborted');
    this.io.detach();
    if (this.keyedSince !== null) this.reportPtt(false, 'stopping');
    await this.o.radio.ptt.unkey().catch(() => undefined);
    this.noteUnkeyed();
    await this.io.close();
    this.rx.close();
  }

  private go(to: BridgeState, reason: string): void {
    if (to === this.st) return;
    const from = this.st;
    this.st = to;
    this.log.info({ event: 'state', radio: this.radio, from, to, reason }, `${this.radio}: ${from} → ${to} (${reason})`);
    // Checks run only in the states they guard: an idle gateway (most of its life) is never woken
    // for them, and a transmitting one once per starvation period, not per frame.
    if (to === 'tx' && !this.stopped) this.armStarvation();
    else this.timers.clear('starve');
    // Lockout ends on the floor event that leaves the channels quiet; the poll is a backstop.
    if (to === 'lockout' && !this.stopped) this.pollLockout();
    else this.timers.clear('lockout');
    this.emit('state', from, to, reason);
  }

  // ---- radio → channel ----------------------------------------------------------------------

  private onCarrier(open: boolean): void {
    this.log.info({ event: 'cos', radio: this.radio, open }, `${this.radio}: carrier ${open ? 'open' : 'closed'}`);
    this.emit('cos', open);
    if (!open) {
      this.carrierTimedOut = false;
      if (this.st === 'rx') this.endRx('done');
      this.releaseHeld();
      return;
    }
    this.tryRx();
  }

  /** Decides whether a rising carrier is forwarded. */
  private tryRx(): void {
    if (this.st === 'rx') return;
    const why = this.rxRefusal(this.clock.now());
    if (why) {
      this.log.info({ event: 'rx-ignored', radio: this.radio, reason: why }, `${this.radio}: carrier not forwarded (${why})`);
      return;
    }
    this.startRx();
  }

  /** Why a carrier rising now must not be forwarded, or null; checked in this order. */
  private rxRefusal(now: number): string | null {
    if (this.st === 'tx' || this.st === 'hang') return 'we are transmitting';
    if (this.carrierTimedOut) return 'carrier open since the rx time-out (stuck squelch?)';
    if (now < this.holdoffUntil) return 'our own transmitter just unkeyed';
    const ch = this.o.transmit;
    if (!ch) return 'receive-only radio';
    if (ch.holder && !ch.holder.self) return `channel busy: ${ch.holder.name} is talking`;
    if (now - this.lastChannelOverEnd < this.c.echoGuardMs) return 'an over just ended on the channel (echo guard)';
    return null;
  }

  private startRx(): void {
    const ch = this.o.transmit!;
    const over = ch.talk({ sampleRate: this.o.encoder.sampleRate, frameMs: this.o.frameMs, framesPerPacket: this.o.framesPerPacket });
    if ('busy' in over) {
      this.log.info({ event: 'rx-ignored', radio: this.radio, reason: 'busy' }, `${this.radio}: channel ${ch.topics.channel} busy, ${over.busy.name} is talking`);
      return;
    }
    this.rxInfo = { direction: 'radio-to-channel', channel: ch.topics.channel, stream: over.stream, talker: this.radio, since: this.clock.wall() };
    over.once('busy', (w) => {
      if (this.rx.over !== over) return;
      this.rx.stop();
      this.finishRx(`lost the floor to ${w.name}`);
    });
    this.counters.oversFromRadio++;
    this.go('rx', 'carrier open');
    this.emit('over', 'start', this.rxInfo, 'carrier open');
    this.rx.start(over, this.o.radio.cos.since);
    this.timers.set('rx', this.c.rxTimeoutSeconds * 1000, () => {
      this.log.warn({ event: 'rx-timeout', radio: this.radio }, `${this.radio}: carrier open longer than ${this.c.rxTimeoutSeconds} s, over ended; not forwarded again until it closes`);
      this.carrierTimedOut = true;
      this.endRx('timeout');
    });
  }

  /** Carrier closed (or we must stop): the unsent part is the squelch tail and is dropped. */
  private endRx(reason: 'done' | 'timeout' | 'preempted' | 'error' | 'aborted'): void {
    this.rx.stop()?.end(reason);
    this.finishRx(reason);
  }

  private finishRx(reason: string): void {
    this.timers.clear('rx');
    if (this.rxInfo) this.emit('over', 'end', this.rxInfo, reason);
    this.rxInfo = null;
    if (this.st === 'rx') this.go('idle', `radio over ended (${reason})`);
  }

  // ---- channel → radio ----------------------------------------------------------------------

  /**
   * The floor changed hands. The radio keys only when the holder's first decodable audio is here
   * (the session's `audible`), not at its START: a START or a packet that does not decode is no
   * reason to transmit. Keying on arrival, a jitter buffer before that audio plays, still lets the
   * TX delay run out meanwhile.
   */
  private onFloor(s: ChannelSession, h: TalkerInfo | null): void {
    if (this.st === 'lockout') this.checkLockout();
    // An over that played has ended (overEnd) before the floor moves on. One that leaves it with
    // no audio played (a tap on the button) has no overEnd: it ends here, not at starvation.
    if (this.st === 'tx' && this.onAir?.session === s && h?.stream !== this.onAir.talker.stream) this.endTx('over ended before any audio');
  }

  private onChannelOverStart(s: ChannelSession, info: TalkerInfo): void {
    // Each over comes here twice: when its first audio arrives and when that audio starts to play.
    if (info.self || info.stream === this.onAir?.talker.stream || info.stream === this.held?.info.stream || this.refusals.has(info.stream)) return;
    const desc = `${info.name} on ${s.topics.channel}`;
    const refused = this.refusals.check(info, desc, this.clock.now());
    if (refused) {
      if (refused.stale) this.counters.refusedStale++;
      this.skip(info.stream, refused.why);
      return;
    }
    if (this.st === 'lockout') {
      this.skip(info.stream, `locked out after a time-out: ${desc} not transmitted`);
      return;
    }
    // Half duplex: a radio that hears a carrier is receiving, forwarded or not.
    if (this.st === 'rx' || (this.st === 'idle' && this.o.radio.cos.carrier)) {
      if (this.c.busyPolicy === 'preempt') {
        if (this.st === 'rx') this.endRx('preempted');
      } else if (this.c.busyPolicy === 'wait' && !this.held) {
        this.held = new HeldOver(s, info, this.o.encoder.sampleRate);
        this.log.info({ event: 'tx-held', radio: this.radio, stream: info.stream }, `${this.radio}: radio is receiving: ${desc} held until it is quiet`);
        return;
      } else {
        this.counters.refusedBusy++;
        this.skip(info.stream, `radio is receiving: ${desc} not transmitted`);
        return;
      }
    }
    if (this.st === 'tx') {
      this.skip(info.stream, `already transmitting another over: ${desc} not transmitted`);
      return;
    }
    this.startTx(s, info);
  }

  /** The radio is quiet: transmit the held over, from its start, then whatever of it is still live. */
  private releaseHeld(): void {
    const h = this.held;
    if (!h || this.st !== 'idle') return;
    this.held = null;
    if (h.empty && h.ended) return;
    this.startTx(h.session, h.info);
    // Starvation counts from the end of what is already queued.
    this.lastValid = this.tx.startAt + h.playInto(this.tx);
    if (h.ended) this.endTx('held over played');
  }

  private skip(stream: string, why: string): void {
    this.refusals.add(stream);
    this.log.info({ event: 'tx-skipped', radio: this.radio, stream, reason: why }, `${this.radio}: ${why}`);
  }

  private startTx(s: ChannelSession, info: TalkerInfo): void {
    const now = this.clock.now();
    const wasHang = this.st === 'hang';
    this.timers.clear('hang');
    this.onAir = { session: s, talker: info, info: { direction: 'channel-to-radio', channel: s.topics.channel, stream: info.stream, talker: info.name, since: this.clock.wall() } };
    // Keyed on the first audio's arrival, that audio is still a jitter buffer from playing.
    this.lastValid = now + FIRST_AUDIO_GRACE_MS;
    this.counters.oversToRadio++;
    this.go('tx', `over from ${info.name} on ${s.topics.channel}`);
    this.emit('over', 'start', this.onAir.info, 'over started');
    if (wasHang && this.o.radio.ptt.keyed) {
      this.tx.begin(now);
      return;
    }
    this.tx.begin(now + this.c.txDelayMs);
    this.key(`over ${info.stream} from ${info.name} on ${s.topics.channel}`);
  }

  private key(reason: string): void {
    if (this.keyedSince === null) {
      this.keyedSince = this.clock.now();
      if (this.c.timeoutSeconds > 0) this.timers.set('tot', this.c.timeoutSeconds * 1000, () => this.timeOut());
    }
    this.reportPtt(true, reason);
    this.io.key(() => this.abortTx('cannot key'));
  }

  private unkey(reason: string): void {
    this.timers.clear('hang');
    const wasKeyed = this.keyedSince !== null;
    this.io.unkey();
    this.noteUnkeyed();
    if (wasKeyed) this.reportPtt(false, reason);
    this.holdoffUntil = this.clock.now() + this.c.cosHoldoffMs;
    // A carrier still up once the hold-off is over is someone else on the frequency.
    this.timers.after(this.c.cosHoldoffMs + 5, () => {
      if (!this.stopped && this.st === 'idle' && this.o.radio.cos.carrier) this.tryRx();
    });
  }

  private reportPtt(on: boolean, reason: string): void {
    this.log.info({ event: 'ptt', radio: this.radio, on, reason }, `${this.radio}: PTT ${on ? 'on' : 'off'} (${reason})`);
    this.emit('ptt', on, reason);
  }

  private noteUnkeyed(): void {
    if (this.keyedSince !== null) this.counters.keyedSeconds += (this.clock.now() - this.keyedSince) / 1000;
    this.keyedSince = null;
    this.timers.clear('tot');
  }

  private onChannelAudio(f: AudioFrame): void {
    if (this.held && f.stream === this.held.info.stream) {
      if (!this.held.add(f, this.c.waitMaxSeconds)) {
        this.held = null;
        this.counters.refusedBusy++;
        this.skip(f.stream, `held over longer than ${this.c.waitMaxSeconds} s: dropped`);
      }
      return;
    }
    if (f.stream !== this.onAir?.talker.stream || this.st !== 'tx') return;
    // Audio held for the TX delay is valid until it has gone out.
    if (!f.concealed) this.lastValid = Math.max(this.clock.now(), this.tx.startAt);
    // Playout runs once per packet, concealing frame by frame when packets are late, until the over
    // ends: its ticks are the PTT guard's heartbeat meanwhile (endTx hands it back to the timer).
    this.o.radio.ptt.alive?.(f.packetMs);
    this.tx.play(f.pcm, f.sampleRate);
  }

  private onChannelOverEnd(rep: OverReport, monitored: boolean): void {
    if (!rep.self) this.lastChannelOverEnd = this.clock.now();
    if (this.held?.info.stream === rep.stream) this.held.ended = true;
    if (monitored && rep.stream === this.onAir?.talker.stream) this.endTx(`over ended (${rep.reason})`);
  }

  private endTx(reason: string): void {
    if (this.st !== 'tx') return;
    // Still keyed, with no more playout ticks: until the audio held for the TX delay has gone out,
    // then through the hang time and its tones.
    this.o.radio.ptt.alive?.(null);
    if (this.tx.holding) {
      // Audio still held for the TX delay: the over ends once it has gone out. Its end comes twice
      // (overEnd, then the floor): the first reason stands.
      if (!this.timers.has('txEnd')) this.timers.set('txEnd', Math.max(0, this.tx.startAt - this.clock.now()) + 1, () => this.endTx(reason));
      return;
    }
    this.closeTxOver(reason);
    this.go('hang', reason);
    // Courtesy tone and station ID go out during the hang, before we unkey.
    let extraMs = 0;
    for (const pcm of this.extras.due(this.clock.now())) extraMs += this.tx.tone(pcm);
    const drained = this.o.radio.output.drain().catch(() => undefined);
    this.timers.set('hang', this.c.hangMs + extraMs, () => {
      void drained.then(() => {
        if (this.st !== 'hang') return;
        this.unkey('hang time over');
        this.go('idle', 'hang time over');
      });
    });
  }

  /** The over on the air is done with: forgotten, and reported if there was one. */
  private closeTxOver(reason: string): void {
    this.timers.clear('txEnd');
    const info = this.onAir?.info;
    this.onAir = null;
    if (info) this.emit('over', 'end', info, reason);
  }

  /** Unkey now, without hang: starvation, device loss, PTT fault, time-out. */
  private abortTx(reason: string, next: BridgeState = 'idle'): void {
    if (this.onAir) this.skip(this.onAir.talker.stream, reason);
    this.tx.drop();
    this.closeTxOver(reason);
    this.unkey(reason);
    if (this.st !== 'lockout') this.go(next, reason);
  }

  private timeOut(): void {
    this.counters.timeouts++;
    const secs = this.c.timeoutSeconds;
    this.log.warn({ event: 'time-out', radio: this.radio, seconds: secs }, `${this.radio}: transmitted ${secs} s, time-out: unkeyed and locked out until the channel is quiet`);
    this.abortTx(`time-out after ${secs} s`, 'lockout');
    for (const s of this.o.monitor) s.notice('timeout', `${this.radio}: transmitter timed out after ${secs} s; locked out until the channel is quiet`);
  }

  /** Due when the last valid audio is `starvationMs` old; valid audio since then re-arms it. */
  private armStarvation(): void {
    const wait = this.lastValid + this.c.starvationMs - this.clock.now();
    this.timers.set('starve', Math.max(0, Math.ceil(wait)) + 1, () => this.checkStarvation());
  }

  private checkStarvation(): void {
    if (this.st !== 'tx' || this.stopped) return;
    const silent = this.clock.now() - this.lastValid;
    if (silent <= this.c.starvationMs) return this.armStarvation();
    this.counters.starvations++;
    if (this.onAir) this.refusals.starvedBy(this.onAir.talker.sender, this.clock.now());
    this.log.warn({ event: 'starvation', radio: this.radio, ms: Math.round(silent) }, `${this.radio}: no audio for ${Math.round(silent)} ms, unkeyed`);
    this.abortTx('no audio (starvation)');
  }

  private pollLockout(): void {
    if (this.timers.has('lockout')) return;
    this.timers.set('lockout', 500, () => {
      this.checkLockout();
      if (this.st === 'lockout' && !this.stopped) this.pollLockout();
    });
  }

  private checkLockout(): void {
    if (this.st === 'lockout' && this.o.monitor.every((s) => !s.holder || s.holder.self)) this.go('idle', 'channel quiet after time-out');
  }
}
