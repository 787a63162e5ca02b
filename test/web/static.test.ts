/** The gateway's static route for the web client: types, fallback, caching, and no way out of the root. */
import t from 'tap';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startHttpServer } from '../../gateway/src/http/server.js';
import { PAGE_CSP, resolveInside, staticFiles } from '../../gateway/src/http/static.js';
import { ROOT } from '../helpers/cli.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'tb-static-'));
mkdirSync(path.join(root, 'sub'));
writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>app</title>');
writeFileSync(path.join(root, 'app.js'), 'console.log(1)');
writeFileSync(path.join(root, 'opus.wasm'), Uint8Array.of(0, 97, 115, 109));
writeFileSync(path.join(root, 'manifest.webmanifest'), '{}');
writeFileSync(path.join(root, 'sub', 'icon.svg'), '<svg/>');
writeFileSync(path.join(os.tmpdir(), 'tb-secret.txt'), 'secret');

function get(port: number, p: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    // A raw path: no client-side normalisation of "..".
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('resolveInside never leaves the root', async (t) => {
  t.equal(resolveInside(root, '/app.js'), path.join(root, 'app.js'));
  t.equal(resolveInside(root, '/a/../app.js?x=1#y'), path.join(root, 'app.js'));
  t.equal(resolveInside(root, '/../../etc/passwd'), path.join(root, 'etc/passwd'), '.. above the root stays at the root');
  t.equal(resolveInside(root, '/%2e%2e/%2e%2e/tb-secret.txt'), path.join(root, 'tb-secret.txt'));
  t.equal(resolveInside(root, '/..%2f..%2ftb-secret.txt'), path.join(root, 'tb-secret.txt'));
  t.equal(resolveInside(root, '/x%00.js'), null, 'NUL');
  t.equal(resolveInside(root, '/..\\..\\x'), null, 'backslashes');
  t.equal(resolveInside(root, '/%E0%A4%A'), null, 'bad escape');
  t.equal(resolveInside(root, 'app.js'), null, 'not absolute');
});

t.test('serves the client with the right types and caching', async (t) => {
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, routes: [staticFiles(root)] });
  t.teardown(() => srv.close());
  const port = srv.address.port;
  const types: Array<[string, string]> = [
    ['/', 'text/html; charset=utf-8'],
    ['/index.html', 'text/html; charset=utf-8'],
    ['/app.js', 'text/javascript; charset=utf-8'],
    ['/opus.wasm', 'application/wasm'],
    ['/manifest.webmanifest', 'application/manifest+json'],
    ['/sub/icon.svg', 'image/svg+xml'],
  ];
  for (const [p, type] of types) {
    const r = await get(port, p);
    t.equal(r.status, 200, p);
    t.equal(r.headers['content-type'], type, p);
    t.equal(r.headers['cache-control'], 'no-cache', p);
    t.equal(r.headers['x-content-type-options'], 'nosniff', p);
  }
  const page = await get(port, '/some/deep/link');
  t.equal(page.status, 200, 'page-like path gets the app');
  t.match(page.body, /<title>app<\/title>/);
  t.equal((await get(port, '/missing.js')).status, 404, 'a missing asset is a 404, not the page');
  for (const p of ['/../tb-secret.txt', '/%2e%2e/tb-secret.txt', '/..%2ftb-secret.txt', '/sub/../../tb-secret.txt']) {
    const r = await get(port, p);
    t.notMatch(r.body, /secret/, `${p} does not escape (${r.status})`);
  }
  t.equal((await get(port, '/x%00y')).status, 400);
  const first = await get(port, '/app.js');
  const again = await get(port, '/app.js', { 'if-none-match': first.headers.etag! });
  t.equal(again.status, 304, 'revalidation by ETag');
  t.equal(again.body, '');
  const head = await get(port, '/app.js', {}, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '14');
  t.equal(head.body, '');
  t.equal((await get(port, '/app.js', {}, 'POST')).status, 404, 'only GET and HEAD');
});

t.test('an unbuilt client gets a helpful page, not a bare 404', async (t) => {
  const empty = mkdtempSync(path.join(os.tmpdir(), 'tb-static-empty-'));
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, routes: [staticFiles(empty, { missingIndex: 'run npm run build' })] });
  t.teardown(() => srv.close());
  const r = await get(srv.address.port, '/');
  t.equal(r.status, 503);
  t.match(r.body, /npm run build/);
  t.equal((await get(srv.address.port, '/app.js')).status, 404);
});

t.test('every file of the client carries a strict CSP and no-framing headers; source maps are never served', async (t) => {
  writeFileSync(path.join(root, 'app.js.map'), '{"version":3,"sources":["../src/main.ts"]}');
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, routes: [staticFiles(root)] });
  t.teardown(() => srv.close());
  const port = srv.address.port;
  for (const p of ['/', '/app.js', '/opus.wasm', '/some/deep/link']) {
    const r = await get(port, p);
    t.equal(r.status, 200, p);
    const csp = String(r.headers['content-security-policy']);
    t.equal(csp, PAGE_CSP, `${p}: the page policy`);
    t.equal(r.headers['referrer-policy'], 'no-referrer', p);
    t.equal(r.headers['x-frame-options'], 'DENY', p);
    t.equal(r.headers['cross-origin-opener-policy'], 'same-origin', p);
  }
  const directives = new Map(PAGE_CSP.split(/;\s*/).map((d) => [d.split(' ')[0]!, d.split(' ').slice(1)]));
  t.same(directives.get('default-src'), ["'none'"], 'nothing not named is allowed');
  t.same(directives.get('script-src'), ["'self'", "'wasm-unsafe-eval'"], 'no inline script, no eval; WebAssembly only');
  t.same(directives.get('frame-ancestors'), ["'none'"], 'never framed');
  t.same(directives.get('connect-src'), ["'self'", 'ws:', 'wss:'], 'MQTT over WebSocket to any broker, no http(s) elsewhere');
  for (const p of ['/app.js.map', '/APP.JS.MAP', '/sub/../app.js.map']) t.equal((await get(port, p)).status, 404, `${p} is not served`);
  // Everything else the port answers (here a 404) cannot run anything or be framed either.
  const miss = await get(port, '/missing.js');
  t.equal(miss.status, 404);
  t.match(miss.headers['content-security-policy'], /default-src 'none'.*frame-ancestors 'none'/);
  t.equal(miss.headers['x-content-type-options'], 'nosniff');
});

t.test('the built client has no source maps and no link to one', async (t) => {
  const dist = path.join(ROOT, 'gateway/web/dist');
  const files = readdirSync(dist);
  t.ok(files.includes('app.js') && files.includes('sw.js') && files.includes('worklet.js'), 'built (npm run build)');
  t.same(
    files.filter((f) => f.endsWith('.map')),
    [],
    'no .map in the served folder',
  );
  for (const f of files.filter((x) => x.endsWith('.js'))) t.notMatch(readFileSync(path.join(dist, f), 'utf8'), /sourceMappingURL/, `${f} links no source map`);
});
