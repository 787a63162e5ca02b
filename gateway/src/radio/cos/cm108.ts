/**
 * Carrier detect on a CM108-family HID input. Reading /dev/hidrawN yields the chip's input reports;
 * the first byte carries the "button" inputs, and URI-style interfaces wire COS to Volume Down
 * (bit 1) and CTCSS decode to Volume Up (bit 0), as AllStarLink's chan_simpleusb expects.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { CosBase, type CosCommon } from './base.js';

export interface Cm108CosOptions extends CosCommon {
  device: string;
  /** Bit in the report byte: 1 = Volume Down (COS), 0 = Volume Up (CTCSS). */
  bit: number;
  byte: number;
  reportBytes: number;
  log?: Logger;
}

export function cm108InputBit(report: Uint8Array, byte: number, bit: number): boolean {
  return ((report[byte] ?? 0) & (1 << bit)) !== 0;
}

export class Cm108Cos extends CosBase {
  private stream: ReadStream | null = null;
  private rest = Buffer.alloc(0);

  constructor(private readonly o: Cm108CosOptions) {
    super(`CM108 input bit ${o.bit} carrier detect on ${o.device}`, o, o.log);
    if (o.byte >= o.reportBytes) throw new RadioError(`CM108 input byte ${o.byte} is beyond the ${o.reportBytes}-byte report`);
  }

  protected startInput(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = createReadStream(this.o.device, { highWaterMark: 64 });
      this.stream = s;
      s.once('open', () => resolve());
      s.on('data', (d) => this.onData(d as Buffer));
      s.on('error', (err: NodeJS.ErrnoException) => {
        const msg = err.code === 'ENOENT' || err.code === 'ENODEV' || err.code === 'EIO' ? `${this.o.device}: the USB interface is gone (unplugged?)` : err.code === 'EACCES' ? `${this.o.device}: permission denied (install the udev rule from docs/hardware.md)` : `${this.o.device}: ${err.message}`;
        if (this.stream !== s) return;
        this.stream = null;
        reject(new RadioError(msg));
        this.inputFault(new RadioError(msg));
      });
      s.on('end', () => {
        if (this.stream === s && !this.closed) this.inputFault(new RadioError(`${this.o.device}: input ended`));
      });
    });
  }

  private onData(d: Buffer): void {
    // hidraw returns one report per read; a FIFO or a slow reader may join several.
    let buf = this.rest.length ? Buffer.concat([this.rest, d]) : d;
    const n = this.o.reportBytes;
    while (buf.length >= n) {
      this.input(cm108InputBit(buf.subarray(0, n), this.o.byte, this.o.bit));
      buf = buf.subarray(n);
    }
    this.rest = Buffer.from(buf);
  }

  protected async closeInput(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    s?.destroy();
  }
}
