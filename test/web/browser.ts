/**
 * Test helpers for the web client: a real gateway (startDaemon: embedded aedes broker, the static
 * route serving gateway/web/dist and MQTT over WebSocket on /mqtt) on free loopback ports, and
 * Debian's headless Chromium driven by playwright-core with a fake microphone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { BrowserContext, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../../scripts/chromium.mjs';
import { startDaemon, type Daemon } from '../../gateway/src/app/daemon.js';
import { ConfigSchema } from '../../gateway/src/config/schema.js';
import { freePort } from '../helpers/brokers.js';

export { CHROMIUM };

export interface Gateway {
  daemon: Daemon;
  /** http://127.0.0.1:PORT/ */
  web: string;
  /** mqtt://127.0.0.1:PORT for the CLI */
  mqtt: string;
  ws: string;
  stop(): Promise<void>;
}

export async function startGateway(): Promise<Gateway> {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const config = ConfigSchema.parse({
    embeddedBroker: { port: mqttPort },
    http: { port: httpPort },
    gateway: { id: 'gw-test', name: 'Test gateway' },
    log: { level: 'silent' },
  });
  const daemon = await startDaemon(config, pino({ level: 'silent' }));
  return {
    daemon,
    web: `http://127.0.0.1:${httpPort}/`,
    mqtt: `mqtt://127.0.0.1:${mqttPort}`,
    ws: `ws://127.0.0.1:${httpPort}/mqtt`,
    stop: () => daemon.stop(),
  };
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen so far. */
  errors: string[];
  close(): Promise<void>;
}

/**
 * @param micFile WAV the fake microphone plays (looped), or none for Chromium's beep
 * @param hook install window.__talkbridgeTest before the page's scripts run
 */
export async function launch(o: { micFile?: string; hook?: boolean; viewport?: { width: number; height: number } } = {}): Promise<Browser> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-'));
  const context = await launchChromium({ micFile: o.micFile, viewport: o.viewport ?? { width: 1100, height: 800 }, dir });
  if (o.hook !== false) await context.addInitScript(() => ((window as unknown as { __talkbridgeTest: object }).__talkbridgeTest = {}));
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return {
    context,
    page,
    errors,
    async close() {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PageState {
  conn: string;
  talk: string;
  holder: { name: string; source: string; self: boolean } | null;
  mic: string;
  encoder: string | null;
  sender: string | null;
  joined: boolean;
  online: string[];
  sampleRate: number;
  outputLatencyMs: number;
}

export function pageState(page: Page): Promise<PageState> {
  return page.evaluate(() => (window as unknown as { __talkbridgeTest: { state: () => PageState } }).__talkbridgeTest.state());
}

export async function waitState(page: Page, pred: (s: PageState) => boolean, ms = 10000, what = 'page state'): Promise<PageState> {
  const until = Date.now() + ms;
  let s = await pageState(page);
  while (!pred(s)) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last state ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
    s = await pageState(page);
  }
  return s;
}

/** Opens the page on a channel and waits until our presence is back from the broker. */
export async function joinPage(page: Page, url: string, o: { channel?: string; name?: string; codec?: string; broker?: string } = {}): Promise<PageState> {
  const q = new URLSearchParams({ channel: o.channel ?? 'base', name: o.name ?? 'Ann' });
  if (o.codec) q.set('codec', o.codec);
  if (o.broker) q.set('broker', o.broker);
  await page.goto(`${url}#${q}`);
  return waitState(page, (s) => s.conn === 'connected' && s.joined, 15000, 'joined');
}

/** What the playback worklet rendered since the hook was last drained, as 16-bit PCM. */
export async function takePlayed(page: Page): Promise<{ rate: number; samples: Int16Array }> {
  const r = await page.evaluate(() => {
    const h = (window as unknown as { __talkbridgeTest: { played: Float32Array[]; playedRate: number } }).__talkbridgeTest;
    const chunks = h.played.splice(0);
    let n = 0;
    for (const c of chunks) n += c.length;
    const out = new Int16Array(n);
    let o = 0;
    for (const c of chunks) for (let i = 0; i < c.length; i++) out[o++] = Math.max(-32768, Math.min(32767, Math.round(c[i]! * 32767)));
    // Base64 keeps a few seconds of audio small on the way out of the page.
    const bytes = new Uint8Array(out.buffer);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { rate: h.playedRate, b64: btoa(s) };
  });
  const buf = Buffer.from(r.b64, 'base64');
  return { rate: r.rate, samples: new Int16Array(Uint8Array.from(buf).buffer) };
}
