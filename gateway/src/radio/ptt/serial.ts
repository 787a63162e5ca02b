/**
 * PTT on a serial control line (Digirig, FTDI/CP2102 cables, AIOC's serial port). Opening a tty
 * raises DTR and RTS on most adapters, which keys many radios, so both lines are driven to their
 * idle levels in the same tick the port opens.
 */
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { type ModemLines, type PortFactory, type PortHandle, acquirePort } from '../serial.js';
import { PttBase } from './base.js';

export interface SerialPttOptions {
  device: string;
  line: 'rts' | 'dtr';
  /** Keyed = line deasserted. Note: then a crash (the kernel drops both lines) keys the radio. */
  activeLow: boolean;
  /** Level held on the other line, keyed or not (AIOC: RTS off). */
  other: boolean;
  factory?: PortFactory;
  log?: Logger;
}

export class SerialPtt extends PttBase {
  private handle: PortHandle | null = null;

  constructor(private readonly o: SerialPttOptions) {
    super(`serial ${o.line.toUpperCase()} PTT on ${o.device}`, o.log);
  }

  /** Line levels for a state: exposed so tests and `ptt-test` can say exactly what is driven. */
  lines(keyed: boolean): Required<ModemLines> {
    const otherName = this.o.line === 'rts' ? 'dtr' : 'rts';
    return { [this.o.line]: keyed !== this.o.activeLow, [otherName]: this.o.other } as Required<ModemLines>;
  }

  protected async openLine(): Promise<void> {
    this.handle = await acquirePort(this.o.device, { factory: this.o.factory });
    await this.handle.set(this.lines(false));
    this.handle.port.on('close', this.onClose);
  }

  private onClose = (err?: Error & { disconnected?: boolean }) => {
    if (!err?.disconnected) return;
    this.handle = null;
    // An unplugged USB adapter stops driving its lines; with the default (active-high) wiring that is unkeyed.
    this.lineFault(new RadioError(`${this.o.device}: serial port disconnected`), !this.o.activeLow);
  };

  protected async setLine(keyed: boolean): Promise<void> {
    if (!this.handle) throw new RadioError(`${this.o.device}: serial port is gone`);
    await this.handle.set(this.lines(keyed));
  }

  protected async closeLine(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (!h) return;
    h.port.off('close', this.onClose);
    await h.release();
  }
}
