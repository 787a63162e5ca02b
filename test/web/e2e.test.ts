/**
 * The browser client end to end, in real headless Chromium against a real gateway: the fake
 * microphone's speech goes out through the page and `talkbridge listen` receives it; `talkbridge
 * send` comes in and the page plays it; the page cannot take a busy channel; broker loss shows and
 * recovers. Speech is compared by energy envelopes (≥ 0.85), as for the CLI.
 */
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { readWav } from '../../gateway/src/audio/wav.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { type Browser, type Gateway, joinPage, launch, pageState, startGateway, takePlayed, waitState } from './browser.js';
import { checkHeardFromWeb } from './match.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-web-e2e-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(t: Test): Promise<{ gw: Gateway; b: Browser }> {
  const gw = await startGateway();
  t.teardown(() => gw.stop());
  const b = await launch({ micFile: SPEECH });
  t.teardown(() => b.close());
  return { gw, b };
}

/** Topics of everything the page (sender id `sender`) publishes besides presence, as it happens. */
async function publishedBy(t: Test, gw: Gateway, sender: string): Promise<string[]> {
  const spy = mqtt.connect(gw.mqtt);
  t.teardown(() => spy.endAsync());
  const seen: string[] = [];
  await spy.subscribeAsync(`talkbridge/v1/base/+/${sender}`);
  spy.on('message', (topic) => {
    if (!topic.includes('/presence/')) seen.push(topic);
  });
  return seen;
}

async function holdToTalk(b: Browser, ms: number): Promise<void> {
  const btn = b.page.getByRole('button', { name: 'Push to talk', exact: true });
  await btn.hover();
  await b.page.mouse.down();
  await waitState(b.page, (s) => s.talk === 'talking', 10000, 'talking');
  await sleep(ms);
  await b.page.mouse.up();
}

for (const codec of ['auto', 'wasm'] as const) {
  t.test(`browser → listen: the fake microphone's speech arrives intact (encoder ${codec})`, async (t) => {
    const { gw, b } = await setup(t);
    const st = await joinPage(b.page, gw.web, { name: 'Ann', codec });
    t.equal(st.encoder, codec === 'wasm' ? 'wasm' : 'webcodecs', 'encoder backend');
    const out = path.join(tmp, `from-browser-${codec}.wav`);
    const listen = startCli(['listen', '--broker', gw.mqtt, '--channel', 'base', '--out', out, '--timeout', '40', '--name', 'ear']);
    await waitState(b.page, (s) => s.online.includes('ear'), 10000, 'listener online');
    await holdToTalk(b, 4500);
    await waitState(b.page, (s) => s.talk === 'idle' && s.holder === null, 5000, 'over ended');
    await checkHeardFromWeb(t, await listen.result, out, SPEECH, [4.2, 5.0]);
    t.same(b.errors, [], 'no page errors');
  });
}

t.test('send → browser: the page decodes and plays the over intact', async (t) => {
  const { gw, b } = await setup(t);
  await joinPage(b.page, gw.web, { name: 'Bob' });
  const r = await runCli(['send', '--broker', gw.mqtt, '--channel', 'base', '--name', 'Base radio op', SPEECH]);
  t.equal(r.code, 0, `send exits 0 ${r.stderr}`);
  await waitState(b.page, (s) => s.holder === null, 5000, 'over ended');
  await sleep(400); // the playback queue drains
  const played = await takePlayed(b.page);
  const decoded = await b.page.evaluate(() => {
    const d = (window as unknown as { __talkbridgeTest: { decoded: Array<{ name: string; chunks: Int16Array[] }> } }).__talkbridgeTest.decoded;
    return d.map((o) => ({ name: o.name, samples: o.chunks.flatMap((c) => Array.from(c)) }));
  });
  t.equal(decoded.length, 1, 'one over decoded');
  t.equal(decoded[0]!.name, 'Base radio op');
  const ref = await readWav(SPEECH);
  const dec = envelopeCorrelation(ref.samples, ref.sampleRate, Int16Array.from(decoded[0]!.samples), 16000);
  t.ok(dec.r >= 0.85, `decoded: envelope correlation ${dec.r.toFixed(3)} ≥ 0.85`);
  const secs = played.samples.length / played.rate;
  t.ok(secs >= 4.8 && secs < 6, `played ${secs.toFixed(2)} s at ${played.rate} Hz`);
  const out = envelopeCorrelation(ref.samples, ref.sampleRate, played.samples, played.rate);
  t.ok(out.r >= 0.85, `played by the audio worklet: envelope correlation ${out.r.toFixed(3)} ≥ 0.85 (lag ${out.lagMs} ms)`);
  await b.page.getByRole('button', { name: /Replay the over from Base radio op/ }).waitFor({ timeout: 3000 });
  t.pass('the over is listed with a Replay button');
  t.same(b.errors, [], 'no page errors');
});

t.test('busy: the page cannot take the floor while a send is in progress', async (t) => {
  const { gw, b } = await setup(t);
  const st = await joinPage(b.page, gw.web, { name: 'Cy' });
  const fromPage = await publishedBy(t, gw, st.sender!);
  const send = startCli(['send', '--broker', gw.mqtt, '--channel', 'base', '--name', 'Dispatcher', SPEECH]);
  await waitState(b.page, (s) => s.holder?.name === 'Dispatcher', 5000, 'dispatcher holds the floor');
  const btn = b.page.getByRole('button', { name: 'Push to talk', exact: true });
  // The DOM follows the state on the next animation frame.
  await b.page.locator('#ptt[aria-disabled="true"]', { hasText: 'Busy — Dispatcher is talking' }).waitFor({ timeout: 3000 });
  t.pass('button marked unavailable and says who is talking');
  await btn.hover();
  await b.page.mouse.down();
  await sleep(1000);
  const s = await pageState(b.page);
  t.equal(s.talk, 'refused', 'talking refused');
  await b.page.locator('#ptt', { hasText: 'Busy — Dispatcher has the channel' }).waitFor({ timeout: 3000 });
  t.pass('the button says talking was refused');
  await b.page.keyboard.down('Space');
  await sleep(300);
  await b.page.keyboard.up('Space');
  await b.page.mouse.up();
  const r = await send.result;
  t.equal(r.code, 0, 'the send was never interrupted');
  t.same(fromPage, [], 'the page published no control or audio while the channel was busy');
  await waitState(b.page, (s) => s.holder === null && s.talk === 'idle', 5000, 'clear');
  // The channel is free again: the space bar now talks.
  await b.page.keyboard.down('Space');
  await waitState(b.page, (s) => s.talk === 'talking', 5000, 'talking after the channel cleared');
  await sleep(500);
  await b.page.keyboard.up('Space');
  await waitState(b.page, (s) => s.talk === 'idle' && s.holder === null, 5000, 'over ended');
  await sleep(200);
  t.ok(fromPage.some((x) => x.includes('/audio/')) && fromPage.filter((x) => x.includes('/control/')).length === 2, 'then it talks: START, audio, END');
});

t.test('broker lost: talking stops, the page says so, then reconnects by itself', async (t) => {
  const gw = await startGateway();
  const b = await launch({ micFile: SPEECH });
  t.teardown(() => b.close());
  await joinPage(b.page, gw.web, { name: 'Dee' });
  const btn = b.page.getByRole('button', { name: 'Push to talk', exact: true });
  await btn.hover();
  await b.page.mouse.down();
  await waitState(b.page, (s) => s.talk === 'talking', 10000, 'talking');
  const port = Number(new URL(gw.web).port);
  const mqttPort = Number(new URL(gw.mqtt).port);
  await gw.stop();
  const s = await waitState(b.page, (s) => s.conn === 'reconnecting', 10000, 'reconnecting');
  t.equal(s.talk, 'failed', 'the over ended when the broker went away');
  await b.page.locator('#status', { hasText: /Broker lost — reconnecting \(attempt \d+/ }).waitFor({ timeout: 3000 });
  t.pass('the status says the broker was lost and when it retries');
  await b.page.mouse.up();
  await waitState(b.page, (s) => s.talk === 'idle', 2000, 'idle after release');
  // The same gateway comes back on the same ports.
  const { startDaemon } = await import('../../gateway/src/app/daemon.js');
  const { ConfigSchema } = await import('../../gateway/src/config/schema.js');
  const { pino } = await import('pino');
  const d = await startDaemon(ConfigSchema.parse({ embeddedBroker: { port: mqttPort }, http: { port }, log: { level: 'silent' } }), pino({ level: 'silent' }));
  t.teardown(() => d.stop());
  await waitState(b.page, (s) => s.conn === 'connected' && s.joined, 20000, 'reconnected and present again');
  t.pass('reconnected; presence announced again');
  await b.page.keyboard.down('Space');
  await waitState(b.page, (s) => s.talk === 'talking', 5000, 'talking after reconnect');
  await b.page.keyboard.up('Space');
});

t.test('service worker: once opened, the app opens again with the gateway gone', async (t) => {
  const gw = await startGateway();
  const b = await launch();
  t.teardown(() => b.close());
  await joinPage(b.page, gw.web, { name: 'Eve' });
  const controlled = await b.page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    for (let i = 0; i < 100 && !navigator.serviceWorker.controller; i++) await new Promise((r) => setTimeout(r, 50));
    return !!navigator.serviceWorker.controller;
  });
  t.ok(controlled, 'the service worker controls the page');
  await gw.stop();
  await b.page.reload();
  await b.page.getByRole('button', { name: 'Push to talk', exact: true }).waitFor({ timeout: 5000 });
  // Joining loads the Opus WASM before it connects: reaching the broker retries means it loaded.
  await waitState(b.page, (s) => (s.conn === 'reconnecting' || s.conn === 'connecting') && s.encoder !== null, 10000, 'codecs loaded, trying to connect');
  t.pass('the Opus WASM came from the cache too');
  t.pass('page, scripts and styles came from the cache');
});

t.test('a gateway notice (time-out) is shown to the person at the page', async (t) => {
  const gw = await startGateway();
  t.teardown(() => gw.stop());
  const b = await launch();
  t.teardown(() => b.close());
  await joinPage(b.page, gw.web, { name: 'Eve' });
  gw.daemon.channels[0]!.session.notice('timeout', 'vhf: transmitter timed out after 120 s; locked out until the channel is quiet');
  await b.page.locator('#banner', { hasText: 'vhf: transmitter timed out after 120 s' }).waitFor({ timeout: 5000 });
  t.pass('the banner shows the notice');
});

t.test('no sound output: a browser that will not run audio says so within seconds and sends nothing', async (t) => {
  const { gw, b } = await setup(t);
  // What Firefox does with no output device: the AudioContext stays suspended and resume() never
  // settles. Before the fix a press sat at "Starting…" for ever.
  await b.context.addInitScript(() => {
    Object.defineProperty(BaseAudioContext.prototype, 'state', { configurable: true, get: () => 'suspended' });
    AudioContext.prototype.resume = () => new Promise<void>(() => {});
  });
  const st = await joinPage(b.page, gw.web, { name: 'Di' });
  const fromPage = await publishedBy(t, gw, st.sender!);
  const btn = b.page.getByRole('button', { name: 'Push to talk', exact: true });
  await btn.hover();
  const pressed = Date.now();
  await b.page.mouse.down();
  const s = await waitState(b.page, (x) => x.talk === 'failed', 8000, 'the press to fail');
  const waited = Date.now() - pressed;
  t.ok(waited < 7000, `it gave up after ${waited} ms`);
  t.equal(s.mic, 'no-output');
  await b.page.locator('#mic-note', { hasText: 'No sound output found' }).waitFor({ timeout: 3000 });
  t.pass('and says why, under the button');
  await b.page.mouse.up();
  await sleep(300);
  t.same(fromPage, [], 'nothing was sent');
});
