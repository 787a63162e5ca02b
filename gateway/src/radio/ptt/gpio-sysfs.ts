/**
 * PTT on a Raspberry Pi GPIO through sysfs (`onoff`), for kernels that still have it. The sysfs
 * number is the chip's base plus the header GPIO, base read from the gpiochip base and label files. The line
 * is exported straight into its idle level ('high'/'low' direction), so it never glitches keyed.
 */
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { sysfsNumber } from '../gpio.js';
import { PttBase } from './base.js';
import { PttGuard, sh } from './guard.js';

/** The slice of onoff's Gpio we use; injectable so tests need no /sys. */
export interface GpioLike {
  writeSync(v: 0 | 1): void;
  readSync(): 0 | 1;
  watch(cb: (err: Error | null | undefined, value: 0 | 1) => void): void;
  unwatchAll(): void;
  unexport(): void;
}
export type GpioCtor = new (n: number, direction: 'in' | 'out' | 'high' | 'low', edge?: 'none' | 'rising' | 'falling' | 'both', options?: { debounceTimeout?: number }) => GpioLike;

/**
 * onoff is an optional dependency: it (through epoll) has no prebuilt binaries, so npm compiles it,
 * and on a Pi with no compiler `npm ci` skips it rather than failing the whole install. Only
 * `api: sysfs` needs it; the default libgpiod path (`api: chardev`) needs no native module.
 */
export async function loadOnoff(): Promise<GpioCtor> {
  // A name tsc does not resolve: the build must not need onoff's types either.
  const onoff: string = 'onoff';
  try {
    return ((await import(onoff)) as { Gpio: unknown }).Gpio as GpioCtor;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
    const why = missing ? 'the onoff module is not installed (npm skips it where it cannot be compiled)' : `cannot load onoff: ${(err as Error).message}`;
    throw new RadioError(
      `sysfs GPIO (api: sysfs): ${why}. Use api: chardev (libgpiod tools, the default: apt-get install gpiod), or install a compiler and build it: apt-get install build-essential python3 && npm install onoff`,
    );
  }
}

export function sysfsError(n: number, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES') return `GPIO ${n}: permission denied (add the user to the gpio group)`;
  if (code === 'EBUSY') return `GPIO ${n}: in use by another driver or program`;
  if (code === 'EINVAL') return `GPIO ${n}: the kernel rejected the number (wrong base?)`;
  return `GPIO ${n}: ${(err as Error).message}`;
}

export interface SysfsPttOptions {
  line: number;
  activeLow: boolean;
  sysfsRoot?: string;
  chipLabel?: string;
  Gpio?: GpioCtor;
  watchdogMs: number;
  bash?: string;
  log?: Logger;
}

export class SysfsPtt extends PttBase {
  private gpio: GpioLike | null = null;
  number = -1;

  constructor(private readonly o: SysfsPttOptions) {
    super(`GPIO${o.line} PTT (sysfs)`, o.log);
  }

  private level(keyed: boolean): 0 | 1 {
    return keyed !== this.o.activeLow ? 1 : 0;
  }

  protected async openLine(): Promise<void> {
    const root = this.o.sysfsRoot ?? '/sys/class/gpio';
    const { number, chip } = await sysfsNumber(this.o.line, root, this.o.chipLabel ? [this.o.chipLabel] : undefined);
    this.number = number;
    this.log.info({ line: this.o.line, chip: chip.label, base: chip.base, sysfs: number }, 'GPIO numbering');
    const Gpio = this.o.Gpio ?? (await loadOnoff());
    try {
      this.gpio = new Gpio(number, this.level(false) ? 'high' : 'low');
    } catch (err) {
      throw new RadioError(sysfsError(number, err));
    }
    if (this.o.watchdogMs > 0) {
      this.guard = new PttGuard({
        idle: `echo ${this.level(false)} > ${sh(`${root}/gpio${number}/value`)}`,
        watchdogMs: this.o.watchdogMs,
        log: this.log,
        ...(this.o.bash ? { bash: this.o.bash } : {}),
        onWatchdog: (unkeyed) => this.lineFault(new RadioError(`GPIO${this.o.line}: PTT watchdog: no heartbeat from talkbridge for ${this.o.watchdogMs} ms, unkeyed by the guard`), unkeyed),
        onLost: (why, unkeyed) => this.lineFault(new RadioError(`GPIO${this.o.line}: ${why}`), unkeyed),
      });
      await this.guard.start();
    }
  }

  protected async setLine(keyed: boolean): Promise<void> {
    if (!this.gpio) throw new RadioError(`GPIO${this.o.line}: not open`);
    try {
      this.gpio.writeSync(this.level(keyed));
    } catch (err) {
      throw new RadioError(sysfsError(this.number, err));
    }
    if (keyed) await this.guard?.key();
    else await this.guard?.unkey();
  }

  protected async closeLine(): Promise<void> {
    await this.guard?.close();
    this.guard = null;
    // Not unexported: an exported output keeps its idle level, an unexported one would float.
    this.gpio = null;
  }
}
