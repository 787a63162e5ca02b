// How talkbridge starts Debian's Chromium for its tests, screenshots and browser benchmark: headless,
// as root (no sandbox), on a machine with no internet (no background networking), with a fake
// microphone playing a WAV file. One place, so the three cannot drift apart.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.TALKBRIDGE_CHROMIUM ?? '/usr/bin/chromium';

/** `noMic`: no capture device at all (headless Chromium has none without the fake one). */
export function chromiumArgs(micFile, { noMic = false } = {}) {
  return [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-gpu',
    '--disable-quic',
    ...(noMic ? [] : ['--use-fake-device-for-media-stream']),
    '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    ...(micFile ? [`--use-file-for-fake-audio-capture=${micFile}`] : []),
  ];
}

/** A persistent context in a fresh profile directory (`dir`, or a new temp one) with the microphone allowed. */
export function launchChromium({ micFile, noMic, viewport, deviceScaleFactor, dir = mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-')) } = {}) {
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs(micFile, { noMic }),
    ...(viewport ? { viewport } : {}),
    ...(deviceScaleFactor ? { deviceScaleFactor } : {}),
    permissions: ['microphone'],
  });
}

/**
 * The page of a context, with the client's test hook installed before its scripts run, and a
 * poll for a state of the page (window.__talkbridgeTest.state()).
 */
export async function hookedPage(context) {
  await context.addInitScript(() => (window.__talkbridgeTest = {}));
  const page = context.pages()[0] ?? (await context.newPage());
  const state = () => page.evaluate(() => window.__talkbridgeTest.state());
  async function until(pred, what, ms = 15000) {
    const end = Date.now() + ms;
    for (;;) {
      const s = await state();
      if (pred(s)) return s;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { page, state, until };
}
