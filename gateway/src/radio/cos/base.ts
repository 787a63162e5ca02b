/**
 * Policy shared by every carrier-detect input: inversion and debounce live here, drivers only
 * report the raw line level. A state must hold for `debounceMs` before it is announced, so contact
 * bounce and squelch chatter never reach the bridge as a burst of overs.
 */
import type { Logger } from 'pino';
import { Emitter } from '../../../shared/core/emitter.js';
import { type CarrierDetect, type CarrierEvents, RadioError } from '../types.js';
import { silentLog } from '../../core/log.js';

export interface CosCommon {
  /** Carrier present when the line is low (most COS outputs are open-collector, active low). */
  invert: boolean;
  debounceMs: number;
}

export abstract class CosBase extends Emitter<CarrierEvents> implements CarrierDetect {
  private state = false;
  private pending: boolean | null = null;
  private pendingAt = 0;
  private stateAt = 0;
  private debounce: NodeJS.Timeout | null = null;
  private started = false;
  protected closed = false;

  constructor(
    readonly description: string,
    private readonly common: CosCommon,
    protected readonly log: Logger = silentLog,
  ) {
    super();
    this.onListenerError = (err, event) => this.log.error({ err, event }, 'carrier listener failed');
  }

  get carrier(): boolean {
    return this.state;
  }

  get since(): number {
    return this.stateAt;
  }

  protected abstract startInput(): Promise<void>;
  protected abstract closeInput(): Promise<void>;

  async start(): Promise<void> {
    if (this.started) return;
    if (this.closed) throw new RadioError(`${this.description}: already closed`);
    try {
      await this.startInput();
    } catch (err) {
      await this.closeInput().catch(() => undefined);
      throw err instanceof RadioError ? err : new RadioError(`${this.description}: ${(err as Error).message}`);
    }
    this.started = true;
  }

  /** Drivers call this with the raw line level (true = high / asserted), and when it changed if earlier than now. */
  protected input(level: boolean, at = performance.now()): void {
    if (this.closed) return;
    const open = level !== this.common.invert;
    if (open === this.state) {
      this.pending = null;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = null;
      return;
    }
    if (this.pending === open) return;
    this.pending = open;
    this.pendingAt = at;
    if (this.debounce) clearTimeout(this.debounce);
    const settle = () => {
      this.debounce = null;
      this.pending = null;
      this.set(open);
    };
    if (this.common.debounceMs <= 0) settle();
    else this.debounce = setTimeout(settle, this.common.debounceMs);
  }

  private set(open: boolean, at = this.pendingAt): void {
    if (open === this.state) return;
    this.state = open;
    this.stateAt = at;
    this.emit('carrier', open);
  }

  /**
   * The input stopped working. Carrier is reported closed: a lost COS line must not hold the
   * bridge in "receiving" (and the channel busy) forever.
   */
  protected inputFault(err: Error): void {
    this.log.error({ cos: this.description, err: err.message }, 'carrier detect fault');
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
    this.pending = null;
    this.set(false, performance.now());
    this.emit('fault', err);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
    await this.closeInput();
    this.set(false, performance.now());
  }
}

export class NoneCos extends CosBase {
  constructor(log?: Logger) {
    super('none', { invert: false, debounceMs: 0 }, log);
  }
  protected async startInput(): Promise<void> {}
  protected async closeInput(): Promise<void> {}
}
