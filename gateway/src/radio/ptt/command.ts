/**
 * PTT through the user's own commands (a relay board's CLI, rigctl, an HTTP call). The unkey
 * command runs on open, on close, and from the guard process if talkbridge dies or hangs.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import { RadioError } from '../types.js';
import { PttBase } from './base.js';
import { PttGuard } from './guard.js';

export interface CommandPttOptions {
  key: string;
  unkey: string;
  timeoutMs: number;
  watchdogMs: number;
  shell?: string;
  bash?: string;
  log?: Logger;
}

export class CommandPtt extends PttBase {
  constructor(private readonly o: CommandPttOptions) {
    super('command PTT', o.log);
  }

  private run(cmd: string): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(this.o.shell ?? 'sh', ['-c', cmd], { timeout: this.o.timeoutMs, killSignal: 'SIGKILL' }, (err, _out, stderr) => {
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        const last = String(stderr).trim().split('\n').at(-1);
        if (e.killed) reject(new RadioError(`"${cmd}" did not finish within ${this.o.timeoutMs} ms`));
        else reject(new RadioError(`"${cmd}" failed (${typeof e.code === 'number' ? `status ${e.code}` : (e.code ?? e.message)})${last ? `: ${last}` : ''}`));
      });
    });
  }

  protected async openLine(): Promise<void> {
    await this.run(this.o.unkey);
    if (this.o.watchdogMs > 0) {
      this.guard = new PttGuard({
        idle: this.o.unkey,
        watchdogMs: this.o.watchdogMs,
        // The guard gives the unkey command as long as the daemon does.
        writeMs: this.o.timeoutMs,
        log: this.log,
        ...(this.o.bash ? { bash: this.o.bash } : {}),
        onWatchdog: (unkeyed) => this.lineFault(new RadioError(`PTT watchdog: no heartbeat from talkbridge for ${this.o.watchdogMs} ms, unkey command run by the guard`), unkeyed),
        onLost: (why, unkeyed) => this.lineFault(new RadioError(why), unkeyed),
      });
      await this.guard.start();
    }
  }

  protected async setLine(keyed: boolean): Promise<void> {
    await this.run(keyed ? this.o.key : this.o.unkey);
    if (keyed) await this.guard?.key();
    else await this.guard?.unkey();
  }

  protected async closeLine(): Promise<void> {
    await this.guard?.close();
    this.guard = null;
  }
}
