/**
 * A bare MQTT 3.1.1 publisher on a TCP socket, for the attack suite: many PUBLISH frames written in
 * batches with the socket's own backpressure, no per-message library work. MQTT.js spends tens of
 * microseconds per message; a flood of a million packets from it would measure MQTT.js, not the
 * daemon. Also speaks just enough CONNECT/CONNACK to try logins (password guessing, client-id
 * take-over).
 */
import net from 'node:net';

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const out = Buffer.alloc(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

export interface ConnectSpec {
  host?: string;
  port: number;
  /**
   * Source address: attackers come from 127.0.0.2 and up, so a broker's per-address bounds (login
   * throttling) fall on them and not on the genuine talker at 127.0.0.1, as on a real network.
   */
  localAddress?: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Seconds; 0 = no keep-alive (a flood needs no PINGREQ). */
  keepalive?: number;
  timeoutMs?: number;
}

export function connectFrame(c: ConnectSpec): Buffer {
  let flags = 0x02; // clean session
  const payload: Buffer[] = [str(c.clientId)];
  if (c.username !== undefined) {
    flags |= 0x80;
    payload.push(str(c.username));
  }
  if (c.password !== undefined) {
    flags |= 0x40;
    payload.push(str(c.password));
  }
  const vh = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, ((c.keepalive ?? 0) >> 8) & 0xff, (c.keepalive ?? 0) & 0xff]);
  const body = Buffer.concat([vh, ...payload]);
  return Buffer.concat([Buffer.from([0x10, ...varint(body.length)]), body]);
}

/** One QoS 0 PUBLISH frame. */
export function publishFrame(topic: string, payload: Uint8Array, retain = false): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const rl = 2 + t.length + payload.length;
  const head = varint(rl);
  const out = Buffer.allocUnsafe(1 + head.length + rl);
  let o = 0;
  out[o++] = 0x30 | (retain ? 1 : 0);
  for (const b of head) out[o++] = b;
  out.writeUInt16BE(t.length, o);
  o += 2;
  t.copy(out, o);
  o += t.length;
  out.set(payload, o);
  return out;
}

export interface RawConnection {
  socket: net.Socket;
  /** CONNACK return code (0 = accepted). */
  code: number;
  /** Writes frames; resolves once the socket can take more (backpressure). */
  write(buf: Buffer): Promise<void>;
  closed: boolean;
  close(): void;
}

/** Connects and waits for CONNACK; rejects on a socket error, timeout or a close before CONNACK. */
export function rawConnect(c: ConnectSpec): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: c.port, host: c.host ?? '127.0.0.1', ...(c.localAddress ? { localAddress: c.localAddress } : {}) });
    socket.setNoDelay(true);
    let got = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no CONNACK within ${c.timeoutMs ?? 5000} ms`)), c.timeoutMs ?? 5000);
    const conn: RawConnection = {
      socket,
      code: -1,
      closed: false,
      write(buf) {
        if (conn.closed) return Promise.resolve();
        if (socket.write(buf)) return Promise.resolve();
        return new Promise((r) => {
          const go = () => (socket.off('drain', go), socket.off('close', go), r());
          socket.once('drain', go);
          socket.once('close', go);
        });
      },
      close() {
        conn.closed = true;
        socket.destroy();
      },
    };
    function finish(err: Error | null) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(conn);
    }
    socket.on('connect', () => socket.write(connectFrame(c)));
    socket.on('data', (d: Buffer) => {
      if (done) return; // anything after CONNACK (nothing is subscribed) is ignored
      got = Buffer.concat([got, d]);
      if (got.length >= 4) {
        if (got[0] !== 0x20) return finish(new Error(`expected CONNACK, got packet type 0x${got[0]!.toString(16)}`));
        conn.code = got[3]!;
        finish(null);
      }
    });
    socket.on('error', (err) => {
      conn.closed = true;
      finish(err);
    });
    socket.on('close', () => {
      conn.closed = true;
      finish(new Error('closed before CONNACK'));
    });
  });
}
