/**
 * The web client over HTTPS from a kit, as a team would use it: `talkbridge tls init` makes the
 * team CA and server certificate, `talkbridge run` with http.tls serves the page and MQTT over wss
 * on one port and the team CA on a plain-HTTP port. Node's https client trusts it with the CA
 * and only with it; real Chromium, trusting the server's key, gets a secure context (microphone,
 * WebCrypto) on a LAN name where plain HTTP does not, and its MQTT over wss reaches the broker.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { CHROMIUM, chromiumArgs } from '../../scripts/chromium.mjs';
import { freePort } from '../helpers/brokers.js';
import { runCli, startCli } from '../helpers/cli.js';
import { type PageState, startGateway, waitState } from './browser.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-https-'));
const dir = path.join(tmp, 'tls');
// A LAN-like name: unlike 127.0.0.1 or localhost, plain HTTP on it is not a secure context.
const NAME = 'kit.test';

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function fetchVia(mod: typeof http | typeof https, url: string, opts: https.RequestOptions = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { ...opts, lookup: (_h, o, cb) => (o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }] as never) : cb(null, '127.0.0.1', 4)) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  });
}

t.test('a kit over HTTPS with the team CA', async (t) => {
  const init = await runCli(['tls', 'init', '--dir', dir, '--host', NAME, '--host', '127.0.0.1']);
  t.equal(init.code, 0, init.stderr);
  const ca = readFileSync(path.join(dir, 'ca.crt'));

  const [mqttPort, port, redirectPort] = [await freePort(), await freePort(), await freePort()];
  const config = path.join(tmp, 'config.yaml');
  writeFileSync(
    config,
    `embeddedBroker: { port: ${mqttPort} }\n` +
      `http:\n  port: ${port}\n  redirectPort: ${redirectPort}\n  tls:\n    cert: ${dir}/server.crt\n    key: ${dir}/server.key\n    ca: ${dir}/ca.crt\n` +
      `gateway: { id: gw-https, name: HTTPS kit }\n`,
  );
  const daemon = startCli(['run', '--config', config], { env: { TALKBRIDGE_LOG_LEVEL: 'info' } });
  t.teardown(async () => {
    daemon.proc.kill('SIGTERM');
    await daemon.result;
  });
  const line = await daemon.waitFor(/"msg":"web on https:[^"]*"/, 20000);
  t.match(line, new RegExp(`web on https://127\\.0\\.0\\.1:${port}, MQTT over WebSocket on wss://127\\.0\\.0\\.1:${port}/mqtt`), 'logs the https:// and wss:// URLs');
  await daemon.waitFor(/talkbridge is running/, 20000);
  const base = `https://${NAME}:${port}/`;

  await t.test('Node https: accepted with the CA, refused without it or for a name not in the certificate', async (t) => {
    const ok = await fetchVia(https, base, { ca });
    t.equal(ok.status, 200);
    t.match(ok.body.toString(), /<!doctype html>/i, 'the web client');
    const health = await fetchVia(https, `https://127.0.0.1:${port}/healthz`, { ca });
    t.equal(health.status, 200, 'by IP address too (IP SAN)');
    await t.rejects(fetchVia(https, base), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'no CA: the certificate is not trusted');
    // A client that says why it gives up (a TLS alert, as browsers may): openssl without the CA.
    spawnSync('openssl', ['s_client', '-verify_return_error', '-connect', `127.0.0.1:${port}`, '-servername', NAME], { input: '', timeout: 10000 });
    await daemon.waitFor(/127\.0\.0\.1 does not trust the web certificate: install the team CA from http:\/\/<this kit>:\d+\//, 10000);
    t.pass('the daemon logs a client that refused the certificate, and where to get the CA');
    await t.rejects(fetchVia(https, `https://other.test:${port}/`, { ca }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'a name the certificate was not made for');
    await t.rejects(fetchVia(http, `http://127.0.0.1:${port}/`), 'plain HTTP on the HTTPS port gets no page');
    const caOverHttps = await fetchVia(https, `${base}ca.crt`, { ca });
    t.same(caOverHttps.body, ca, '/ca.crt on the HTTPS port too');
  });

  await t.test('the redirect port: the CA byte for byte, an install page, a redirect for the rest', async (t) => {
    const r = await fetchVia(http, `http://${NAME}:${redirectPort}/ca.crt`);
    t.equal(r.status, 200);
    t.equal(r.headers['content-type'], 'application/x-x509-ca-cert', 'the type phones install from');
    t.same(r.body, ca, 'byte-equal to ca.crt');
    const page = await fetchVia(http, `http://${NAME}:${redirectPort}/`);
    t.equal(page.status, 200);
    const fp = new X509Certificate(ca).fingerprint256;
    t.match(page.body.toString(), fp, 'the page shows the CA fingerprint');
    t.match(page.body.toString(), /Certificate Trust Settings/, 'and the iOS trust step');
    t.notMatch(page.body.toString(), /PRIVATE KEY/);
    const red = await fetchVia(http, `http://${NAME}:${redirectPort}/index.html?x=1`);
    t.equal(red.status, 307);
    t.equal(red.headers.location, `https://${NAME}:${port}/index.html?x=1`, 'to the same host on the HTTPS port');
    const health = await fetchVia(http, `http://${NAME}:${redirectPort}/healthz`);
    t.equal(health.status, 307, '/healthz is not served in the clear');
  });

  await t.test('Chromium: secure context, WebCrypto, and MQTT over wss to the embedded broker', async (t) => {
    const leaf = new X509Certificate(readFileSync(path.join(dir, 'server.crt')));
    const spki = createHash('sha256')
      .update(leaf.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64');
    t.match(init.stdout + (await runCli(['tls', 'show', '--dir', dir])).stdout, spki, 'tls show prints the SPKI pin');

    // A plain-HTTP gateway on the same name, as a control: no secure context there.
    const plain = await startGateway();
    t.teardown(() => plain.stop());
    const plainPort = new URL(plain.web).port;

    const profile = mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...chromiumArgs(), `--host-resolver-rules=MAP ${NAME} 127.0.0.1`, `--ignore-certificate-errors-spki-list=${spki}`],
      permissions: ['microphone'],
    });
    t.teardown(async () => {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    });
    await context.addInitScript(() => ((window as unknown as { __talkbridgeTest: object }).__talkbridgeTest = {}));
    const page = context.pages()[0] ?? (await context.newPage());
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));

    const probe = () =>
      page.evaluate(async () => ({
        secure: window.isSecureContext,
        subtle: typeof crypto.subtle?.digest === 'function' ? Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array([1])))).length : 0,
        mic: typeof navigator.mediaDevices?.getUserMedia === 'function',
        protocol: location.protocol,
      }));

    await page.goto(`http://${NAME}:${plainPort}/#channel=base&name=Plain`);
    const insecure = await probe();
    t.same(insecure, { secure: false, subtle: 0, mic: false, protocol: 'http:' }, `control: http://${NAME} is not a secure context`);
    // Errors of the insecure control page (no AudioWorklet there) are not what this test is about.
    errors.length = 0;

    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`);
    t.teardown(() => watcher.endAsync());
    const seen: string[] = [];
    watcher.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await watcher.subscribeAsync('talkbridge/v1/base/presence/+');

    // Where a phone starts: the install page on the plain port. This browser already trusts the
    // server, so the page's probe succeeds and it moves on to HTTPS, keeping the #fragment.
    await page.goto(`http://${NAME}:${redirectPort}/#channel=base&name=Ann`);
    await page.waitForURL(`https://${NAME}:${port}/#channel=base&name=Ann`, { timeout: 15000 });
    t.pass('the install page sends a browser that trusts the kit on to HTTPS');
    const st: PageState = await waitState(page, (s) => s.conn === 'connected' && s.joined, 20000, 'joined over wss');
    t.not(st.mic, 'insecure', `the page's microphone state is "${st.mic}", not insecure`);
    const secure = await probe();
    t.same(secure, { secure: true, subtle: 32, mic: true, protocol: 'https:' }, 'secure context: crypto.subtle works, getUserMedia exists');
    const url = await page.evaluate(() => (window as unknown as { __talkbridgeTest: { state: () => { sender: string } } }).__talkbridgeTest.state().sender);
    const until = Date.now() + 10000;
    while (!seen.some((s) => s.includes(`/presence/${url}`)) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    t.ok(
      seen.some((s) => s.includes(`/presence/${url}`)),
      `the page's presence (${url}) reached the embedded broker over wss`,
    );
    t.same(errors, [], 'no page errors');
  });
});
