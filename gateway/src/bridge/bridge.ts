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
import { Emitter } from '../core/emitter.js';
import { ResampleToFloat } from '../audio/resample.js';
import type { FrameEncoder } from '../codec/codec.js';
import type { AudioFrame, ChannelSession, OutgoingOver, OverReport, TalkerInfo } from '../channel/session.js';
import type { AudioIn, AudioOut, CarrierDetect, Ptt } from '../radio/types.js';
import { type Stage, chain, toFloat, toInt16, toInt16Sample } from '../dsp/stage.js';
import { dcBlock, deemphasis, highpass } from '../dsp/filters.js';
import { agc, AGC_DEFAULTS, limiter } from '../dsp/dynamics.js';
import { courtesyTone, cw } from '../dsp/tones.js';
import { readWav } from '../audio/wav.js';
import { resampleAll } from '../audio/resample.js';
import type { BridgeConfig } from './schema.js';
import type { BridgeCounters, BridgeEvents, BridgeState, BridgeStatus, BridgeView, OverInfo } from './types.js';

/**
 * How much longer than starvationMs an over's first frame may take to play after its first audio
 * arrived (ms): the jitter buffer's largest default delay. The radio keys only once decodable audio
 * is here, so this is all the grace a new over needs.
 */
const FIRST_AUDIO_GRACE_MS = 200;
/**
 * After a talker's over starved the transmitter (audio that stopped, or never decoded), that
 * talker's next over within this long is not transmitted (ms): a sender whose overs bring a packet
 * of audio and then nothing must not key the radio over and over.
 */
const STARVED_HOLDOFF_MS = 3000;
/**
 * Capture kept, unprocessed, while no over is being sent (ms): the start of the next over is in
 * it (the carrier is announced a debounce after it rose), and running this much through the
 * receive filters first settles them. Idle, the receive path costs a copy, not the filter chain.
 */
const PRE_ROLL_KEEP_MS = 120;
/** Sent from before the carrier's edge: the carrier input's own delay (ms). */
const PRE_ROLL_MARGIN_MS = 5;

/**
 * How much audio the bridge asks a radio's sound card to deliver per read: a whole packet (or the
 * largest whole-frame part of one up to 60 ms). A packet leaves only when its last frame has been
 * captured, so reading it in one go adds no delay; at the default two 20 ms frames per packet it
 * halves the wake-ups of the sending side, and the work each wake-up costs around the audio itself
 * (measured in docs/operations.md). Longer reads would only coarsen VOX.
 */
export function capturePeriodMs(frameMs: number, framesPerPacket: number): number {
  let k = framesPerPacket;
  while (k > 1 && (framesPerPacket % k !== 0 || frameMs * k > 60)) k--;
  return frameMs * k;
}

export interface RadioIo {
  name: string;
  ptt: Ptt;
  cos: CarrierDetect;
  input: AudioIn | null;
  output: AudioOut;
}

export interface BridgeOptions {
  radio: RadioIo;
  /** Where overs heard on the radio go; null for a receive-only gateway. */
  transmit: ChannelSession | null;
  /** Channels whose overs are transmitted on the radio. */
  monitor: ChannelSession[];
  /** Encoder for the radio → channel path; its rate and frame size are the channel's. */
  encoder: FrameEncoder;
  frameMs: number;
  framesPerPacket: number;
  config: BridgeConfig;
  log: Logger;
}

export class Bridge extends Emitter<BridgeEvents> implements BridgeView {
  readonly radio: string;
  readonly counters: BridgeCounters = { oversFromRadio: 0, oversToRadio: 0, keyedSeconds: 0, timeouts: 0, starvations: 0, refusedBusy: 0, refusedStale: 0, pttFaults: 0 };
  private st: BridgeState = 'idle';
  private readonly c: BridgeConfig;
  private readonly log: Logger;
  private readonly offs: Array<() => void> = [];
  private stopped = false;

  // radio → channel
  private readonly rate: number;
  private readonly frame: number;
  /** Receive path: the card's rate to the codec's, and the frame being filled (both reused). */
  private readonly rxIn: ResampleToFloat;
  private readonly rxFrame: Int16Array;
  private rxFill = 0;
  private readonly rxChain: Stage;
  /** The last PRE_ROLL_KEEP_MS of capture while idle (a ring at the card's rate). */
  private readonly ring: Int16Array;
  private ringPos = 0;
  private ringFill = 0;
  /** When the newest capture block arrived: about when its last sample was captured. */
  private lastBlockAt = 0;
  private readonly tail: Int16Array[] = [];
  private encoded: Uint8Array[] = [];
  private outOver: OutgoingOver | null = null;
  private rxInfo: OverInfo | null = null;
  private rxTimer: NodeJS.Timeout | null = null;

  // channel → radio
  private txStream: string | null = null;
  private txInfo: OverInfo | null = null;
  private txSession: ChannelSession | null = null;
  /** From the rate the channel's audio arrives at (the codec's, or the card's when decoded to it). */
  private txIn: ResampleToFloat | null = null;
  private readonly txChain: Stage;
  private txStartAt = 0;
  private txQueue: Int16Array[] = [];
  private txFlushTimer: NodeJS.Timeout | null = null;
  private lastValid = 0;
  private keyedSince: number | null = null;
  private totTimer: NodeJS.Timeout | null = null;
  private hangTimer: NodeJS.Timeout | null = null;
  private starveTimer: NodeJS.Timeout | null = null;
  private lockoutPoll: NodeJS.Timeout | null = null;
  private holdoffUntil = 0;
  private lastChannelOverEnd = -Infinity;
  private lastId = -Infinity;
  private lastAnnouncement = -Infinity;
  private announcement: Float32Array | null = null;
  private readonly skipped = new Set<string>();
  /** Talkers whose last over starved the transmitter, and when (bounded like skipped). */
  private readonly starved = new Map<string, number>();
  private txSender: string | null = null;
  /** busyPolicy "wait": a network over held while the radio receives. */
  private held: { session: ChannelSession; info: TalkerInfo; pcm: Int16Array[]; rate: number; samples: number; ended: boolean } | null = null;

  constructor(private readonly o: BridgeOptions) {
    super();
    this.radio = o.radio.name;
    this.c = o.config;
    this.log = o.log;
    this.onListenerError = (err, event) => this.log.error({ err: String(err), event }, 'bridge listener failed');
    this.rate = o.encoder.sampleRate;
    this.frame = o.encoder.frameSamples;
    const rate = this.rate;
    const inRate = o.radio.input?.sampleRate ?? rate;
    this.rxIn = new ResampleToFloat(inRate, rate);
    this.rxFrame = new Int16Array(this.frame);
    this.ring = new Int16Array(Math.ceil((inRate * PRE_ROLL_KEEP_MS) / 1000));
    const rx: Stage[] = [dcBlock(rate)];
    if (this.c.rxAudio.highpassHz > 0) rx.push(highpass(rate, this.c.rxAudio.highpassHz));
    if (this.c.rxAudio.deemphasis) rx.push(deemphasis(rate));
    if (this.c.rxAudio.agc) rx.push(agc(rate, { ...AGC_DEFAULTS, targetDb: this.c.rxAudio.targetDb }));
    rx.push(limiter(rate, { ceilingDb: -1, releaseMs: 80 }));
    this.rxChain = chain(rx);
    const outRate = o.radio.output.sampleRate;
    this.txChain = limiter(outRate, { ceilingDb: this.c.txAudio.limiterDb, releaseMs: 80 });
  }

  get state(): BridgeState {
    return this.st;
  }

  status(): BridgeStatus {
    const r = this.o.radio;
    return {
      radio: this.radio,
      state: this.st,
      ptt: r.ptt.keyed,
      cos: r.cos.carrier,
      over: this.txInfo ?? this.rxInfo,
      rxLevels: r.input ? r.input.levels() : null,
      txLevels: r.output.levels(),
      audioOk: r.output.state === 'running' && (!r.input || r.input.state === 'running'),
    };
  }

  async start(): Promise<void> {
    const r = this.o.radio;
    if (this.c.announcement.file) {
      // Read now, so a missing or broken file stops the start with its name, not a later over.
      const a = await readWav(this.c.announcement.file);
      this.announcement = toFloat(resampleAll(a.samples, a.sampleRate, r.output.sampleRate));
    }
    // PTT first, idle, before anything could want to key it.
    await r.ptt.open();
    this.offs.push(
      r.ptt.on('fault', (err, unkeyed) => {
        this.counters.pttFaults++;
        this.log.error({ event: 'ptt-fault', radio: this.radio, err: err.message, unkeyed }, `PTT fault: ${err.message}`);
        if (this.st === 'tx' || this.st === 'hang') this.abortTx('ptt fault');
      }),
      r.cos.on('carrier', (open) => this.onCarrier(open)),
      r.cos.on('fault', (err) => this.log.error({ event: 'cos-fault', radio: this.radio, err: err.message }, `carrier detect fault: ${err.message}`)),
      r.output.on('state', (state, detail) => {
        this.log.warn({ event: 'audio-out', radio: this.radio, state, detail }, `audio output ${state}: ${detail}`);
        if (state !== 'running' && (this.st === 'tx' || this.st === 'hang')) this.abortTx('audio output lost');
      }),
    );
    if (r.input) {
      this.offs.push(
        r.input.on('data', (pcm) => this.onInput(pcm)),
        r.input.on('state', (state, detail) => {
          this.log.warn({ event: 'audio-in', radio: this.radio, state, detail }, `audio input ${state}: ${detail}`);
          // stopped: the input ended (a file played out); waiting: the card went away.
          if (state !== 'running' && this.st === 'rx') this.endRx(state === 'stopped' ? 'done' : 'error');
        }),
      );
    }
    for (const s of new Set([...this.o.monitor, ...(this.o.transmit ? [this.o.transmit] : [])])) {
      const monitored = this.o.monitor.includes(s);
      this.offs.push(
        s.on('overEnd', (rep) => this.onChannelOverEnd(rep, monitored)),
        ...(monitored
          ? [
              s.on('floor', (h) => this.onFloor(s, h)),
              s.on('audible', (info) => this.onChannelOverStart(s, info)),
              s.on('overStart', (info) => this.onChannelOverStart(s, info)),
              s.on('audio', (f) => this.onChannelAudio(f)),
            ]
          : []),
      );
    }
    await r.cos.start();
    if (r.input) await r.input.start();
    // An over already under way when we start (a restart mid-over) goes on the air from here on.
    for (const s of this.o.monitor) {
      const h = s.holder;
      if (h && !h.self && h.lagMs !== undefined && this.st === 'idle') this.onChannelOverStart(s, h);
    }
    this.log.info(
      {
        event: 'bridge',
        radio: this.radio,
        ptt: r.ptt.description,
        cos: r.cos.description,
        input: r.input?.description ?? null,
        output: r.output.description,
        transmit: this.o.transmit?.topics.channel ?? null,
        monitor: this.o.monitor.map((m) => m.topics.channel),
      },
      `radio ${this.radio} bridged`,
    );
  }

  /** Unkeys and releases everything; safe to call on any exit path. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.lockoutPoll) clearInterval(this.lockoutPoll);
    for (const t of [this.rxTimer, this.totTimer, this.hangTimer, this.txFlushTimer, this.starveTimer]) if (t) clearTimeout(t);
    if (this.st === 'rx') this.endRx('aborted');
    for (const off of this.offs.splice(0)) off();
    const r = this.o.radio;
    if (this.keyedSince !== null) {
      this.log.info({ event: 'ptt', radio: this.radio, on: false, reason: 'stopping' }, `${this.radio}: PTT off (stopping)`);
      this.emit('ptt', false, 'stopping');
    }
    await r.ptt.unkey().catch(() => undefined);
    this.noteUnkeyed();
    await Promise.allSettled([r.ptt.close(), r.cos.close(), r.input?.close(), r.output.close()]);
    this.o.encoder.close();
  }

  private go(to: BridgeState, reason: string): void {
    if (to === this.st) return;
    const from = this.st;
    this.st = to;
    this.log.info({ event: 'state', radio: this.radio, from, to, reason }, `${this.radio}: ${from} → ${to} (${reason})`);
    // Checks run only in the states they guard: an idle gateway (most of its life) is never woken
    // for them, and a transmitting one once per starvation period, not per frame.
    if (to === 'tx' && !this.stopped) this.armStarvation();
    else if (this.starveTimer) {
      clearTimeout(this.starveTimer);
      this.starveTimer = null;
    }
    // Lockout ends on the floor event that leaves the channels quiet; the poll is a backstop.
    if (to === 'lockout' && !this.stopped) this.lockoutPoll ??= setInterval(() => this.checkLockout(), 500);
    else if (this.lockoutPoll) {
      clearInterval(this.lockoutPoll);
      this.lockoutPoll = null;
    }
    this.emit('state', from, to, reason);
  }

  // ---- radio → channel ----------------------------------------------------------------------

  private onCarrier(open: boolean): void {
    this.log.info({ event: 'cos', radio: this.radio, open }, `${this.radio}: carrier ${open ? 'open' : 'closed'}`);
    this.emit('cos', open);
    if (!open) {
      if (this.st === 'rx') this.endRx('done');
      this.releaseHeld();
      return;
    }
    this.tryRx();
  }

  /** Decides whether a rising carrier is forwarded. */
  private tryRx(): void {
    const now = performance.now();
    const why =
      this.st === 'tx' || this.st === 'hang'
        ? 'we are transmitting'
        : this.st === 'rx'
          ? null
          : now < this.holdoffUntil
            ? 'our own transmitter just unkeyed'
            : !this.o.transmit
              ? 'receive-only radio'
              : this.o.transmit.holder && !this.o.transmit.holder.self
                ? `channel busy: ${this.o.transmit.holder.name} is talking`
                : now - this.lastChannelOverEnd < this.c.echoGuardMs
                  ? 'an over just ended on the channel (echo guard)'
                  : null;
    if (this.st === 'rx') return;
    if (why) {
      this.log.info({ event: 'rx-ignored', radio: this.radio, reason: why }, `${this.radio}: carrier not forwarded (${why})`);
      return;
    }
    this.startRx();
  }

  private startRx(): void {
    const ch = this.o.transmit!;
    const over = ch.talk({ sampleRate: this.rate, frameMs: this.o.frameMs, framesPerPacket: this.o.framesPerPacket });
    if ('busy' in over) {
      this.log.info({ event: 'rx-ignored', radio: this.radio, reason: 'busy' }, `${this.radio}: channel ${ch.topics.channel} busy, ${over.busy.name} is talking`);
      return;
    }
    this.outOver = over;
    this.encoded = [];
    this.tail.length = 0;
    this.rxInfo = { direction: 'radio-to-channel', channel: ch.topics.channel, stream: over.stream, talker: this.radio, since: Date.now() };
    over.once('busy', (w) => {
      if (this.outOver !== over) return;
      this.outOver = null;
      this.finishRx(`lost the floor to ${w.name}`);
    });
    this.counters.oversFromRadio++;
    this.go('rx', 'carrier open');
    this.emit('over', 'start', this.rxInfo, 'carrier open');
    this.preRoll();
    this.rxTimer = setTimeout(() => {
      this.log.warn({ event: 'rx-timeout', radio: this.radio }, `${this.radio}: carrier open longer than ${this.c.rxTimeoutSeconds} s, over ended`);
      this.endRx('timeout');
    }, this.c.rxTimeoutSeconds * 1000);
  }

  /** Carrier closed (or we must stop): the unsent part is the squelch tail and is dropped. */
  private endRx(reason: 'done' | 'timeout' | 'preempted' | 'error' | 'aborted'): void {
    const over = this.outOver;
    this.outOver = null;
    this.encoded = [];
    this.tail.length = 0;
    over?.end(reason);
    this.finishRx(reason);
  }

  private finishRx(reason: string): void {
    if (this.rxTimer) clearTimeout(this.rxTimer);
    this.rxTimer = null;
    if (this.rxInfo) this.emit('over', 'end', this.rxInfo, reason);
    this.rxInfo = null;
    if (this.st === 'rx') this.go('idle', `radio over ended (${reason})`);
  }

  private onInput(pcm: Int16Array): void {
    this.lastBlockAt = performance.now();
    if (this.st === 'rx' && this.outOver) this.toFrames(this.rxIn.process(pcm), 0);
    else this.keep(pcm);
  }

  private keep(pcm: Int16Array): void {
    const ring = this.ring;
    let src = pcm;
    if (src.length > ring.length) src = src.subarray(src.length - ring.length);
    const first = Math.min(src.length, ring.length - this.ringPos);
    ring.set(src.subarray(0, first), this.ringPos);
    ring.set(src.subarray(first), 0);
    this.ringPos = (this.ringPos + src.length) % ring.length;
    this.ringFill = Math.min(ring.length, this.ringFill + src.length);
  }

  /**
   * The over's start, from the idle ring: everything kept goes through the receive path, so its
   * filters and AGC settle on this radio's audio, and what was captured since the carrier's edge
   * (less a margin) is sent: the debounce no longer clips the first syllable.
   */
  private preRoll(): void {
    const n = this.ringFill;
    this.rxFill = 0;
    if (n === 0) return;
    const pcm = new Int16Array(n);
    const start = (this.ringPos - n + this.ring.length) % this.ring.length;
    const first = Math.min(n, this.ring.length - start);
    pcm.set(this.ring.subarray(start, start + first), 0);
    pcm.set(this.ring.subarray(0, n - first), first);
    this.ringFill = 0;
    const edge = this.o.radio.cos.since ?? performance.now();
    const ms = Math.max(0, this.lastBlockAt - edge) + PRE_ROLL_MARGIN_MS;
    const f = this.rxIn.process(pcm);
    this.toFrames(f, Math.max(0, f.length - Math.round((ms * this.rate) / 1000)));
  }

  /** Filters a block of received audio and cuts it into frames; the first `from` samples only settle the filters. */
  private toFrames(f: Float32Array, from: number): void {
    this.rxChain.process(f);
    const frame = this.rxFrame;
    let fill = this.rxFill;
    for (let i = from; i < f.length; i++) {
      frame[fill++] = toInt16Sample(f[i]!);
      if (fill === frame.length) {
        fill = 0;
        this.onRxFrame(frame);
      }
    }
    this.rxFill = fill;
  }

  private onRxFrame(frame: Int16Array): void {
    if (this.st !== 'rx' || !this.outOver) return;
    // `frame` is the receive path's own buffer, refilled by the next read: held frames are copies.
    let pcm = frame;
    if (this.c.squelchTailMs > 0) {
      this.tail.push(frame.slice());
      if (this.tail.length * this.o.frameMs <= this.c.squelchTailMs) return;
      pcm = this.tail.shift()!;
    }
    this.encoded.push(this.o.encoder.encode(pcm));
    if (this.encoded.length === this.o.framesPerPacket) {
      this.outOver.send(this.encoded);
      this.encoded = [];
    }
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
    if (this.st === 'tx' && this.txSession === s && h?.stream !== this.txStream) this.endTx('over ended before any audio');
  }

  private onChannelOverStart(s: ChannelSession, info: TalkerInfo): void {
    // Each over comes here twice: when its first audio arrives and when that audio starts to play.
    if (info.self || info.stream === this.txStream || info.stream === this.held?.info.stream || this.skipped.has(info.stream)) return;
    const desc = `${info.name} on ${s.topics.channel}`;
    const lag = info.lagMs ?? 0;
    if (lag > this.c.maxStartLagMs) {
      this.counters.refusedStale++;
      this.skip(info.stream, `${desc} arrived ${Math.round(lag)} ms late: not transmitted`);
      return;
    }
    const starvedAt = this.starved.get(info.sender);
    if (starvedAt !== undefined && performance.now() - starvedAt < STARVED_HOLDOFF_MS) {
      this.skip(info.stream, `${desc}: this talker's last over starved the transmitter, not transmitted`);
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
        this.held = { session: s, info, pcm: [], rate: this.rate, samples: 0, ended: false };
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
    if (h.pcm.length === 0 && h.ended) return;
    this.startTx(h.session, h.info);
    for (const pcm of h.pcm) this.play(pcm, h.rate);
    // Starvation counts from the end of what is already queued.
    this.lastValid = this.txStartAt + (h.samples * 1000) / h.rate;
    if (h.ended) this.endTx('held over played');
  }

  private skip(stream: string, why: string): void {
    this.skipped.add(stream);
    if (this.skipped.size > 64) this.skipped.delete(this.skipped.values().next().value as string);
    this.log.info({ event: 'tx-skipped', radio: this.radio, stream, reason: why }, `${this.radio}: ${why}`);
  }

  private startTx(s: ChannelSession, info: TalkerInfo): void {
    const now = performance.now();
    const wasHang = this.st === 'hang';
    if (this.hangTimer) clearTimeout(this.hangTimer);
    this.hangTimer = null;
    this.txStream = info.stream;
    this.txSender = info.sender;
    this.txSession = s;
    this.txInfo = { direction: 'channel-to-radio', channel: s.topics.channel, stream: info.stream, talker: info.name, since: Date.now() };
    this.txQueue = [];
    // Keyed on the first audio's arrival, that audio is still a jitter buffer from playing.
    this.lastValid = now + FIRST_AUDIO_GRACE_MS;
    this.counters.oversToRadio++;
    this.go('tx', `over from ${info.name} on ${s.topics.channel}`);
    this.emit('over', 'start', this.txInfo, 'over started');
    if (wasHang && this.o.radio.ptt.keyed) {
      this.txStartAt = now;
      return;
    }
    this.txStartAt = now + this.c.txDelayMs;
    this.key(`over ${info.stream} from ${info.name} on ${s.topics.channel}`);
  }

  private key(reason: string): void {
    const r = this.o.radio;
    if (this.keyedSince === null) {
      this.keyedSince = performance.now();
      if (this.c.timeoutSeconds > 0) this.totTimer = setTimeout(() => this.timeOut(), this.c.timeoutSeconds * 1000);
    }
    this.log.info({ event: 'ptt', radio: this.radio, on: true, reason }, `${this.radio}: PTT on (${reason})`);
    this.emit('ptt', true, reason);
    // The output opens now (aplay's spawn), hidden behind the TX delay, not on the first audio.
    r.output.prepare?.();
    r.ptt.key().catch((err: Error) => {
      this.counters.pttFaults++;
      this.log.error({ event: 'ptt-fault', radio: this.radio, err: err.message }, `cannot key: ${err.message}`);
      this.abortTx('cannot key');
    });
  }

  private unkey(reason: string): void {
    if (this.hangTimer) clearTimeout(this.hangTimer);
    this.hangTimer = null;
    const wasKeyed = this.keyedSince !== null;
    this.o.radio.ptt.unkey().catch((err: Error) => this.log.error({ event: 'ptt-fault', radio: this.radio, err: err.message }, `cannot unkey: ${err.message}`));
    this.noteUnkeyed();
    if (wasKeyed) {
      this.log.info({ event: 'ptt', radio: this.radio, on: false, reason }, `${this.radio}: PTT off (${reason})`);
      this.emit('ptt', false, reason);
    }
    this.holdoffUntil = performance.now() + this.c.cosHoldoffMs;
    // A carrier still up once the hold-off is over is someone else on the frequency.
    setTimeout(() => {
      if (!this.stopped && this.st === 'idle' && this.o.radio.cos.carrier) this.tryRx();
    }, this.c.cosHoldoffMs + 5).unref();
  }

  private noteUnkeyed(): void {
    if (this.keyedSince !== null) this.counters.keyedSeconds += (performance.now() - this.keyedSince) / 1000;
    this.keyedSince = null;
    if (this.totTimer) clearTimeout(this.totTimer);
    this.totTimer = null;
  }

  private onChannelAudio(f: AudioFrame): void {
    const h = this.held;
    if (h && f.stream === h.info.stream) {
      h.pcm.push(f.pcm);
      h.rate = f.sampleRate;
      h.samples += f.pcm.length;
      if (h.samples > this.c.waitMaxSeconds * f.sampleRate) {
        this.held = null;
        this.counters.refusedBusy++;
        this.skip(f.stream, `held over longer than ${this.c.waitMaxSeconds} s: dropped`);
      }
      return;
    }
    if (f.stream !== this.txStream || this.st !== 'tx') return;
    // Audio held for the TX delay is valid until it has gone out.
    if (!f.concealed) this.lastValid = Math.max(performance.now(), this.txStartAt);
    // Playout runs once per packet, concealing frame by frame when packets are late, until the over
    // ends: its ticks are the PTT guard's heartbeat meanwhile (endTx hands it back to the timer).
    this.o.radio.ptt.alive?.(f.packetMs);
    this.play(f.pcm, f.sampleRate);
  }

  /** PCM to the transmitter, held back until the TX delay has passed. */
  private play(pcm: Int16Array, rate: number): void {
    const outRate = this.o.radio.output.sampleRate;
    if (this.txIn?.inRate !== rate) this.txIn = new ResampleToFloat(rate, outRate);
    const f = this.txIn.process(pcm);
    this.txChain.process(f);
    // A new block each time: the output (or the TX-delay queue) keeps it.
    const out = toInt16(f);
    const wait = this.txStartAt - performance.now();
    if (wait > 0 || this.txQueue.length) {
      this.txQueue.push(out);
      this.txFlushTimer ??= setTimeout(() => this.flushTx(), Math.max(0, wait));
      return;
    }
    this.o.radio.output.write(out);
  }

  private flushTx(): void {
    this.txFlushTimer = null;
    for (const b of this.txQueue.splice(0)) this.o.radio.output.write(b);
  }

  private onChannelOverEnd(rep: OverReport, monitored: boolean): void {
    if (!rep.self) this.lastChannelOverEnd = performance.now();
    if (this.held?.info.stream === rep.stream) this.held.ended = true;
    if (monitored && rep.stream === this.txStream) this.endTx(`over ended (${rep.reason})`);
  }

  private endTx(reason: string): void {
    if (this.st !== 'tx') return;
    // Still keyed, with no more playout ticks: until the audio held for the TX delay has gone out,
    // then through the hang time and its tones.
    this.o.radio.ptt.alive?.(null);
    if (this.txFlushTimer) {
      // Audio still held for the TX delay: the over ends once it has gone out.
      const stream = this.txStream;
      setTimeout(() => this.txStream === stream && this.endTx(reason), Math.max(0, this.txStartAt - performance.now()) + 1);
      return;
    }
    const info = this.txInfo!;
    this.txStream = null;
    this.txSession = null;
    this.txInfo = null;
    this.emit('over', 'end', info, reason);
    this.go('hang', reason);
    // Courtesy tone and station ID go out during the hang, before we unkey.
    let extraMs = 0;
    const rate = this.o.radio.output.sampleRate;
    const now = performance.now();
    const id = this.c.cwId.callsign && now - this.lastId >= this.c.cwId.intervalMinutes * 60000 ? this.c.cwId.callsign : null;
    if (this.c.courtesyTone) extraMs += this.playTone(courtesyTone(rate));
    if (this.announcement && now - this.lastAnnouncement >= this.c.announcement.intervalMinutes * 60000) {
      this.lastAnnouncement = now;
      extraMs += this.playTone(this.announcement.slice());
      this.log.info({ event: 'announcement', radio: this.radio, file: this.c.announcement.file }, `${this.radio}: announcement`);
    }
    if (id) {
      this.lastId = now;
      extraMs += this.playTone(cw(`DE ${id}`, rate, { wpm: this.c.cwId.wpm }));
      this.log.info({ event: 'station-id', radio: this.radio, callsign: id }, `${this.radio}: CW ID ${id}`);
    }
    const drained = this.o.radio.output.drain().catch(() => undefined);
    this.hangTimer = setTimeout(() => {
      this.hangTimer = null;
      void drained.then(() => {
        if (this.st !== 'hang') return;
        this.unkey('hang time over');
        this.go('idle', 'hang time over');
      });
    }, this.c.hangMs + extraMs);
  }

  private playTone(pcm: Float32Array): number {
    this.txChain.process(pcm);
    this.o.radio.output.write(toInt16(pcm));
    return (pcm.length * 1000) / this.o.radio.output.sampleRate;
  }

  /** Unkey now, without hang: starvation, device loss, PTT fault, time-out. */
  private abortTx(reason: string, next: BridgeState = 'idle'): void {
    if (this.txStream) this.skip(this.txStream, reason);
    const info = this.txInfo;
    this.txStream = null;
    this.txSession = null;
    this.txInfo = null;
    this.txQueue = [];
    if (info) this.emit('over', 'end', info, reason);
    this.unkey(reason);
    if (this.st !== 'lockout') this.go(next, reason);
  }

  private timeOut(): void {
    this.totTimer = null;
    this.counters.timeouts++;
    const secs = this.c.timeoutSeconds;
    this.log.warn({ event: 'time-out', radio: this.radio, seconds: secs }, `${this.radio}: transmitted ${secs} s, time-out: unkeyed and locked out until the channel is quiet`);
    this.abortTx(`time-out after ${secs} s`, 'lockout');
    for (const s of this.o.monitor) s.notice('timeout', `${this.radio}: transmitter timed out after ${secs} s; locked out until the channel is quiet`);
  }

  /** Due when the last valid audio is `starvationMs` old; valid audio since then re-arms it. */
  private armStarvation(): void {
    if (this.starveTimer) clearTimeout(this.starveTimer);
    const wait = this.lastValid + this.c.starvationMs - performance.now();
    this.starveTimer = setTimeout(() => this.checkStarvation(), Math.max(0, Math.ceil(wait)) + 1);
  }

  private checkStarvation(): void {
    this.starveTimer = null;
    if (this.st !== 'tx' || this.stopped) return;
    const silent = performance.now() - this.lastValid;
    if (silent <= this.c.starvationMs) return this.armStarvation();
    this.counters.starvations++;
    if (this.txSender !== null) {
      this.starved.delete(this.txSender);
      this.starved.set(this.txSender, performance.now());
      if (this.starved.size > 64) this.starved.delete(this.starved.keys().next().value as string);
    }
    this.log.warn({ event: 'starvation', radio: this.radio, ms: Math.round(silent) }, `${this.radio}: no audio for ${Math.round(silent)} ms, unkeyed`);
    this.abortTx('no audio (starvation)');
  }

  private checkLockout(): void {
    if (this.st === 'lockout' && this.o.monitor.every((s) => !s.holder || s.holder.self)) this.go('idle', 'channel quiet after time-out');
  }
}
