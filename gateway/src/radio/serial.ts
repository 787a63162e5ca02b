/**
 * Serial ports for PTT (RTS/DTR), carrier detect (CTS/DSR/DCD) and radio modules. One open port per
 * path, shared and reference-counted: a cable with PTT on RTS and COS on CTS is one tty, and a second
 * open would fail on the lock. The port class is injectable (node-serialport's binding pattern) so
 * tests run against the serialport mock binding.
 */
import { RadioError } from './types.js';

export interface ModemLines {
  rts?: boolean;
  dtr?: boolean;
}

export interface ModemStatus {
  cts: boolean;
  dsr: boolean;
  dcd: boolean;
}

/** The part of node-serialport's SerialPortStream that talkbridge uses. */
export interface SerialLike {
  readonly isOpen: boolean;
  open(cb?: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  write(data: string | Buffer, cb?: (err: Error | null | undefined) => void): boolean;
  drain(cb?: (err: Error | null) => void): void;
  set(opts: ModemLines, cb?: (err: Error | null) => void): void;
  get(cb: (err: Error | null, status?: Partial<ModemStatus>) => void): void;
  on(event: 'data', fn: (d: Buffer) => void): this;
  on(event: 'close', fn: (err?: Error & { disconnected?: boolean }) => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  off(event: string, fn: (...a: never[]) => void): this;
}

export interface PortOptions {
  path: string;
  baudRate: number;
  autoOpen: false;
  hupcl: boolean;
}

export type PortFactory = (o: PortOptions) => SerialLike;

let native: PortFactory | undefined;

/** node-serialport, loaded on the first real port: a gateway without serial PTT/COS never pays its ~2 MB. */
export async function nativePort(): Promise<PortFactory> {
  if (!native) {
    let SerialPort: typeof import('serialport').SerialPort;
    try {
      ({ SerialPort } = await import('serialport'));
    } catch (err) {
      throw new RadioError(`serial ports are unavailable: ${(err as Error).message}`);
    }
    native = (o) => new SerialPort(o) as unknown as SerialLike;
  }
  return native;
}

const cb2p = <T = void>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void) => new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));

export function describeSerialError(path: string, err: unknown): string {
  const m = (err as Error)?.message ?? String(err);
  if (/ENOENT|No such file/i.test(m)) return `${path}: no such serial port (see talkbridge devices)`;
  if (/EACCES|Permission denied/i.test(m)) return `${path}: permission denied (add the user to the dialout group)`;
  if (/busy|lock/i.test(m)) return `${path}: port is in use by another program`;
  return `${path}: ${m}`;
}

interface Shared {
  port: SerialLike;
  users: number;
  opening: Promise<void>;
}

const shared = new Map<string, Shared>();

export interface PortHandle {
  port: SerialLike;
  set(lines: ModemLines): Promise<void>;
  get(): Promise<ModemStatus>;
  release(): Promise<void>;
}

/**
 * Opens (or joins) the port at `path`. `hupcl` stays on: when the process dies the kernel closes
 * the tty and drops DTR and RTS, which unkeys an active-high serial PTT even after SIGKILL.
 */
export async function acquirePort(path: string, opts: { baudRate?: number; factory?: PortFactory } = {}): Promise<PortHandle> {
  // Loaded before looking the port up: no await may come between the lookup and shared.set().
  const factory = opts.factory ?? (await nativePort());
  let s = shared.get(path);
  if (!s) {
    const port = factory({ path, baudRate: opts.baudRate ?? 9600, autoOpen: false, hupcl: true });
    port.on('error', () => undefined);
    const entry: Shared = { port, users: 0, opening: cb2p((cb) => port.open(cb)) };
    s = entry;
    shared.set(path, entry);
    port.on('close', () => {
      if (shared.get(path) === entry) shared.delete(path);
    });
    try {
      await entry.opening;
    } catch (err) {
      if (shared.get(path) === entry) shared.delete(path);
      throw new RadioError(describeSerialError(path, err));
    }
  } else {
    await s.opening;
  }
  s.users++;
  const entry = s;
  let released = false;
  return {
    port: entry.port,
    set: (lines) => cb2p((cb) => entry.port.set(lines, cb)),
    get: async () => {
      const st = await cb2p<Partial<ModemStatus>>((cb) => entry.port.get(cb));
      return { cts: Boolean(st?.cts), dsr: Boolean(st?.dsr), dcd: Boolean(st?.dcd) };
    },
    async release() {
      if (released) return;
      released = true;
      entry.users--;
      if (entry.users > 0) return;
      if (shared.get(path) === entry) shared.delete(path);
      if (entry.port.isOpen) await cb2p((cb) => entry.port.close(cb)).catch(() => undefined);
    },
  };
}
