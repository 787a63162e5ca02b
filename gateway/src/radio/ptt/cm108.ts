/**
 * PTT on a CM108/CM119-family USB sound card GPIO (URI, DMK, AIOC, home-built), through the
 * card's HID interface. The chip expects a 5-byte output report: report id 0, then 0, the GPIO data
 * bits, the direction mask (1 = output), 0. GPIOn is bit n-1; PTT is GPIO3 on nearly all of them.
 */
import { type FileHandle, open, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { PttBase } from './base.js';
import { PttGuard, sh } from './guard.js';

export function cm108Report(gpio: number, high: boolean): Uint8Array {
  const mask = 1 << (gpio - 1);
  return Uint8Array.of(0, 0, high ? mask : 0, mask, 0);
}

export interface Cm108PttOptions {
  device: string;
  /** 1–8; 3 on URI/DMK/AIOC (AIOC's second PTT is 4). */
  gpio: number;
  activeLow: boolean;
  /** 0 disables the guard process. */
  watchdogMs: number;
  bash?: string;
  /** How often to check that the card is still plugged in. */
  presenceMs?: number;
  log?: Logger;
}

function hidError(device: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENODEV' || code === 'ESHUTDOWN' || code === 'EIO') return `${device}: the USB interface is gone (unplugged?)`;
  if (code === 'EACCES') return `${device}: permission denied (install the udev rule from docs/hardware.md)`;
  if (code === 'EPIPE') return `${device}: the device refused the report (not a CM108-style GPIO?)`;
  return `${device}: ${(err as Error).message}`;
}

export class Cm108Ptt extends PttBase {
  private fd: FileHandle | null = null;
  private presence: NodeJS.Timeout | null = null;

  constructor(private readonly o: Cm108PttOptions) {
    super(`CM108 GPIO${o.gpio} PTT on ${o.device}`, o.log);
    if (!Number.isInteger(o.gpio) || o.gpio < 1 || o.gpio > 8) throw new RadioError(`CM108 GPIO must be 1-8, got ${o.gpio}`);
  }

  report(keyed: boolean): Uint8Array {
    return cm108Report(this.o.gpio, keyed !== this.o.activeLow);
  }

  protected async openLine(): Promise<void> {
    try {
      this.fd = await open(this.o.device, 'w');
    } catch (err) {
      throw new RadioError(hidError(this.o.device, err));
    }
    await this.write(false);
    if (this.o.watchdogMs > 0) {
      const idle = this.report(false);
      const printf = `printf '${[...idle].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('')}' >> ${sh(this.o.device)}`;
      this.guard = new PttGuard({
        idle: printf,
        watchdogMs: this.o.watchdogMs,
        log: this.log,
        ...(this.o.bash ? { bash: this.o.bash } : {}),
        onWatchdog: (unkeyed) => this.lineFault(new RadioError(`${this.o.device}: PTT watchdog: no heartbeat from talkbridge for ${this.o.watchdogMs} ms, unkeyed by the guard`), unkeyed),
        onLost: (why, unkeyed) => this.lineFault(new RadioError(`${this.o.device}: ${why}`), unkeyed),
      });
      await this.guard.start();
    }
    this.presence = setInterval(() => void this.checkPresent(), this.o.presenceMs ?? 1000);
    this.presence.unref();
  }

  private async checkPresent(): Promise<void> {
    if (!this.fd) return;
    try {
      await stat(this.o.device);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
      await this.dropFd();
      // The card lost power with the bus: its GPIO no longer drives the PTT transistor.
      this.lineFault(new RadioError(hidError(this.o.device, err)), true);
    }
  }

  private async write(keyed: boolean): Promise<void> {
    if (!this.fd) throw new RadioError(`${this.o.device}: the USB interface is gone (unplugged?)`);
    const r = this.report(keyed);
    let n: number;
    try {
      n = (await this.fd.write(r, 0, r.length, null)).bytesWritten;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENODEV' || code === 'ESHUTDOWN' || code === 'EIO') await this.dropFd();
      throw new RadioError(hidError(this.o.device, err));
    }
    if (n !== r.length) throw new RadioError(`${this.o.device}: short write (${n} of ${r.length} bytes)`);
  }

  protected async setLine(keyed: boolean): Promise<void> {
    await this.write(keyed);
    if (keyed) await this.guard?.key();
    else await this.guard?.unkey();
  }

  private async dropFd(): Promise<void> {
    const fd = this.fd;
    this.fd = null;
    await fd?.close().catch(() => undefined);
  }

  protected async closeLine(): Promise<void> {
    if (this.presence) clearInterval(this.presence);
    this.presence = null;
    await this.dropFd();
    await this.guard?.close();
    this.guard = null;
  }
}
