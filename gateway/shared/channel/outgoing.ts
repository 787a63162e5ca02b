/** The over we are sending: packets numbered in order, START/END on the control topic, lost to a better claim. */
import { Emitter } from '../core/emitter.js';
import type { EndReason } from './control.js';
import { Codec, Flag } from './packet.js';
import type { TalkerInfo, Wire } from './types.js';

export type OutgoingEvents = { busy: [winner: TalkerInfo]; end: [reason: EndReason, packets: number] };

/** An over we are sending. Feed it exactly framesPerPacket encoded frames per call. */
export class OutgoingOver extends Emitter<OutgoingEvents> {
  private seq = 0;
  private ended = false;
  readonly stream: string;

  constructor(
    private readonly wire: Wire,
    readonly info: TalkerInfo,
    readonly sampleRate: number,
    readonly frameMs: number,
    readonly framesPerPacket: number,
    private readonly onDone: () => void,
  ) {
    super();
    this.stream = info.stream;
  }

  get active(): boolean {
    return !this.ended;
  }

  get packets(): number {
    return this.seq;
  }

  /** Wall-clock capture time of packet `seq`'s first sample. */
  timestampOf(seq: number): number {
    return this.info.t + Math.round(seq * this.frameMs * this.framesPerPacket);
  }

  /** Publishes one packet; returns false once the over has ended (floor lost or ended). */
  send(frames: readonly Uint8Array[], last = false): boolean {
    if (this.ended) return false;
    if (frames.length !== this.framesPerPacket) throw new RangeError(`an over carries ${this.framesPerPacket} frames per packet, got ${frames.length}`);
    this.wire.audio(
      this.info.sender,
      {
        flags: (this.seq === 0 ? Flag.START : 0) | (last ? Flag.END : 0),
        codec: Codec.OPUS,
        sampleRate: this.sampleRate,
        frameMs: this.frameMs,
        streamId: this.stream,
        seq: this.seq,
        timestamp: this.timestampOf(this.seq),
      },
      frames,
    );
    this.seq++;
    if (last) this.end('done');
    return true;
  }

  end(reason: EndReason = 'done'): void {
    if (this.ended) return;
    this.ended = true;
    this.wire.control(this.info.sender, { v: 1, type: 'end', stream: this.stream, reason, packets: this.seq });
    this.onDone();
    this.emit('end', reason, this.seq);
  }

  /** Called by the session when a better claim holds the floor. */
  lose(winner: TalkerInfo): void {
    if (this.ended) return;
    this.end('busy');
    this.emit('busy', winner);
  }
}
