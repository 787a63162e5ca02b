/**
 * The plain-HTTP companion of the HTTPS web port. A phone new to the kit cannot open the HTTPS
 * page until it trusts the team CA, so this port serves exactly two things over plain HTTP — the CA
 * certificate (/ca.crt) and a page on how to install it — and redirects everything else to HTTPS.
 * Nothing secret is here: the CA certificate is public; its key never leaves `talkbridge tls init`.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { TlsMaterial } from './tls.js';
import { fingerprint } from './tls.js';
import { closer, listen } from './listen.js';
import type { Route } from '../core/route.js';

/** What phones and desktop browsers recognise as "a CA certificate to install" (iOS opens its profile installer). */
export const CA_CONTENT_TYPE = 'application/x-x509-ca-cert';

export function caRoute(ca: Buffer): Route {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ca.crt' || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    res.writeHead(200, { 'content-type': CA_CONTENT_TYPE, 'content-length': String(ca.length), 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    res.end(req.method === 'HEAD' ? undefined : ca);
    return true;
  };
}

/** The host the browser used (IP or name, without the port), or null when the header is unusable. */
export function requestHost(header: string | undefined): string | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(?::\d{1,5})?$/.exec(header ?? '');
  return m ? m[1]! : null;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = `body{font:16px/1.45 system-ui,sans-serif;max-width:40em;margin:1em auto;padding:0 1em}code{word-break:break-all}
a.b{display:inline-block;padding:.6em 1em;margin:.3em 0;border-radius:.4em;background:#1a5fb4;color:#fff;text-decoration:none}
li{margin:.25em 0}`;

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

/**
 * The install page and its Content-Security-Policy: its one inline style and one inline script are
 * allowed by their hashes, nothing else runs; it may fetch only the kit's HTTPS origin (the probe)
 * and cannot be framed.
 */
export function installPage(o: { https: string; fingerprint: string; caName: string }): { body: string; csp: string } {
  // The probe below fetches the HTTPS port: it only succeeds once this phone trusts the CA, and
  // then the page moves on by itself (keeping the #fragment of an invite link).
  const script = `
(function(){var u=${JSON.stringify(o.https).replace(/</g, '\\u003c')};var go=document.getElementById('go');go.href=u+location.hash;
fetch(u+'healthz',{mode:'no-cors',cache:'no-store'}).then(function(){location.replace(u+location.hash)},function(){});})();
`;
  const csp = [
    "default-src 'none'",
    `style-src ${sha256(STYLE)}`,
    `script-src ${sha256(script)}`,
    `connect-src ${new URL(o.https).origin}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>talkbridge — install the team certificate</title>
<style>${STYLE}</style></head><body>
<h1>Install the team certificate</h1>
<p>This radio kit serves the talk page over HTTPS — phones only allow the microphone and encryption on
secure pages. Your phone has to trust the kit's team certificate once.</p>
<p><a class="b" href="/ca.crt">Download the team certificate</a><br>
<small>${esc(o.caName)} — SHA-256 <code>${esc(o.fingerprint)}</code>. Check that it matches what the kit operator reads out.</small></p>
<h2>Android</h2>
<ol><li>Tap the button above; the file <code>ca.crt</code> is saved to Downloads.</li>
<li>Settings → Security (&amp; privacy) → More security settings → Encryption &amp; credentials → Install a certificate → <b>CA certificate</b> → Install anyway.</li>
<li>Pick <code>ca.crt</code> from Downloads. (Settings' search finds "CA certificate" too.)</li></ol>
<h2>iPhone / iPad</h2>
<ol><li>Open this page in <b>Safari</b> and tap the button; allow the download of the configuration profile.</li>
<li>Settings → General → VPN &amp; Device Management → the talkbridge profile → Install.</li>
<li>Settings → General → About → <b>Certificate Trust Settings</b> → switch on the talkbridge team CA.</li></ol>
<h2>Then</h2>
<p><a class="b" id="go" href="${esc(o.https)}">Open the talk page</a></p>
<script>${script}</script>
</body></html>
`;
  return { body, csp };
}

export interface RedirectServer {
  port: number;
  close(): Promise<void>;
}

export async function startRedirectServer(o: { host: string; port: number; httpsPort: number; tls: TlsMaterial }): Promise<RedirectServer> {
  const ca = o.tls.ca ? caRoute(o.tls.ca) : null;
  const wildcard = o.host === '0.0.0.0' || o.host === '::';
  const fallbackHost = wildcard ? null : o.host.includes(':') ? `[${o.host}]` : o.host;
  const caName =
    o.tls.caCert?.subject
      .split('\n')
      .find((l) => l.startsWith('CN='))
      ?.slice(3) ?? 'team CA';
  const server = http.createServer((req, res) => {
    if (ca?.(req, res)) return;
    const host = requestHost(req.headers.host) ?? fallbackHost;
    if (!host) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('bad Host header\n');
      return;
    }
    const base = `https://${host}${o.httpsPort === 443 ? '' : `:${o.httpsPort}`}/`;
    const path = (req.url ?? '/').split('?')[0];
    if ((path === '/' || path === '/ca') && o.tls.caCert && (req.method === 'GET' || req.method === 'HEAD')) {
      const { body, csp } = installPage({ https: base, fingerprint: fingerprint(o.tls.caCert), caName });
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'content-security-policy': csp,
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    // 307, not 301/308: a permanent redirect would outlive turning TLS off again.
    res.writeHead(307, { location: base + (req.url ?? '/').replace(/^\//, ''), 'content-type': 'text/plain; charset=utf-8' }).end(`see ${base}\n`);
  });
  const close = closer(server);
  const port = await listen(server, 'HTTP redirect server', o.host, o.port);
  return { port, close };
}
