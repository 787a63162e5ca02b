/**
 * What one bridge is connected to: the radio's devices and the channel sessions. Their events go
 * to the state machine, and the PTT line is driven, only as the state machine decides; device
 * trouble is logged (and PTT faults counted) here, next to the device it concerns.
 */
import type { Logger } from 'pino';
import type { AudioFrame, ChannelSession, OverReport, TalkerInfo } from '../../shared/channel/session.js';
import type { AudioState } from '../radio/types.js';
import type { BridgeCounters, BridgeOptions, BridgeState, BridgeStatus, OverInfo } from './types.js';

/** The state machine's side of each event. */
export interface BridgeInputs {
  pttFault(): void;
  carrier(open: boolean): void;
  capture(pcm: Int16Array): void;
  /** The output stopped running. */
  outputLost(): void;
  /** The input stopped running: it ended (`stopped`: a file played out) or its card went away. */
  inputLost(state: AudioState): void;
  floor(s: ChannelSession, h: TalkerInfo | null): void;
  overStart(s: ChannelSession, info: TalkerInfo): void;
  audio(f: AudioFrame): void;
  overEnd(rep: OverReport, monitored: boolean): void;
}

export class BridgeIo {
  private readonly offs: Array<() => void> = [];

  constructor(
    private readonly o: BridgeOptions,
    private readonly log: Logger,
    private readonly counters: Pick<BridgeCounters, 'pttFaults'>,
  ) {}

  /** Listens before carrier detect and capture start, so that their first events are not missed. */
  async open(to: BridgeInputs): Promise<void> {
    const r = this.o.radio;
    const radio = r.name;
    // PTT first, idle, before anything could want to key it.
    await r.ptt.open();
    this.offs.push(
      r.ptt.on('fault', (err, unkeyed) => {
        this.counters.pttFaults++;
        this.log.error({ event: 'ptt-fault', radio, err: err.message, unkeyed }, `PTT fault: ${err.message}`);
        to.pttFault();
      }),
      r.cos.on('carrier', (open) => to.carrier(open)),
      r.cos.on('fault', (err) => this.log.error({ event: 'cos-fault', radio, err: err.message }, `carrier detect fault: ${err.message}`)),
      r.output.on('state', (state, detail) => {
        this.log.warn({ event: 'audio-out', radio, state, detail }, `audio output ${state}: ${detail}`);
        if (state !== 'running') to.outputLost();
      }),
    );
    if (r.input) {
      this.offs.push(
        r.input.on('data', (pcm) => to.capture(pcm)),
        r.input.on('state', (state, detail) => {
          this.log.warn({ event: 'audio-in', radio, state, detail }, `audio input ${state}: ${detail}`);
          if (state !== 'running') to.inputLost(state);
        }),
      );
    }
    for (const s of new Set([...this.o.monitor, ...(this.o.transmit ? [this.o.transmit] : [])])) {
      const monitored = this.o.monitor.includes(s);
      this.offs.push(s.on('overEnd', (rep) => to.overEnd(rep, monitored)));
      if (!monitored) continue;
      this.offs.push(
        s.on('floor', (h) => to.floor(s, h)),
        s.on('audible', (info) => to.overStart(s, info)),
        s.on('overStart', (info) => to.overStart(s, info)),
        s.on('audio', (f) => to.audio(f)),
      );
    }
    await r.cos.start();
    if (r.input) await r.input.start();
  }

  /** Keys the transmitter; `failed` runs if it cannot be keyed. */
  key(failed: () => void): void {
    const r = this.o.radio;
    // The output opens now (aplay's spawn), hidden behind the TX delay, not on the first audio.
    r.output.prepare?.();
    r.ptt.key().catch((err: Error) => {
      this.counters.pttFaults++;
      this.log.error({ event: 'ptt-fault', radio: r.name, err: err.message }, `cannot key: ${err.message}`);
      failed();
    });
  }

  unkey(): void {
    const radio = this.o.radio.name;
    this.o.radio.ptt.unkey().catch((err: Error) => this.log.error({ event: 'ptt-fault', radio, err: err.message }, `cannot unkey: ${err.message}`));
  }

  logBridged(): void {
    const r = this.o.radio;
    this.log.info(
      {
        event: 'bridge',
        radio: r.name,
        ptt: r.ptt.description,
        cos: r.cos.description,
        input: r.input?.description ?? null,
        output: r.output.description,
        transmit: this.o.transmit?.topics.channel ?? null,
        monitor: this.o.monitor.map((m) => m.topics.channel),
      },
      `radio ${r.name} bridged`,
    );
  }

  /** Nothing reaches the state machine any more. */
  detach(): void {
    for (const off of this.offs.splice(0)) off();
  }

  /** Releases every device; unkeying before that is the state machine's job. */
  async close(): Promise<void> {
    const r = this.o.radio;
    await Promise.allSettled([r.ptt.close(), r.cos.close(), r.input?.close(), r.output.close()]);
  }

  status(state: BridgeState, over: OverInfo | null): BridgeStatus {
    const r = this.o.radio;
    return {
      radio: r.name,
      state,
      ptt: r.ptt.keyed,
      cos: r.cos.carrier,
      over,
      rxLevels: r.input ? r.input.levels() : null,
      txLevels: r.output.levels(),
      audioOk: r.output.state === 'running' && (!r.input || r.input.state === 'running'),
    };
  }
}
