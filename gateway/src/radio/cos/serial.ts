/** Carrier detect on a serial status line (CTS, DSR or DCD), polled: Linux has no event for them. */
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { type PortFactory, type PortHandle, acquirePort, describeSerialError } from '../serial.js';
import { CosBase, type CosCommon } from './base.js';

export interface SerialCosOptions extends CosCommon {
  device: string;
  line: 'cts' | 'dsr' | 'dcd';
  pollMs: number;
  factory?: PortFactory;
  log?: Logger;
}

export class SerialCos extends CosBase {
  private handle: PortHandle | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private failing = false;

  constructor(private readonly o: SerialCosOptions) {
    super(`serial ${o.line.toUpperCase()} carrier detect on ${o.device}`, o, o.log);
  }

  protected async startInput(): Promise<void> {
    this.handle = await acquirePort(this.o.device, { factory: this.o.factory });
    await this.poll();
    this.pollTimer = setInterval(() => void this.poll(), this.o.pollMs);
  }

  private async poll(): Promise<void> {
    const h = this.handle;
    if (!h) return;
    try {
      const st = await h.get();
      this.failing = false;
      this.input(st[this.o.line]);
    } catch (err) {
      // Report once per outage, not every poll.
      if (!this.failing) this.inputFault(new RadioError(describeSerialError(this.o.device, err)));
      this.failing = true;
    }
  }

  protected async closeInput(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    await this.handle?.release();
    this.handle = null;
  }
}
