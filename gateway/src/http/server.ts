/**
 * The gateway's one web port: the web client (static files), /healthz, and MQTT over WebSocket
 * (/mqtt, attached by the embedded broker). Kept on node:http — a handful of routes need no framework.
 * With TLS it speaks HTTPS (and the WebSocket becomes wss on the same port), and an optional
 * plain-HTTP port hands phones the team CA and redirects everything else (redirect.ts).
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { type TlsMaterial, type TlsPaths, TlsFileError, altNames, loadTls } from './tls.js';
import { caRoute, startRedirectServer } from './redirect.js';
import type { Route } from '../core/route.js';
import { closer, listen } from './listen.js';

export interface HttpServer {
  /** An https.Server when TLS is on (it is an http.Server to everything that attaches to it). */
  server: http.Server;
  address: { host: string; port: number };
  /** `https://host:port` or `http://host:port`. */
  url: string;
  /** Where browsers should go: the certificate's names and addresses when bound to all interfaces. */
  openAt: string[];
  tls: TlsMaterial | null;
  /** Where the plain-HTTP port (CA + redirect) listens, when it does. */
  redirect: { host: string; port: number } | null;
  close(): Promise<void>;
}

export interface HttpOptions {
  host: string;
  port: number;
  routes: Route[];
  tls?: TlsPaths | null;
  redirectPort?: number | null;
  log?: Logger;
}

/**
 * What every response carries unless its route says more (the web client's files: static.ts
 * PAGE_HEADERS): nothing may run, load or frame it. /healthz, /metrics, /ca.crt and errors are data.
 */
export const BASELINE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
};

export function handler(routes: Route[]): http.RequestListener {
  return async (req, res) => {
    for (const [k, v] of Object.entries(BASELINE_HEADERS)) res.setHeader(k, v);
    try {
      for (const route of routes) if (await route(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    } catch {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    }
  };
}

/**
 * A phone that has not installed the team CA aborts the handshake; that is the first thing to
 * look for when "the page does not open", so it is logged — once a minute per address, since a
 * browser retries on every page load.
 */
function tlsErrorLogger(log: Logger | undefined, caUrl: string | null): (err: Error & { code?: string }, socket: net.Socket) => void {
  const last = new Map<string, number>();
  return (err, socket) => {
    if (!log) return;
    const who = socket.remoteAddress ?? '?';
    const now = Date.now();
    if ((last.get(who) ?? -Infinity) > now - 60_000) return;
    if (last.size > 1000) last.clear();
    last.set(who, now);
    const untrusted = /alert (unknown ca|bad certificate|certificate unknown)|ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN)/i.test(err.message + (err.code ?? ''));
    if (untrusted) log.info({ event: 'tls-refused', client: who }, `${who} does not trust the web certificate${caUrl ? `: install the team CA from ${caUrl}` : ''}`);
    else log.debug({ event: 'tls-error', client: who, err: err.message }, `TLS handshake with ${who} failed`);
  };
}

export async function startHttpServer(o: HttpOptions): Promise<HttpServer> {
  let tls: TlsMaterial | null = null;
  if (o.tls) {
    try {
      tls = loadTls(o.tls);
    } catch (err) {
      if (err instanceof TlsFileError) throw new UserError(`http.tls.${err.field}: ${err.message}`);
      throw err;
    }
  }
  const routes = tls?.ca ? [caRoute(tls.ca), ...o.routes] : o.routes;
  const server: http.Server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler(routes)) : http.createServer(handler(routes));
  const close = closer(server);
  const port = await listen(server, tls ? 'HTTPS server' : 'HTTP server', o.host, o.port);
  const url = `${tls ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  let redirect: Awaited<ReturnType<typeof startRedirectServer>> | null = null;
  if (tls && o.redirectPort != null) {
    try {
      redirect = await startRedirectServer({ host: o.host, port: o.redirectPort, httpsPort: port, tls });
    } catch (err) {
      await close();
      throw err;
    }
  }
  if (tls) server.on('tlsClientError', tlsErrorLogger(o.log, redirect ? `http://<this kit>:${redirect.port}/` : null));
  const wildcard = o.host === '0.0.0.0' || o.host === '::';
  const openAt = tls && wildcard ? altNames(tls.leaf).map((n) => `https://${n.replace(/^(DNS|IP):/, '').replace(/^(.*:.*)$/, '[$1]')}:${port}/`) : [url + '/'];
  return {
    server,
    address: { host: o.host, port },
    url,
    openAt,
    tls,
    redirect: redirect ? { host: o.host, port: redirect.port } : null,
    close: async () => {
      await redirect?.close();
      await close();
    },
  };
}

export function json(res: http.ServerResponse, status: number, body: unknown): true {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body) + '\n');
  return true;
}
