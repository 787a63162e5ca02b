/**
 * Policy shared by every PTT driver, so each backend only knows how to move its line: calls are
 * serialised (a key racing an unkey must not leave the line keyed), `open` leaves the line idle,
 * and any failure while keying ends with an attempt to unkey and a `fault` event.
 */
import type { Logger } from 'pino';
import { silentLog } from '../../core/log.js';
import { Emitter } from '../../../shared/core/emitter.js';
import { type Ptt, type PttEvents, RadioError } from '../types.js';
import type { PttGuard } from './guard.js';

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

export abstract class PttBase extends Emitter<PttEvents> implements Ptt {
  private busy: Promise<unknown> = Promise.resolve();
  private opened = false;
  private closed = false;
  private isKeyed = false;
  /** The driver's guard process, if it has one (see guard.ts). */
  protected guard: PttGuard | null = null;

  constructor(
    readonly description: string,
    protected readonly log: Logger = silentLog,
  ) {
    super();
    this.onListenerError = (err, event) => this.log.error({ err, event }, 'PTT listener failed');
  }

  get keyed(): boolean {
    return this.isKeyed;
  }

  alive(periodMs: number | null): void {
    this.guard?.alive(periodMs);
  }

  /** Opens the device and drives it idle; a driver must not return with the line keyed. */
  protected abstract openLine(): Promise<void>;
  protected abstract setLine(keyed: boolean): Promise<void>;
  protected abstract closeLine(): Promise<void>;

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.busy.then(fn, fn);
    this.busy = next.catch(() => undefined);
    return next;
  }

  open(): Promise<void> {
    return this.serial(async () => {
      if (this.opened) return;
      if (this.closed) throw new RadioError(`${this.description}: already closed`);
      try {
        await this.openLine();
      } catch (err) {
        await this.closeLine().catch(() => undefined);
        throw err instanceof RadioError ? err : new RadioError(`${this.description}: cannot open: ${msg(err)}`);
      }
      this.opened = true;
      this.log.info({ ptt: this.description }, 'PTT open, line idle');
    });
  }

  key(): Promise<void> {
    return this.serial(async () => {
      if (!this.opened || this.closed) throw new RadioError(`${this.description}: not open`);
      if (this.isKeyed) return;
      try {
        await this.setLine(true);
      } catch (err) {
        const e = new RadioError(`${this.description}: cannot key: ${msg(err)}`);
        await this.recover(e);
        throw e;
      }
      this.isKeyed = true;
      this.emit('state', true);
    });
  }

  unkey(): Promise<void> {
    // The caller's ticks have stopped, but the line is keyed until its unkey command has run (a
    // slow one, or one queued behind a key): the guard's timer beats meanwhile.
    this.guard?.alive(null);
    return this.serial(async () => {
      if (!this.opened) return;
      await this.unkeyNow();
    });
  }

  private async unkeyNow(): Promise<void> {
    try {
      await this.setLine(false);
    } catch (err) {
      const e = new RadioError(`${this.description}: cannot unkey: ${msg(err)}`);
      this.log.error({ ptt: this.description, err: e.message }, 'PTT unkey failed: transmitter state unknown');
      this.emit('fault', e, false);
      throw e;
    }
    if (this.isKeyed) {
      this.isKeyed = false;
      this.emit('state', false);
    }
  }

  /** After a failed key: the line may be half-way; drive it idle and report what we know. */
  private async recover(err: Error): Promise<void> {
    let unkeyed = true;
    try {
      await this.setLine(false);
    } catch (e2) {
      unkeyed = false;
      this.log.error({ ptt: this.description, err: msg(e2) }, 'PTT recovery unkey failed');
    }
    this.log.error({ ptt: this.description, err: err.message, unkeyed }, 'PTT fault');
    if (this.isKeyed) {
      this.isKeyed = false;
      this.emit('state', false);
    }
    this.emit('fault', err, unkeyed);
  }

  /**
   * For drivers that notice a problem on their own (device unplugged, helper killed, watchdog):
   * the line is no longer under our control. `unkeyed` says whether it is known to be idle.
   */
  protected lineFault(err: Error, unkeyed: boolean): void {
    this.log.error({ ptt: this.description, err: err.message, unkeyed }, 'PTT fault');
    if (this.isKeyed) {
      this.isKeyed = false;
      this.emit('state', false);
    }
    this.emit('fault', err, unkeyed);
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      try {
        if (this.opened) await this.unkeyNow().catch(() => undefined);
      } finally {
        this.opened = false;
        await this.closeLine();
      }
    });
  }
}
