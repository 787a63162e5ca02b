#!/usr/bin/env node
// Screenshots of the web client's main states for docs/screenshots/ (PNG): the join form, joined
// and idle, the link's QR code, talking, receiving a radio, busy (talking refused), broker lost. Runs a real gateway
// on free loopback ports, Debian's headless Chromium with a fake microphone, and a simulated radio
// talker on the channel. Needs `npm run build` first (it uses gateway/dist and gateway/web/dist).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hookedPage, launchChromium } from './chromium.mjs';
import { freePort, sleep } from './net.mjs';
import { pino } from 'pino';
import { startDaemon } from '../gateway/dist/src/app/daemon.js';
import { ConfigSchema } from '../gateway/dist/src/config/schema.js';
import { openChannel } from '../gateway/dist/src/talk/open.js';
import { sendPcm } from '../gateway/dist/src/talk/send.js';
import { createEncoder } from '../gateway/dist/src/codec/opus-node.js';
import { readWav } from '../gateway/dist/src/audio/wav.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'docs/screenshots');
const speech = path.join(root, 'test/fixtures/speech-16k.wav');

mkdirSync(outDir, { recursive: true });
const [mqttPort, httpPort] = [await freePort(), await freePort()];
const config = ConfigSchema.parse({ embeddedBroker: { port: mqttPort }, http: { port: httpPort }, gateway: { id: 'kit-1', name: 'Field kit 1' } });
const daemon = await startDaemon(config, pino({ level: 'silent' }));
const brokerUrl = `mqtt://127.0.0.1:${mqttPort}`;
const web = `http://127.0.0.1:${httpPort}/`;

const common = { url: brokerUrl, prefix: 'talkbridge/v1', channel: 'base', silenceMs: 1000 };
const radio = await openChannel({ ...common, name: 'Truck 4', source: 'radio' });
const maria = await openChannel({ ...common, name: 'Maria (coordinator)', source: 'web' });
const pcm = await readWav(speech);
const encoder = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 });
const radioOver = (seconds) =>
  sendPcm(radio.session, encoder, { sampleRate: pcm.sampleRate, samples: pcm.samples.subarray(0, Math.round(pcm.sampleRate * seconds)) }, { framesPerPacket: 2, frameMs: 20, fast: false });

const context = await launchChromium({ micFile: speech, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
const { page, until } = await hookedPage(context);
const shots = [];
async function shot(name, o = {}) {
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: o.fullPage ?? false });
  shots.push(path.relative(root, file));
}

try {
  await page.goto(web);
  await page.locator('#f-name').fill('Ann at base');
  await page.locator('#f-channel').fill('base');
  await shot('join');

  await page.goto(`${web}#channel=base&name=${encodeURIComponent('Ann at base')}`);
  await until((s) => s.conn === 'connected' && s.joined && s.online.length >= 4, 'joined');
  await radioOver(2.2);
  await until((s) => s.holder === null, 'first over done');
  await sleep(300);
  await shot('joined-idle');
  await page.getByRole('button', { name: /Show (invite )?QR/ }).click();
  await page.locator('#qr svg').waitFor();
  await page.locator('#qr-wrap').scrollIntoViewIfNeeded();
  await shot('qr');
  await page.getByRole('button', { name: 'Hide QR' }).click();
  await page.evaluate(() => (document.activeElement.blur(), window.scrollTo(0, 0)));

  const btn = page.getByRole('button', { name: 'Push to talk', exact: true });
  await page.keyboard.down('Space');
  await until((s) => s.talk === 'talking', 'talking');
  await sleep(1300);
  await shot('talking');
  await page.keyboard.up('Space');
  await until((s) => s.talk === 'idle' && s.holder === null, 'over ended');
  await sleep(300);

  const over = radioOver(4.9);
  await until((s) => s.holder?.name === 'Truck 4', 'receiving');
  await sleep(1200);
  await shot('receiving');
  await page.setViewportSize({ width: 1100, height: 720 });
  await sleep(200);
  await shot('receiving-desktop');
  await page.setViewportSize({ width: 390, height: 844 });
  await btn.hover();
  await page.mouse.down();
  await until((s) => s.talk === 'refused', 'refused');
  await sleep(350); // after the shake
  await shot('busy');
  await page.mouse.up();
  await over;
  await until((s) => s.holder === null, 'clear');

  await radio.close();
  await maria.close();
  await daemon.stop();
  await until((s) => s.conn === 'reconnecting', 'broker lost');
  await sleep(1200);
  await shot('broker-lost');
} finally {
  encoder.close();
  await context.close();
  await daemon.stop().catch(() => {});
}
console.log(`screenshots written:\n  ${shots.join('\n  ')}`);
process.exit(0);
