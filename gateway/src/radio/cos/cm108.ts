/**
 * Carrier detect on a CM108-family HID input. Reading /dev/hidrawN yields the chip's input reports;
 * the first byte carries the "button" inputs, and URI-style interfaces wire COS to Volume Down
 * (bit 1) and CTCSS decode to Volume Up (bit 0), as AllStarLink's chan_simpleusb expects.
 *
 * The node is read the way a socket is: opened non-blocking and watched by the event loop (epoll),
 * never with a blocking read() on a libuv pool thread. A radio whose carrier stays closed sends no
 * report for hours, and a pool thread parked in such a read can be neither cancelled nor joined:
 * the daemon could not exit on SIGTERM (process.exit itself waits for the pool), issue #17.
 */
import { constants, createReadStream, open, close, fstat, type ReadStream, type Stats } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
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
  private stream: Socket | ReadStream | null = null;
  private rest = Buffer.alloc(0);

  constructor(private readonly o: Cm108CosOptions) {
    super(`CM108 input bit ${o.bit} carrier detect on ${o.device}`, o, o.log);
    if (o.byte >= o.reportBytes) throw new RadioError(`CM108 input byte ${o.byte} is beyond the ${o.reportBytes}-byte report`);
  }

  protected async startInput(): Promise<void> {
    const s = await openPolled(this.o.device).catch((err: NodeJS.ErrnoException) => {
      throw err instanceof RadioError ? err : new RadioError(this.describe(err));
    });
    if (this.closed) {
      s.destroy();
      return;
    }
    this.stream = s;
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (this.stream !== s) return;
      this.stream = null;
      this.inputFault(new RadioError(this.describe(err)));
    });
    s.on('end', () => {
      if (this.stream === s && !this.closed) this.inputFault(new RadioError(`${this.o.device}: input ended`));
    });
  }

  private describe(err: NodeJS.ErrnoException): string {
    const d = this.o.device;
    return err.code === 'ENOENT' || err.code === 'ENODEV' || err.code === 'EIO'
      ? `${d}: the USB interface is gone (unplugged?)`
      : err.code === 'EACCES'
        ? `${d}: permission denied (install the udev rule from docs/hardware.md)`
        : `${d}: ${err.message}`;
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

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);

type PipeHandle = { open(fd: number): number };
type PipeWrap = { Pipe: new (type: number) => PipeHandle; constants: { SOCKET: number } };

/**
 * libuv's pipe handle: a stream over any pollable descriptor, read when epoll says so. `new
 * net.Socket({ fd })` builds the same handle, but only for descriptors libuv classifies as pipes or
 * sockets: a character device is "FILE" to it (ERR_INVALID_FD_TYPE), so a hidraw node needs the
 * handle made here. Null where the runtime no longer offers it.
 */
function pipeWrap(): PipeWrap | null {
  try {
    return (process as unknown as { binding(name: string): PipeWrap }).binding('pipe_wrap');
  } catch {
    return null;
  }
}

/** A character device's sysfs class (hidraw, tty, …), from its device number. */
async function charClass(st: Stats): Promise<string | null> {
  const rdev = BigInt(st.rdev);
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  try {
    return path.basename(await realpath(`/sys/dev/char/${major}:${minor}/subsystem`));
  } catch {
    return null;
  }
}

/**
 * Opens a hidraw node (or, in tests and probes, a FIFO) for reading through the event loop:
 * destroy() then stops it at once, however long the input has been silent. Only descriptors known
 * to support poll are handed to epoll (libuv aborts on one that does not, e.g. a regular file).
 */
export async function openPolled(device: string, wrap: PipeWrap | null = pipeWrap()): Promise<Socket | ReadStream> {
  const fd = await openAsync(device, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fstatAsync(fd);
    if (st.isFIFO() || st.isSocket()) return new Socket({ fd, readable: true, writable: false });
    const cls = st.isCharacterDevice() ? await charClass(st) : null;
    if (cls !== 'hidraw') throw new RadioError(`${device} is not a hidraw device${cls ? ` (it is ${cls})` : ''}: name the CM108's /dev/hidrawN (talkbridge devices lists them)`);
    if (!wrap) {
      // Last resort on a runtime without the pipe handle: a blocking stream (a pool thread waits in
      // read() until the next report), so a stop relies on the hard exit (cli/commands/run.ts).
      close(fd, () => undefined);
      return createReadStream(device, { highWaterMark: 64 });
    }
    const h = new wrap.Pipe(wrap.constants.SOCKET);
    const rc = h.open(fd);
    if (rc !== 0) throw new RadioError(`${device}: cannot watch it (libuv error ${rc})`);
    return new Socket({ handle: h, readable: true, writable: false } as ConstructorParameters<typeof Socket>[0]);
  } catch (err) {
    close(fd, () => undefined);
    throw err;
  }
}
