/** Listening and closing, shared by the web port and its plain-HTTP companion. */
import type http from 'node:http';
import type net from 'node:net';
import { UserError } from '../core/errors.js';

/** A listen() failure as one line the operator can act on. Here, not in broker/embedded.ts: the web port must not load aedes and ws. */
export function listenError(what: string, host: string, port: number, err: NodeJS.ErrnoException): UserError {
  if (err.code === 'EADDRINUSE') return new UserError(`${what}: ${host}:${port} is already in use — another broker or talkbridge running? Choose another port in the config.`);
  if (err.code === 'EACCES') return new UserError(`${what}: not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`);
  if (err.code === 'EADDRNOTAVAIL') return new UserError(`${what}: ${host} is not an address of this machine`);
  return new UserError(`${what}: cannot listen on ${host}:${port}: ${err.message}`);
}

export async function listen(server: net.Server, what: string, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(what, host, port, err)));
    server.listen(port, host, () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/** Closes a server now, including keep-alive and upgraded (WebSocket) sockets it no longer sees. */
export function closer(server: http.Server): () => Promise<void> {
  // closeAllConnections() does not see sockets upgraded to WebSocket (MQTT from browsers): without
  // this, close() would wait for every connected browser to go away by itself.
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
    });
}
