// How talkbridge starts Debian's Chromium for its tests, screenshots and browser benchmark: headless,
// as root (no sandbox), on a machine with no internet (no background networking), with a fake
// microphone playing a WAV file. One place, so the three cannot drift apart.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.TALKBRIDGE_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumArgs(micFile) {
  return [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-gpu',
    '--disable-quic',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    ...(micFile ? [`--use-file-for-fake-audio-capture=${micFile}`] : []),
  ];
}

/** A persistent context in a fresh profile directory (`dir`, or a new temp one) with the microphone allowed. */
export function launchChromium({ micFile, viewport, deviceScaleFactor, dir = mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-')) } = {}) {
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs(micFile),
    ...(viewport ? { viewport } : {}),
    ...(deviceScaleFactor ? { deviceScaleFactor } : {}),
    permissions: ['microphone'],
  });
}
