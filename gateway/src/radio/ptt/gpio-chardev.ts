/**
 * PTT on a Raspberry Pi GPIO through the character device, using the libgpiod tools (`gpioset`).
 * gpioset holds a line only while it runs, so the guard process owns it: it keeps a gpioset holding
 * the idle or keyed level, and on our exit (even SIGKILL) or a missed heartbeat it switches back to
 * idle and leaves the line there with a one-shot gpioset.
 */
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { type Bias, DEFAULT_GPIO_TOOLS, type GpioTools, findCharChip, gpioCommands, toolsMajor } from '../gpio.js';
import { PttBase } from './base.js';
import { PttGuard, sh } from './guard.js';

export interface ChardevPttOptions {
  line: number;
  activeLow: boolean;
  chipLabel?: string;
  bias?: Bias;
  tools?: GpioTools;
  watchdogMs: number;
  bash?: string;
  log?: Logger;
}

export class ChardevPtt extends PttBase {
  chip = '';

  constructor(private readonly o: ChardevPttOptions) {
    super(`GPIO${o.line} PTT (gpiochip)`, o.log);
  }

  protected async openLine(): Promise<void> {
    const tools = this.o.tools ?? DEFAULT_GPIO_TOOLS;
    const chip = await findCharChip(this.o.line, this.o.chipLabel, tools);
    this.chip = chip.name;
    const cmds = gpioCommands(await toolsMajor(tools), tools, chip.name, this.o.line);
    const idle = this.o.activeLow ? 1 : 0;
    const q = (a: string[]) => a.map(sh).join(' ');
    this.log.info({ line: this.o.line, chip: chip.name, label: chip.label }, 'GPIO chip found by label');
    this.guard = new PttGuard({
      idle: q(cmds.hold(idle)),
      hold: { key: q(cmds.hold(idle ? 0 : 1)), reset: q(cmds.set(idle)) },
      // Without a watchdog the guard still releases the line on exit; a hang is then not covered.
      watchdogMs: this.o.watchdogMs > 0 ? this.o.watchdogMs : 24 * 3600 * 1000,
      log: this.log,
      ...(this.o.bash ? { bash: this.o.bash } : {}),
      onWatchdog: (unkeyed) => this.lineFault(new RadioError(`GPIO${this.o.line}: PTT watchdog: no heartbeat from talkbridge for ${this.o.watchdogMs} ms, unkeyed by the guard`), unkeyed),
      onLost: (why, unkeyed) => this.lineFault(new RadioError(`GPIO${this.o.line} on ${chip.name}: ${why}`), unkeyed),
    });
    await this.guard.start();
  }

  protected async setLine(keyed: boolean): Promise<void> {
    if (!this.guard) throw new RadioError(`GPIO${this.o.line}: not open`);
    if (keyed) await this.guard.key();
    else await this.guard.unkey();
  }

  protected async closeLine(): Promise<void> {
    await this.guard?.close();
    this.guard = null;
  }
}
