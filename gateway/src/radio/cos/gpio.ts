/** Carrier detect on a Raspberry Pi GPIO: sysfs (onoff, edge interrupts) or libgpiod (`gpiomon`). */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { type Bias, DEFAULT_GPIO_TOOLS, type GpioTools, findCharChip, gpioCommands, sysfsNumber, toolsMajor } from '../gpio.js';
import { type GpioCtor, type GpioLike, loadOnoff, sysfsError } from '../ptt/gpio-sysfs.js';
import { CosBase, type CosCommon } from './base.js';

const run = promisify(execFile);

export interface SysfsCosOptions extends CosCommon {
  line: number;
  sysfsRoot?: string;
  chipLabel?: string;
  Gpio?: GpioCtor;
  log?: Logger;
}

export class SysfsCos extends CosBase {
  private gpio: GpioLike | null = null;

  constructor(private readonly o: SysfsCosOptions) {
    super(`GPIO${o.line} carrier detect (sysfs)`, o, o.log);
  }

  protected async startInput(): Promise<void> {
    const { number } = await sysfsNumber(this.o.line, this.o.sysfsRoot, this.o.chipLabel ? [this.o.chipLabel] : undefined);
    const Gpio = this.o.Gpio ?? (await loadOnoff());
    try {
      this.gpio = new Gpio(number, 'in', 'both');
      this.input(this.gpio.readSync() === 1);
    } catch (err) {
      throw new RadioError(sysfsError(number, err));
    }
    this.gpio.watch((err, value) => {
      if (err) this.inputFault(new RadioError(sysfsError(number, err)));
      else this.input(value === 1);
    });
  }

  protected async closeInput(): Promise<void> {
    this.gpio?.unwatchAll();
    this.gpio = null;
  }
}

export interface ChardevCosOptions extends CosCommon {
  line: number;
  chipLabel?: string;
  bias?: Bias;
  tools?: GpioTools;
  /** Back-off before restarting a gpiomon that died. */
  retryMs?: number;
  log?: Logger;
}

/**
 * gpiomon reports edges, not levels, so the level is read once with gpioget after the monitor is
 * running (an edge in between is then seen by both, harmlessly), and tracked from the edges.
 */
export class ChardevCos extends CosBase {
  private mon: ChildProcessWithoutNullStreams | null = null;
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly o: ChardevCosOptions) {
    super(`GPIO${o.line} carrier detect (gpiochip)`, o, o.log);
  }

  protected async startInput(): Promise<void> {
    const tools = this.o.tools ?? DEFAULT_GPIO_TOOLS;
    const chip = await findCharChip(this.o.line, this.o.chipLabel, tools);
    const major = await toolsMajor(tools);
    const cmds = gpioCommands(major, tools, chip.name, this.o.line, this.o.bias);
    await this.monitor(cmds.monitor(), major);
    const [cmd, ...args] = cmds.get();
    try {
      const out = (await run(cmd!, args, { timeout: 5000 })).stdout.trim();
      this.input(out.endsWith('1') || /=active$/.test(out));
    } catch (err) {
      throw new RadioError(`${cmd} failed: ${((err as { stderr?: string }).stderr ?? '').trim() || (err as Error).message}`);
    }
  }

  private monitor(argv: string[], major: 1 | 2): Promise<void> {
    const [cmd, ...args] = argv;
    const proc = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.mon = proc;
    let lastErr = '';
    createInterface({ input: proc.stderr }).on('line', (l) => (lastErr = l));
    createInterface({ input: proc.stdout }).on('line', (l) => {
      const e = l.trim();
      if (e === '1') this.input(true);
      else if (e === (major === 1 ? '0' : '2')) this.input(false);
    });
    return new Promise((resolve, reject) => {
      // gpiomon prints nothing when it starts well; an early exit is the only failure signal.
      const ok = setTimeout(resolve, 100);
      proc.once('error', (err) => {
        clearTimeout(ok);
        reject(new RadioError(`${cmd} not found: install the libgpiod tools (sudo apt-get install gpiod): ${err.message}`));
      });
      proc.once('close', (code, signal) => {
        clearTimeout(ok);
        if (this.mon !== proc) return;
        this.mon = null;
        const err = new RadioError(`${cmd} exited (${signal ?? `status ${code}`})${lastErr ? `: ${lastErr}` : ''}`);
        reject(err);
        if (this.closed) return;
        this.inputFault(err);
        this.retry = setTimeout(() => {
          this.retry = null;
          this.startInput().catch((e: Error) => this.inputFault(e));
        }, this.o.retryMs ?? 2000);
      });
    });
  }

  protected async closeInput(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    const mon = this.mon;
    this.mon = null;
    mon?.kill('SIGTERM');
  }
}
