/**
 * The web client under its Content-Security-Policy (http/static.ts PAGE_CSP), in real headless
 * Chromium: served by one gateway, it talks MQTT over WebSocket to a broker on another origin,
 * compiles the WASM Opus codec, runs its AudioWorklets and registers its service worker, and the
 * browser reports no violation at all. A deliberate eval() is reported: the policy is in force
 * and the listener would have seen a violation.
 */
import t from 'tap';
import path from 'node:path';
import { FIXTURES } from '../helpers/cli.js';
import { PAGE_CSP } from '../../gateway/src/http/static.js';
import { joinPage, launch, startGateway, waitState } from './browser.js';

const SPEECH = path.join(FIXTURES, 'speech-short-16k.wav');

t.test('the page works under its CSP with a broker on another origin, and reports no violation', async (t) => {
  const page = await startGateway(); // serves the page (and has a broker the page does not use)
  t.teardown(() => page.stop());
  const other = await startGateway(); // another origin: the broker the user configured
  t.teardown(() => other.stop());
  const b = await launch({ micFile: SPEECH });
  t.teardown(() => b.close());
  // Recorded before any of the page's scripts run, in every frame and worker-owning document.
  await b.context.addInitScript(() => {
    const w = window as unknown as { __csp: string[] };
    w.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const violations = () => b.page.evaluate(() => (window as unknown as { __csp: string[] }).__csp);

  const res = await b.page.goto(page.web);
  t.equal(res?.headers()['content-security-policy'], PAGE_CSP, 'the page is served with the policy');
  t.equal(res?.headers()['x-frame-options'], 'DENY');
  t.notSame(new URL(other.ws).origin, new URL(page.web).origin.replace('http', 'ws'), 'the broker is on another origin');

  // joinPage waits for our own presence to come back: through the broker on the other origin.
  const st = await joinPage(b.page, page.web, { name: 'Csp', codec: 'wasm', broker: other.ws });
  t.equal(st.encoder, 'wasm', 'the WASM Opus encoder compiled (wasm-unsafe-eval)');
  const btn = b.page.getByRole('button', { name: 'Push to talk', exact: true });
  await btn.hover();
  await b.page.mouse.down();
  await waitState(b.page, (s) => s.talk === 'talking', 10000, 'talking: microphone worklet and encoder running');
  await new Promise((r) => setTimeout(r, 800));
  await b.page.mouse.up();
  await waitState(b.page, (s) => s.talk === 'idle', 5000, 'over ended');
  const sw = await b.page.evaluate(async () => {
    const reg = await Promise.race([navigator.serviceWorker.ready, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    return reg?.active?.scriptURL ?? null;
  });
  t.equal(sw, new URL('sw.js', page.web).href, 'the service worker is registered and active');

  t.same(await violations(), [], 'no CSP violation reported');
  t.same(b.errors, [], 'no console or page errors');

  // The control: what the policy forbids is refused and reported, so the silence above means
  // something. (Playwright's own evaluate() is exempt from CSP, a script element is not.)
  const ran = await b.page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__injected = true';
    document.head.append(s);
    await new Promise((r) => setTimeout(r, 100));
    return (window as unknown as { __injected?: boolean }).__injected === true;
  });
  t.equal(ran, false, 'an injected inline script does not run');
  t.match(await violations(), [/^script-src-elem inline /], 'and is reported as a violation');
});
