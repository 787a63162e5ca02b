/**
 * SA818 / DRA818 (VHF and UHF) radio modules over their UART: 9600 8N1, AT commands ending CR LF,
 * one reply line per command. Every command has a time-out and retries; programming is a list of
 * steps, and if any step fails the error names what was done, what failed and what was not tried,
 * because the module then holds a mix of old and new settings.
 */
import type { Logger } from 'pino';
import { silentLog } from '../../core/log.js';
import { type PortFactory, type PortHandle, acquirePort } from '../serial.js';
import { type ModuleChannel, type ModuleReadback, type ModuleSettings, type ProgramStep, RadioError, type RadioModule } from '../types.js';
import { checkChannel, moduleFreq, parseToneCode, toneCode, toneName } from './tones.js';

export interface Sa818Options {
  port: string;
  baudRate?: number;
  /** Per attempt. The module answers within ~100 ms; settings writes take longer. */
  timeoutMs?: number;
  retries?: number;
  factory?: PortFactory;
  log?: Logger;
}

export class ModuleError extends RadioError {
  override name = 'ModuleError';
  constructor(
    message: string,
    readonly steps: ProgramStep[] = [],
  ) {
    super(message);
  }
}

export function setGroupCommand(c: ModuleChannel): string {
  checkChannel(c);
  return `AT+DMOSETGROUP=${c.bandwidth === 'wide' ? 1 : 0},${moduleFreq(c.txMHz, 'TX')},${moduleFreq(c.rxMHz, 'RX')},${toneCode(c.txTone)},${c.squelch},${toneCode(c.rxTone)}`;
}

export function describeChannel(c: ModuleChannel): string {
  const tones = c.txTone === null && c.rxTone === null ? 'no tone' : `TX tone ${toneName(c.txTone)}, RX tone ${toneName(c.rxTone)}`;
  return `RX ${c.rxMHz.toFixed(4)} MHz, TX ${c.txMHz.toFixed(4)} MHz, ${tones}, squelch ${c.squelch}, ${c.bandwidth}`;
}

/** "+DMOREADGROUP:0,146.5200,146.5200,0008,1,0008" → channel (same field order as SETGROUP). */
export function parseReadGroup(line: string): ModuleChannel {
  const m = /^\+DMOREADGROUP:\s*([01]),(\d{3}\.\d{4}),(\d{3}\.\d{4}),(\w{4}),(\d),(\w{4})\s*$/.exec(line.trim());
  if (!m) throw new ModuleError(`unexpected read-back "${line.trim()}"`);
  try {
    return { bandwidth: m[1] === '1' ? 'wide' : 'narrow', txMHz: Number(m[2]), rxMHz: Number(m[3]), txTone: parseToneCode(m[4]!), squelch: Number(m[5]), rxTone: parseToneCode(m[6]!) };
  } catch (err) {
    throw new ModuleError(`unexpected read-back "${line.trim()}": ${(err as Error).message}`);
  }
}

const sameTone = (a: ModuleChannel['rxTone'], b: ModuleChannel['rxTone']) => toneCode(a) === toneCode(b);

export class Sa818 implements RadioModule {
  private handle: PortHandle | null = null;
  private lines: string[] = [];
  private partial = '';
  private wake: (() => void) | null = null;
  private readonly log: Logger;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: Sa818Options) {
    this.log = o.log ?? silentLog;
  }

  get description(): string {
    return `SA818/DRA818 on ${this.o.port}`;
  }

  private async ensureOpen(): Promise<PortHandle> {
    if (this.handle) return this.handle;
    const h = await acquirePort(this.o.port, { baudRate: this.o.baudRate ?? 9600, factory: this.o.factory });
    h.port.on('data', (d: Buffer) => {
      const parts = (this.partial + d.toString('latin1')).split(/\r?\n|\r/);
      this.partial = parts.pop() ?? '';
      for (const p of parts) if (p.trim()) this.lines.push(p.trim());
      this.wake?.();
    });
    this.handle = h;
    return h;
  }

  /** Next reply line, or null on time-out. */
  private nextLine(deadline: number): Promise<string | null> {
    if (this.lines.length) return Promise.resolve(this.lines.shift()!);
    return new Promise((resolve) => {
      const t = setTimeout(
        () => {
          this.wake = null;
          resolve(null);
        },
        Math.max(0, deadline - Date.now()),
      );
      this.wake = () => {
        if (!this.lines.length) return;
        clearTimeout(t);
        this.wake = null;
        resolve(this.lines.shift()!);
      };
    });
  }

  /**
   * Sends `cmd` and returns the first reply line starting with `prefix`. Other lines (a
   * module's power-up noise, an echo) are skipped; no matching line in time means another try.
   */
  private async command(cmd: string, prefix: string, attempts = (this.o.retries ?? 2) + 1): Promise<string> {
    const h = await this.ensureOpen();
    const timeout = this.o.timeoutMs ?? 1000;
    const seen: string[] = [];
    for (let a = 1; a <= attempts; a++) {
      this.lines = [];
      this.partial = '';
      await new Promise<void>((resolve, reject) => {
        h.port.write(cmd + '\r\n', (err) => (err ? reject(new ModuleError(`${this.o.port}: write failed: ${err.message}`)) : resolve()));
      });
      const deadline = Date.now() + timeout;
      for (;;) {
        const line = await this.nextLine(deadline);
        if (line === null) break;
        this.log.debug({ cmd, line }, 'SA818 reply');
        if (line.startsWith(prefix)) return line;
        seen.push(line);
      }
      this.log.warn({ cmd, attempt: a }, 'SA818 did not answer in time');
    }
    const got = seen.length
      ? ` (got ${seen
          .slice(-2)
          .map((s) => JSON.stringify(s))
          .join(', ')} instead)`
      : ' (silence: check wiring, baud rate and that the module is powered)';
    throw new ModuleError(`no ${prefix} reply to ${cmd.split('=')[0]} after ${attempts} tr${attempts === 1 ? 'y' : 'ies'} of ${timeout} ms${got}`);
  }

  /** Commands whose reply is "<prefix>0" for success and "<prefix>1" for refusal. */
  private async expectZero(cmd: string, prefix: string): Promise<void> {
    const r = await this.command(cmd, prefix);
    const code = r.slice(prefix.length).trim();
    if (code !== '0') throw new ModuleError(`the module refused ${cmd} (${r})`);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.busy.then(fn, fn);
    this.busy = next.catch(() => undefined);
    return next;
  }

  async handshake(): Promise<void> {
    await this.expectZero('AT+DMOCONNECT', '+DMOCONNECT:');
  }

  program(s: ModuleSettings): Promise<ProgramStep[]> {
    return this.serial(async () => {
      // Everything is checked before the first byte goes out: a bad tone must not leave a half-set module.
      let group: string;
      try {
        group = setGroupCommand(s.channel);
      } catch (err) {
        throw new ModuleError((err as Error).message);
      }
      if (s.volume !== undefined && (!Number.isInteger(s.volume) || s.volume < 1 || s.volume > 8)) throw new ModuleError(`volume must be 1-8, got ${s.volume}`);
      const plan: Array<[string, string, () => Promise<void>]> = [
        ['handshake', 'module answered', () => this.handshake()],
        ['group', describeChannel(s.channel), () => this.expectZero(group, '+DMOSETGROUP:')],
      ];
      if (s.volume !== undefined) plan.push(['volume', `volume ${s.volume}`, () => this.expectZero(`AT+DMOSETVOLUME=${s.volume}`, '+DMOSETVOLUME:')]);
      if (s.filters) {
        const f = s.filters;
        // 0 = filter on, 1 = bypassed.
        const cmd = `AT+SETFILTER=${f.emphasis ? 0 : 1},${f.highpass ? 0 : 1},${f.lowpass ? 0 : 1}`;
        plan.push(['filters', `emphasis ${f.emphasis ? 'on' : 'off'}, high-pass ${f.highpass ? 'on' : 'off'}, low-pass ${f.lowpass ? 'on' : 'off'}`, () => this.expectZero(cmd, '+DMOSETFILTER:')]);
      }
      if (s.tail !== undefined) plan.push(['tail', `squelch tail elimination ${s.tail ? 'on' : 'off'}`, () => this.expectZero(`AT+SETTAIL=${s.tail ? 1 : 0}`, '+DMOSETTAIL:')]);
      const steps: ProgramStep[] = [];
      for (const [i, [step, detail, fn]] of plan.entries()) {
        try {
          await fn();
          steps.push({ step, ok: true, detail });
        } catch (err) {
          steps.push({ step, ok: false, detail: (err as Error).message });
          const rest = plan.slice(i + 1).map(([n]) => n);
          const done = steps.filter((x) => x.ok).map((x) => x.step);
          const state =
            i === 0 ? 'nothing was changed' : `done: ${done.join(', ')}; NOT done: ${[step, ...rest].join(', ')}: the module now holds a mix of old and new settings, run the command again`;
          throw new ModuleError(`${this.description}: ${step} failed: ${(err as Error).message}; ${state}`, steps);
        }
      }
      steps.push(await this.verify(s.channel));
      if (!steps.at(-1)!.ok) throw new ModuleError(`${this.description}: ${steps.at(-1)!.detail}`, steps);
      return steps;
    });
  }

  /** SA818S answers AT+DMOREADGROUP; DRA818 and early SA818 do not, which is not a failure. */
  private async verify(want: ModuleChannel): Promise<ProgramStep> {
    let line: string;
    try {
      line = await this.command('AT+DMOREADGROUP', '+DMOREADGROUP:', 1);
    } catch {
      return { step: 'verify', ok: true, detail: 'this module cannot read its settings back: not verified' };
    }
    let got: ModuleChannel;
    try {
      got = parseReadGroup(line);
    } catch (err) {
      return { step: 'verify', ok: false, detail: `read-back failed: ${(err as Error).message}` };
    }
    const diffs: string[] = [];
    if (moduleFreq(want.rxMHz, 'RX') !== got.rxMHz.toFixed(4)) diffs.push(`RX ${got.rxMHz.toFixed(4)}`);
    if (moduleFreq(want.txMHz, 'TX') !== got.txMHz.toFixed(4)) diffs.push(`TX ${got.txMHz.toFixed(4)}`);
    if (!sameTone(want.rxTone, got.rxTone)) diffs.push(`RX tone ${toneName(got.rxTone)}`);
    if (!sameTone(want.txTone, got.txTone)) diffs.push(`TX tone ${toneName(got.txTone)}`);
    if (want.squelch !== got.squelch) diffs.push(`squelch ${got.squelch}`);
    if (want.bandwidth !== got.bandwidth) diffs.push(got.bandwidth);
    if (diffs.length) return { step: 'verify', ok: false, detail: `read-back differs from what was set: module has ${diffs.join(', ')}` };
    return { step: 'verify', ok: true, detail: 'read back and matches' };
  }

  read(): Promise<ModuleReadback> {
    return this.serial(async () => {
      await this.handshake().catch((err: Error) => {
        throw new ModuleError(`${this.description}: ${err.message}`);
      });
      const version = await this.command('AT+VERSION', '+VERSION:', 1).then(
        (l) => l.slice('+VERSION:'.length).trim(),
        () => null,
      );
      const channel = await this.command('AT+DMOREADGROUP', '+DMOREADGROUP:', 1).then(parseReadGroup, (err: Error) => {
        if (err instanceof ModuleError && err.message.startsWith('unexpected read-back')) throw err;
        return null;
      });
      const rssi = await this.command('RSSI?', 'RSSI=', 1).then(
        (l) => {
          const n = Number(l.slice(5));
          return Number.isFinite(n) ? n : null;
        },
        () => null,
      );
      return { version, channel, rssi };
    });
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.release();
  }
}
