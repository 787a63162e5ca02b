/**
 * The three browsers the web client is tested in, behind one small interface for the scenarios
 * every one of them runs (scenarios.ts; chromium.test.ts, firefox.test.ts, webkit.test.ts).
 *
 * - Chromium: playwright-core, as in the Chromium-only tests (browser.ts, scripts/chromium.mjs).
 *   playwright-core speaks only its own patched Firefox's protocol and cannot drive Debian's.
 * - Firefox: puppeteer-core over WebDriver BiDi; headless, a new empty profile, Firefox's fake
 *   microphone (a tone) or none, and its own PulseAudio with only a null sink as the sound output
 *   (Firefox's Web Audio runs only with an output device; this machine has no sound card).
 *   window.__talkbridgeTest (test-hook.ts) is installed before the page's scripts run.
 * - WebKit: WebKitWebDriver (classic W3C WebDriver, plain HTTP: no client library needed) starting
 *   MiniBrowser on its own Xvfb display, with WebKit's mock capture device (a tone) or none. Classic
 *   WebDriver cannot run a script before the page's own, so the tab asks for the test hook in its
 *   sessionStorage before it opens the page (test-hook.ts honours that only under automation).
 *
 * Every driver call is bounded (CALL_MS): a browser that stops answering fails the test with what
 * it was asked, rather than hanging until tap's per-file timeout, which kills the file without its
 * teardown. close() ends the browser and the sound server, and so does this process's exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'puppeteer-core';
import { launchChromium } from '../../scripts/chromium.mjs';

/** Debian's Chromium through playwright-core: its fake microphone is a beep. */
export async function launchChromiumDriven(o: LaunchOptions): Promise<Driven> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-'));
  const context = await launchChromium({ noMic: !o.fakeMic, dir });
  const close = async () => {
    await bounded(context.close(), 5000, 'chromium: close').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await context.addInitScript(() => ((window as unknown as { __talkbridgeTest: object }).__talkbridgeTest = {}));
    const page = context.pages()[0] ?? (await context.newPage());
    return {
      version: `chromium ${context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent)).replace(/.*Chrome\/(\S+).*/, '$1')}`,
      goto: async (url) => void (await driverCall(page.goto(url, { timeout: CALL_MS }), CALL_MS + 1000, `chromium: goto ${url}`)),
      evaluate: (fn, arg) => driverCall(page.evaluate(expression(fn, arg)) as Promise<never>, CALL_MS, 'chromium: evaluate'),
      async pointerDown(selector) {
        await driverCall(page.hover(selector, { timeout: CALL_MS }), CALL_MS + 1000, `chromium: hover ${selector}`);
        await driverCall(page.mouse.down(), CALL_MS, 'chromium: mouse.down');
      },
      pointerUp: () => driverCall(page.mouse.up(), CALL_MS, 'chromium: mouse.up'),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

export const FIREFOX = process.env.TALKBRIDGE_FIREFOX ?? '/usr/bin/firefox-esr';

export const MINIBROWSER = process.env.TALKBRIDGE_MINIBROWSER ?? findMiniBrowser();

/** The longest any one driver call may take. */
export const CALL_MS = 10_000;
const LAUNCH_MS = 30_000;

export interface LaunchOptions {
  /** The browser's fake microphone (a tone); without, no capture device at all. */
  fakeMic: boolean;
  /** A sound output (default true): without, Firefox runs with no sound server. WebKit plays into GStreamer's fallback sink either way. */
  audioOut?: boolean;
}

export type Launcher = (o: LaunchOptions) => Promise<Driven>;

export interface Driven {
  /** e.g. "firefox 153.8.0esr", as the browser reports it. */
  readonly version: string;
  goto(url: string): Promise<void>;
  /** Runs `fn` (serialised: no closures) in the page with `arg`, and returns its JSON-able result. */
  evaluate<A, R>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  /** Real pointer input: press on the centre of the element, and release. */
  pointerDown(selector: string): Promise<void>;
  pointerUp(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The browser's automation channel stopped answering (a call ran out its time). Firefox's remote
 * agent does this to about one launch in six here, at a random moment and for good, while the page
 * itself goes on: the scenarios start again in a new browser on this error and on no other
 * (scenarios.ts, `attempt`).
 */
export class DriverHang extends Error {
  override name = 'DriverHang';
}

/** A driver call, bounded: a DriverHang naming `what` if it takes longer than `ms`. */
export function driverCall<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return bounded(p, ms, what).catch((err: Error) => {
    // puppeteer's own protocolTimeout says "… timed out. Increase the 'protocolTimeout' …".
    if (err instanceof DriverHang || /did not finish within|timed out/i.test(err.message)) throw new DriverHang(`${what}: ${err.message}`);
    throw err;
  });
}

/** `p`, or a rejection naming `what` after `ms`. */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `fn` with `arg` as one expression for the page. tsx (esbuild's keepNames) wraps named functions
 * inside test code in calls to __name, which the page does not have.
 */
function expression<A, R>(fn: (arg: A) => R | Promise<R>, arg: A): string {
  return `((__name) => (${fn.toString()}))((f) => f)(${JSON.stringify(arg) ?? 'undefined'})`;
}

/** Processes still running, killed if this process exits before their close(). */
const live = new Set<ChildProcess>();
const killLive = () => {
  for (const p of live) kill(p, 'SIGKILL');
};

/** Signals `p`'s whole process group when it leads one (the WebDriver and the browser it started), else `p`. */
function kill(p: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (p.pid) process.kill(-p.pid, signal);
  } catch {
    p.kill(signal);
  }
}
process.once('exit', killLive);
// tap ends a file that overruns its timeout with SIGTERM, and runs no teardown then.
process.once('SIGTERM', () => {
  killLive();
  if (process.listenerCount('SIGTERM') === 0) process.exit(143);
});

function track(p: ChildProcess | null | undefined): void {
  if (!p) return;
  live.add(p);
  p.once('exit', () => live.delete(p));
}

function waitExit(p: ChildProcess, ms: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => (kill(p, 'SIGKILL'), resolve()), ms);
    p.once('exit', () => (clearTimeout(t), resolve()));
  });
}

export async function launchFirefox(o: LaunchOptions): Promise<Driven> {
  // Its CommonJS build: tap's loader mangles the paths puppeteer's ES modules import lazily.
  const puppeteer = createRequire(import.meta.url)('puppeteer-core') as typeof import('puppeteer-core').default;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-firefox-'));
  const pulse = o.audioOut === false ? null : await startPulse(dir);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), HOME: dir, XDG_RUNTIME_DIR: dir };
  env.PULSE_SERVER = `unix:${pulse ? pulse.socket : path.join(dir, 'no-sound-server')}`;
  let browser: Browser | null = null;
  const close = async () => {
    const proc = browser?.process();
    if (browser) await bounded(browser.close(), 5000, 'firefox: close').catch(() => {});
    if (proc) {
      kill(proc, 'SIGKILL');
      await waitExit(proc, 2000);
    }
    if (pulse) {
      pulse.proc.kill('SIGTERM');
      await waitExit(pulse.proc, 3000);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      protocol: 'webDriverBiDi',
      executablePath: FIREFOX,
      headless: true,
      userDataDir: path.join(dir, 'profile'),
      env,
      timeout: LAUNCH_MS,
      protocolTimeout: CALL_MS,
      networkEnabled: false,
      extraPrefsFirefox: {
        // The network is closed: nothing in the background.
        'app.update.enabled': false,
        'app.update.auto': false,
        'browser.shell.checkDefaultBrowser': false,
        'datareporting.policy.dataSubmissionEnabled': false,
        'toolkit.telemetry.enabled': false,
        'network.captive-portal-service.enabled': false,
        'network.connectivity-service.enabled': false,
        'extensions.update.enabled': false,
        'browser.safebrowsing.malware.enabled': false,
        'browser.safebrowsing.phishing.enabled': false,
        // The microphone: allowed without a prompt; a fake one, or none at all.
        'media.navigator.permission.disabled': true,
        'media.navigator.streams.fake': o.fakeMic,
        'media.autoplay.default': 0,
        'media.autoplay.block-webaudio': false,
      },
    });
    track(browser.process());
    const b = browser;
    const page = (await driverCall(b.pages(), CALL_MS, 'firefox: pages()'))[0] ?? (await driverCall(b.newPage(), CALL_MS, 'firefox: newPage()'));
    await driverCall(page.evaluateOnNewDocument('window.__talkbridgeTest = {};'), CALL_MS, 'firefox: evaluateOnNewDocument');
    const version = `firefox ${(await driverCall(b.version(), CALL_MS, 'firefox: version()')).replace(/^firefox\//i, '')}`;
    return {
      version,
      goto: async (url) => void (await driverCall(page.goto(url, { timeout: CALL_MS }), CALL_MS + 1000, `firefox: goto ${url}`)),
      evaluate: (fn, arg) => driverCall(page.evaluate(expression(fn, arg)) as never, CALL_MS, 'firefox: evaluate'),
      async pointerDown(selector) {
        const el = await driverCall(page.waitForSelector(selector, { timeout: CALL_MS }), CALL_MS + 1000, `firefox: waitForSelector ${selector}`);
        const box = await driverCall(el!.boundingBox(), CALL_MS, 'firefox: boundingBox');
        if (!box) throw new Error(`firefox: ${selector} is not visible`);
        await driverCall(page.mouse.move(box.x + box.width / 2, box.y + box.height / 2), CALL_MS, 'firefox: mouse.move');
        await driverCall(page.mouse.down(), CALL_MS, 'firefox: mouse.down');
      },
      pointerUp: () => driverCall(page.mouse.up(), CALL_MS, 'firefox: mouse.up'),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** PulseAudio with only a null sink, its socket in `dir`; resolves once it accepts clients. */
async function startPulse(dir: string): Promise<{ socket: string; proc: ChildProcess }> {
  const socket = path.join(dir, 'pulse-native');
  const proc = spawn(
    'pulseaudio',
    ['-n', '--daemonize=no', '--exit-idle-time=-1', '--use-pid-file=false', '--system=false', '-L', 'module-null-sink', '-L', `module-native-protocol-unix socket=${socket} auth-anonymous=1`],
    { env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir }, stdio: 'ignore' },
  );
  track(proc);
  for (const until = Date.now() + 5000; Date.now() < until && proc.exitCode === null; ) {
    if (existsSync(socket)) return { socket, proc };
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('PulseAudio did not start');
}

function findMiniBrowser(): string {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib']) {
    for (const api of ['webkit2gtk-4.1', 'webkit2gtk-4.0', 'webkitgtk-6.0']) {
      const p = path.join(dir, api, 'MiniBrowser');
      if (existsSync(p)) return p;
    }
  }
  return '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
}

/** Xvfb on a display number it picks itself (-displayfd), so parallel runs never collide. */
async function startXvfb(): Promise<{ display: string; proc: ChildProcess }> {
  const proc = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp', '-noreset'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  track(proc);
  const fd = proc.stdio[3] as NodeJS.ReadableStream;
  const display = await bounded(
    new Promise<string>((resolve, reject) => {
      let got = '';
      fd.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('\n')) resolve(`:${got.trim()}`);
      });
      proc.once('exit', (code) => reject(new Error(`Xvfb exited (${code}) before it had a display`)));
    }),
    10_000,
    'webkit: Xvfb start',
  ).catch((err) => {
    proc.kill('SIGKILL');
    throw err;
  });
  return { display, proc };
}

/** Waits until an HTTP server answers on `port`. */
async function listening(port: number, ms: number): Promise<void> {
  for (const until = Date.now() + ms; ; ) {
    try {
      await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(1000) });
      return;
    } catch (err) {
      if (Date.now() > until) throw new Error(`webkit: WebKitWebDriver did not answer on port ${port} within ${ms} ms (${(err as Error).message})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A port no one listens on now (the driver must be told one; it cannot report its own). */
async function freeTcpPort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function launchWebKit(o: LaunchOptions): Promise<Driven> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-webkit-'));
  let xvfb: { display: string; proc: ChildProcess } | null = null;
  let driver: ChildProcess | null = null;
  let base = '';
  let session = '';
  const call = async <R>(method: string, route: string, body?: unknown, ms = CALL_MS): Promise<R> => {
    const res = await driverCall(
      fetch(`${base}${route}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(ms + 1000),
      }),
      ms + 2000,
      `webkit: ${method} ${route}`,
    );
    const json = (await res.json()) as { value: R & { error?: string; message?: string } };
    if (!res.ok) throw new Error(`webkit: ${method} ${route}: ${json.value?.error ?? res.status} ${json.value?.message ?? ''}`);
    return json.value;
  };
  const close = async () => {
    if (session) await call('DELETE', `/session/${session}`, undefined, 5000).catch(() => {});
    for (const p of [driver, xvfb?.proc]) {
      if (!p) continue;
      kill(p, 'SIGTERM');
      await waitExit(p, 3000);
      if (p === driver) kill(p, 'SIGKILL'); // whatever of the browser outlived the driver
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    xvfb = await startXvfb();
    const port = await freeTcpPort();
    base = `http://127.0.0.1:${port}`;
    // No sound server, no session bus: WebKit plays into GStreamer's fallback and says nothing of it.
    const env = { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir, DISPLAY: xvfb.display, PULSE_SERVER: `unix:${path.join(dir, 'no-sound-server')}` };
    // Its own process group, so that close() (and this process's exit) ends MiniBrowser and its helpers too.
    driver = spawn('WebKitWebDriver', [`--port=${port}`], { env, stdio: 'ignore', detached: true });
    track(driver);
    await listening(port, 10_000);
    const created = await call<{ sessionId: string; capabilities: { browserName: string; browserVersion: string } }>(
      'POST',
      '/session',
      {
        capabilities: {
          alwaysMatch: {
            timeouts: { script: CALL_MS, pageLoad: CALL_MS },
            'webkitgtk:browserOptions': {
              binary: MINIBROWSER,
              args: ['--automation', `--enable-mock-capture-devices=${o.fakeMic}`, '--enable-media-stream=true', '--autoplay-policy=allow'],
            },
          },
        },
      },
      LAUNCH_MS,
    );
    session = created.sessionId;
    const s = `/session/${session}`;
    const version = `webkitgtk ${created.capabilities.browserVersion}`;
    return {
      version,
      async goto(url) {
        // The hook first, in the tab's sessionStorage on the page's origin, then the page itself.
        await call('POST', `${s}/url`, { url: new URL('/healthz', url).href });
        await call('POST', `${s}/execute/sync`, { script: "sessionStorage.setItem('__talkbridgeTest', '1');", args: [] });
        await call('POST', `${s}/url`, { url });
      },
      async evaluate(fn, arg) {
        const script = `const done = arguments[arguments.length - 1];
          Promise.resolve().then(() => ${expression(fn, arg)}).then((value) => done({ value }), (e) => done({ error: String(e && e.stack || e) }));`;
        const r = await call<{ value?: unknown; error?: string }>('POST', `${s}/execute/async`, { script, args: [] });
        if (r.error) throw new Error(`webkit: evaluate: ${r.error}`);
        return r.value as never;
      },
      async pointerDown(selector) {
        const el = await call<Record<string, string>>('POST', `${s}/element`, { using: 'css selector', value: selector });
        const ref = Object.values(el)[0];
        await call('POST', `${s}/actions`, {
          actions: [
            {
              type: 'pointer',
              id: 'mouse',
              parameters: { pointerType: 'mouse' },
              actions: [
                { type: 'pointerMove', origin: { 'element-6066-11e4-a52e-4f735466cecf': ref }, x: 0, y: 0 },
                { type: 'pointerDown', button: 0 },
              ],
            },
          ],
        });
      },
      async pointerUp() {
        await call('POST', `${s}/actions`, { actions: [{ type: 'pointer', id: 'mouse', parameters: { pointerType: 'mouse' }, actions: [{ type: 'pointerUp', button: 0 }] }] });
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
