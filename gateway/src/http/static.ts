/**
 * Serves the built web client (gateway/web/dist) from the gateway's HTTP port.
 *
 * Only GET and HEAD; the request path is decoded and resolved inside the root, so "..", encoded
 * slashes and NUL bytes can never reach a file outside it. A path that names no file and looks
 * like a page (no extension) gets index.html, so a bookmarked deep link still opens the app.
 * Everything is sent with `no-cache` plus an ETag: phones revalidate cheaply and pick up a new
 * build at once, while the service worker keeps the app shell for when the network is gone.
 *
 * Every file goes out with a strict Content-Security-Policy (PAGE_CSP): scripts, styles and
 * workers from this origin only, no inline script or eval (WebAssembly compilation excepted: the
 * Opus codec), and no framing. Source maps are never served (scripts/build-web.mjs keeps them out
 * of the served folder; a `.map` put there by hand is a 404 all the same).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Route } from '../core/route.js';

export const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  // WebAssembly.compileStreaming refuses any other type.
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The web client's policy (docs/web-client.md), checked against the built page in real Chromium
 * (test/web/csp.test.ts, and every browser test fails on a console error, which a violation is):
 *
 * - `script-src 'self' 'wasm-unsafe-eval'`: app.js (a module), the AudioWorklet module and the
 *   service worker are files of this origin; WebAssembly.compile of the Opus codec needs
 *   'wasm-unsafe-eval', which allows WebAssembly and nothing else (no eval, no inline script).
 * - `style-src 'self'`: app.css; the page sets styles only through the CSSOM (element.style),
 *   which CSP does not restrict.
 * - `img-src 'self' data:`: icon.svg, and app.css's inline SVG lock icon.
 * - `connect-src 'self' ws: wss:`: the codec's fetch of its .wasm, and MQTT over WebSocket to
 *   whichever broker the user or the invite link names, on this host or any other. No http(s)
 *   to other hosts.
 * - `worker-src 'self' blob:`: the service worker; and MQTT.js keeps its keepalive timer in a
 *   small worker made from a blob: URL (the worker-timers package), because a background tab's
 *   own timers are throttled to once a minute and the broker would drop the connection. Only
 *   script already running in the page can make a blob: URL, so this lets in nothing new.
 * - `manifest-src 'self'`.
 * - Nothing else: `default-src 'none'`, `base-uri 'none'`, `form-action 'none'` (the join form is
 *   handled by script, never submitted), `frame-ancestors 'none'` (no clickjacking of the
 *   push-to-talk button).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "worker-src 'self' blob:",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers every file of the web client carries (server.ts adds the baseline for everything else). */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': PAGE_CSP,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export interface StaticOptions {
  /** Sent instead of a 404 for the page itself when the client has not been built. */
  missingIndex?: string;
}

/** Maps a request URL to a file path inside root, or null when it cannot be one. */
export function resolveInside(root: string, url: string): string | null {
  const q = url.indexOf('?');
  let p = q === -1 ? url : url.slice(0, q);
  const h = p.indexOf('#');
  if (h !== -1) p = p.slice(0, h);
  try {
    p = decodeURIComponent(p);
  } catch {
    return null;
  }
  if (!p.startsWith('/') || p.includes('\0') || p.includes('\\')) return null;
  const full = path.resolve(root, '.' + path.posix.normalize(p));
  const rel = path.relative(root, full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  return full;
}

export function staticFiles(rootDir: string, o: StaticOptions = {}): Route {
  const root = path.resolve(rootDir);
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = req.url ?? '/';
    let file = resolveInside(root, url);
    if (!file) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('bad path\n');
      return true;
    }
    // Source maps would hand out the client's source with every path in it; they are not part of the app.
    if (file.toLowerCase().endsWith('.map')) return false;
    let st = await stat(file).catch(() => null);
    if (st?.isDirectory()) {
      file = path.join(file, 'index.html');
      st = await stat(file).catch(() => null);
    }
    if (!st?.isFile()) {
      // Unknown asset: a real 404. Unknown page-like path: the app.
      if (path.extname(file) !== '' && path.basename(file) !== 'index.html') return false;
      file = path.join(root, 'index.html');
      st = await stat(file).catch(() => null);
      if (!st?.isFile()) {
        if (o.missingIndex === undefined) return false;
        res.writeHead(503, { ...PAGE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(o.missingIndex);
        return true;
      }
    }
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const headers: Record<string, string> = {
      ...PAGE_HEADERS,
      'content-type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
      etag,
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    headers['content-length'] = String(st.size);
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    await new Promise<void>((resolve) => {
      const s = createReadStream(file);
      s.on('error', () => {
        res.destroy();
        resolve();
      });
      s.on('end', () => resolve());
      s.pipe(res);
    });
    return true;
  };
}
