/**
 * The embedded MQTT broker (aedes): lets a kit run with no other software — radios, the web client
 * and phones on the kit's Wi-Fi all meet here. TCP on its own port; WebSocket is attached to the
 * HTTP server (path /mqtt) so the browser reaches the page and the broker through one port.
 */
import net from 'node:net';
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../core/log.js';
import { type AuthCounters, type EmbeddedAuth, installAuth } from './auth.js';
import { listenError } from '../http/listen.js';

export interface EmbeddedBroker {
  readonly aedes: Aedes;
  /** Where the TCP listener actually bound (port 0 picks a free one). */
  readonly tcp: { host: string; port: number } | null;
  /** Refused logins and denied publishes / subscriptions; null when the broker is open (no auth). */
  readonly auth: AuthCounters | null;
  attachWebSocket(server: HttpServer, path: string): void;
  close(): Promise<void>;
}

function loopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export async function startEmbeddedBroker(o: { host: string; port: number | null; log: Logger; auth?: EmbeddedAuth | null }): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ id: 'talkbridge-embedded' });
  const counters = o.auth ? installAuth(aedes, o.auth, o.log) : null;
  const open = (where: string) =>
    o.log.warn(
      { event: 'auth', state: 'open', listen: where },
      `embedded MQTT broker on ${where} has no access control: anyone who can reach it can listen and talk — set embeddedBroker.auth (docs/security.md)`,
    );
  aedes.on('clientError', (client, err) => o.log.debug({ client: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (_client, err) => o.log.debug({ err: err.message }, 'connection error'));

  let tcpServer: net.Server | null = null;
  let tcp: { host: string; port: number } | null = null;
  if (o.port !== null) {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      aedes.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(listenError('embedded broker', o.host, o.port!, err)));
      server.listen(o.port!, o.host, () => resolve());
    });
    const addr = server.address() as net.AddressInfo;
    tcp = { host: o.host, port: addr.port };
    tcpServer = server;
    if (!o.auth && !loopback(o.host)) open(`${o.host}:${addr.port}`);
  }
  const wssList: WebSocketServer[] = [];

  return {
    aedes,
    tcp,
    auth: counters,
    attachWebSocket(server: HttpServer, path: string) {
      const a = server.address();
      if (!o.auth && a && typeof a === 'object' && !loopback(a.address)) open(`ws://${a.address}:${a.port}${path}`);
      const wss = new WebSocketServer({ server, path, perMessageDeflate: false });
      wss.on('connection', (ws, req: IncomingMessage) => {
        (req.socket as net.Socket).setNoDelay(true);
        const stream = createWebSocketStream(ws);
        stream.on('error', () => ws.terminate());
        aedes.handle(stream as never, req);
      });
      wssList.push(wss);
    },
    async close() {
      for (const w of wssList) {
        for (const c of w.clients) c.terminate();
        await new Promise<void>((r) => w.close(() => r()));
      }
      // aedes.close() drops every client, which lets the TCP server finish closing.
      await new Promise<void>((r) => aedes.close(() => r()));
      if (tcpServer) await new Promise<void>((r) => tcpServer!.close(() => r()));
    },
  };
}
