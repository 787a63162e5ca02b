/**
 * The embedded MQTT broker (aedes): lets a kit run with no other software — radios, the web client
 * and phones on the kit's Wi-Fi all meet here. TCP on its own port; WebSocket is attached to the
 * HTTP server (path /mqtt) so the browser reaches the page and the broker through one port.
 * Open or not, it holds to limits.ts's bounds (guard.ts): packet and payload sizes, retained
 * messages, the gateway's own client ids, failed logins.
 */
import net from 'node:net';
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../core/log.js';
import { type AuthCounters, type EmbeddedAuth, installAuth, internalLogin } from './auth.js';
import { installGuard } from './guard.js';
import { type BrokerLimits, type LimitCounters, LIMITS, newCounters } from './limits.js';
import { listenError } from '../http/listen.js';

export interface EmbeddedBroker {
  readonly aedes: Aedes;
  /** Where the TCP listener actually bound (port 0 picks a free one). */
  readonly tcp: { host: string; port: number } | null;
  /** Refused logins and denied publishes / subscriptions; null when the broker is open (no auth). */
  readonly auth: AuthCounters | null;
  /** What the size, retained, client-id and login bounds refused (broker/limits.ts). */
  readonly limits: LimitCounters;
  /**
   * The login the gateway's own connections use here: embeddedBroker.auth's internal one, or one
   * made for an open broker, where it is what tells the gateway's connections from anyone else's.
   */
  readonly internal: { username: string; password: string };
  attachWebSocket(server: HttpServer, path: string): void;
  close(): Promise<void>;
}

function loopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export interface EmbeddedOptions {
  host: string;
  port: number | null;
  log: Logger;
  auth?: EmbeddedAuth | null;
  /** The gateway running this broker: its connections' client ids are refused to every other login. */
  owner?: { id: string; channels: readonly string[] } | null;
  /** Tests tighten or loosen single bounds; the daemon runs on LIMITS. */
  limits?: Partial<Omit<BrokerLimits, 'login'>> & { login?: Partial<BrokerLimits['login']> };
}

export async function startEmbeddedBroker(o: EmbeddedOptions): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ id: 'talkbridge-embedded' });
  const counters = o.auth ? installAuth(aedes, o.auth, o.log) : null;
  const internal = o.auth?.internal ?? internalLogin(o.owner?.id ?? 'talkbridge');
  const limits: BrokerLimits = { ...LIMITS, ...o.limits, login: { ...LIMITS.login, ...o.limits?.login } };
  const limitCounters = newCounters();
  const guard = installGuard(aedes, { limits, counters: limitCounters, log: o.log, internal, owner: o.owner ?? null, teamOwnerAllowed: !!o.auth });
  const handle = (stream: Parameters<Aedes['handle']>[0], req?: IncomingMessage) => guard.limitPackets(aedes.handle(stream, req));
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
      handle(socket);
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
    limits: limitCounters,
    internal,
    attachWebSocket(server: HttpServer, path: string) {
      const a = server.address();
      if (!o.auth && a && typeof a === 'object' && !loopback(a.address)) open(`ws://${a.address}:${a.port}${path}`);
      // ws buffers a whole message before MQTT sees a byte of it (100 MiB by default). Browsers send
      // one MQTT packet per message; two packets' worth leaves room for a client that batches.
      const wss = new WebSocketServer({ server, path, perMessageDeflate: false, maxPayload: 2 * limits.packetBytes });
      wss.on('connection', (ws, req: IncomingMessage) => {
        (req.socket as net.Socket).setNoDelay(true);
        const stream = createWebSocketStream(ws);
        stream.on('error', () => ws.terminate());
        handle(stream as never, req);
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
