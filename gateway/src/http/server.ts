/**
 * The gateway's one HTTP port: the web client (static files), /healthz, and MQTT over WebSocket
 * (/mqtt, attached by the embedded broker). Kept on node:http — a handful of routes need no framework.
 */
import http from 'node:http';
import { listenError } from '../broker/embedded.js';

export type Route = (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;

export interface HttpServer {
  server: http.Server;
  address: { host: string; port: number };
  close(): Promise<void>;
}

export async function startHttpServer(o: { host: string; port: number; routes: Route[] }): Promise<HttpServer> {
  const server = http.createServer(async (req, res) => {
    try {
      for (const route of o.routes) if (await route(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    } catch {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    }
  });
  // closeAllConnections() does not see sockets upgraded to WebSocket (MQTT from browsers): without
  // this, close() would wait for every connected browser to go away by itself.
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError('HTTP server', o.host, o.port, err)));
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as import('node:net').AddressInfo;
  return {
    server,
    address: { host: o.host, port: addr.port },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }),
  };
}

export function json(res: http.ServerResponse, status: number, body: unknown): true {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body) + '\n');
  return true;
}
