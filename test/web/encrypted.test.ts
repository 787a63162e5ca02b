/**
 * End-to-end encryption between the gateway's code in Node (the CLI) and the browser client in
 * real headless Chromium, through a real Mosquitto (TCP for the CLI, its WebSocket listener for the
 * pages), the page served as static files the way docs/web-client.md tells people to host it.
 * The invite link comes from `talkbridge channel new`, as a user would copy it. Shown: speech both
 * ways on an encrypted channel; a page with another key says "Wrong key" and plays nothing; a
 * replayed over plays nothing; a passphrase joins and a remembered key is used only when ticked;
 * a page without a key is told the channel is encrypted; plain HTTP on a LAN name gets the
 * secure-context message.
 */
import t from 'tap';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { CHROMIUM, chromiumArgs } from '../../scripts/chromium.mjs';
import { readWav } from '../../gateway/src/audio/wav.js';
import { staticFiles } from '../../gateway/src/http/static.js';
import { FIXTURES, ROOT, runCli, startCli } from '../helpers/cli.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { type TestBroker, freePort, startMosquitto } from '../helpers/brokers.js';
import { type Browser, type PageState, launch, pageState, takePlayed, waitState } from './browser.js';
import { checkHeardFromWeb, windowedLoopCorrelation } from './match.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-web-e2ee-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type E2eState = PageState & { e2e: { encrypted: boolean; epoch: number | null; problem: string | null } | null; drops: Record<string, number> };
const state = (p: Page) => pageState(p) as Promise<E2eState>;
const until = (p: Page, pred: (s: E2eState) => boolean, what: string, ms = 15000) => waitState(p, pred as (s: PageState) => boolean, ms, what) as Promise<E2eState>;

// Debian's Mosquitto 2.0 needs a plain listener beside the WebSocket one, and binds WebSocket
// listeners to an interface, not an address ("lo": loopback only).
let mq: TestBroker;
let WS: string;
let WEB: string;
let ops: { link: string; key: string };
let impostor: { link: string; key: string };
let spy: mqtt.MqttClient;
let ann: Browser;
let mallory: Browser;
let recording = false;
const recorded: Array<{ topic: string; payload: Buffer; qos: 0 | 1 }> = [];

/** `talkbridge channel new` as a person runs it; returns the invite link it prints and its key. */
async function newChannel(name: string): Promise<{ link: string; key: string }> {
  const r = await runCli(['channel', 'new', name, '--web', WEB, '--broker', WS, '--no-qr']);
  if (r.code !== 0) throw new Error(`channel new: ${r.stderr}`);
  const link = /^\s*(http:\/\/\S+#\S+)\s*$/m.exec(r.stdout)?.[1];
  if (!link) throw new Error(`no invite link in: ${r.stdout}`);
  return { link, key: new URLSearchParams(new URL(link).hash.slice(1)).get('key')! };
}

async function decodedOvers(p: Page): Promise<Array<{ name: string; samples: number[] }>> {
  return p.evaluate(() => {
    const d = (window as unknown as { __talkbridgeTest: { decoded: Array<{ name: string; chunks: Int16Array[] }> } }).__talkbridgeTest.decoded;
    return d.map((o) => ({ name: o.name, samples: o.chunks.flatMap((c) => Array.from(c)) }));
  });
}

t.before(async () => {
  const wsPort = await freePort();
  mq = await startMosquitto(`listener ${wsPort} lo\nprotocol websockets\n`);
  t.teardown(() => mq.stop());
  WS = `ws://127.0.0.1:${wsPort}/`;
  const files = staticFiles(path.join(ROOT, 'gateway/web/dist'));
  const web = http.createServer((req, res) => {
    void Promise.resolve(files(req, res)).then((served) => {
      if (!served) res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => (web.closeAllConnections(), web.close(() => r()))));
  WEB = `http://127.0.0.1:${(web.address() as AddressInfo).port}/`;
  ops = await newChannel('ops');
  impostor = await newChannel('ops'); // the same channel, another key
  // A plain MQTT client on the broker records the channel's raw packets (for the replay below).
  spy = await mqtt.connectAsync(mq.url);
  t.teardown(() => spy.endAsync());
  spy.on('message', (topic, payload, packet) => {
    if (recording && !packet.retain && /\/(control|audio)\//.test(topic)) recorded.push({ topic, payload: Buffer.from(payload), qos: packet.qos === 0 ? 0 : 1 });
  });
  await spy.subscribeAsync('talkbridge/v1/ops/#', { qos: 1 });
  ann = await launch({ micFile: SPEECH });
  t.teardown(() => ann.close());
  t.teardown(() => mallory?.close());
});

t.test('invite link from `channel new`: the page joins, takes the key out of the address bar, and says it is encrypted', async (t) => {
  await ann.page.goto(ops.link);
  // The link has no name: the form asks, and says the key came with it.
  await ann.page.locator('#f-key-note', { hasText: 'Channel key for #ops (epoch 1)' }).waitFor({ timeout: 10000 });
  t.notMatch(ann.page.url(), /key=/, 'the key is gone from the address bar');
  t.match(ann.page.url(), /channel=ops/);
  await ann.page.getByLabel('Your name').fill('Ann');
  await ann.page.getByRole('button', { name: 'Join', exact: true }).click();
  const s = await until(ann.page, (s) => s.conn === 'connected' && s.joined, 'Ann joined');
  t.same(s.e2e, { encrypted: true, epoch: 1, problem: null });
  await ann.page.locator('#e2e', { hasText: 'End-to-end encrypted · key epoch 1' }).waitFor({ timeout: 3000 });
  t.pass('the page shows "End-to-end encrypted · key epoch 1"');
  t.notMatch(ann.page.url(), /key=/, 'joining did not put the key back');
  const stored = await ann.page.evaluate(() => ({ ...localStorage }));
  t.notOk(JSON.stringify(stored).includes(ops.key.slice(2)), 'the key is not on the device (not ticked)');
  t.match(JSON.parse(stored['talkbridge.recent'] ?? '[]'), [{ channel: 'ops', encrypted: true }], 'the recent channel is marked encrypted, without its key');

  // "Copy invite link" hands on the key (and says it is a password); the address bar never has it.
  await ann.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: WEB.slice(0, -1) });
  await ann.page.getByRole('button', { name: 'Copy invite link' }).click();
  await ann.page.locator('#banner', { hasText: 'Invite link copied: it holds the channel key' }).waitFor({ timeout: 3000 });
  const copied = await ann.page.evaluate(() => navigator.clipboard.readText());
  t.match(copied, `channel=ops`);
  t.match(copied, `key=${ops.key}`, 'the copied invite carries the key');
  t.notMatch(copied, /name=/, 'but not our name');
  t.not(ops.key, impostor.key, 'two `channel new` runs make two keys');
  mallory = await launch();
  await mallory.page.goto(`${impostor.link}&name=Mallory`);
  await until(mallory.page, (s) => s.conn === 'connected' && s.joined, 'Mallory joined');
  // Each sees the other's presence fail; neither can tell yet whose key is wrong.
  await until(ann.page, (s) => s.e2e?.problem === 'mismatch', 'Ann notices a different key');
  t.notOk((await state(ann.page)).online.includes('Mallory'), 'a presence under another key is not shown as online');
});

t.test('send --key → the page plays the speech; the page with the wrong key says so and plays nothing', async (t) => {
  recording = true;
  const r = await runCli(['send', '--broker', mq.url, '--channel', 'ops', '--key', ops.key, '--name', 'Base radio op', SPEECH]);
  t.equal(r.code, 0, `send exits 0 ${r.stderr}`);
  await until(ann.page, (s) => s.holder === null, 'over ended', 8000);
  await sleep(400); // the playback queue drains
  recording = false;
  const dec = await decodedOvers(ann.page);
  t.equal(dec.length, 1, 'one over decoded');
  t.equal(dec[0]?.name, 'Base radio op', 'the talker name came through the encrypted START');
  const ref = await readWav(SPEECH);
  // Per second (match.ts): a loaded machine may conceal a late packet or two and slip the timeline.
  const decoded = Int16Array.from(dec[0]!.samples);
  const d = windowedLoopCorrelation(ref.samples, ref.sampleRate, decoded, 16000);
  t.ok(d.mean >= 0.85, `decoded: envelope correlation per second ${d.mean.toFixed(3)} ≥ 0.85 (${envelopeCorrelation(ref.samples, ref.sampleRate, decoded, 16000).r.toFixed(3)} at one alignment)`);
  const played = await takePlayed(ann.page);
  const p = windowedLoopCorrelation(ref.samples, ref.sampleRate, played.samples, played.rate);
  const a = await state(ann.page);
  const lat = await ann.page.evaluate(() => {
    const h = (window as unknown as { __talkbridgeTest: { latencies: number[]; stats: Array<{ underruns: number }> } }).__talkbridgeTest;
    const l = h.latencies.splice(0).sort((x, y) => x - y);
    return { p50: l[Math.floor(l.length / 2)] ?? 0, max: l.at(-1) ?? 0, underruns: h.stats.at(-1)?.underruns ?? 0 };
  });
  t.comment(`send → page over the WebSocket: capture-to-decode p50 ${Math.round(lat.p50)} ms, max ${Math.round(lat.max)} ms; playback underruns ${lat.underruns}; drops ${JSON.stringify(a.drops)}`);
  t.ok(
    p.mean >= 0.85,
    `played by the audio worklet: envelope correlation per second ${p.mean.toFixed(3)} ≥ 0.85 (${envelopeCorrelation(ref.samples, ref.sampleRate, played.samples, played.rate).r.toFixed(3)} at one alignment)`,
  );
  t.equal(a.e2e?.problem, 'foreign', "Ann's key opened the over: the different key is someone else's");
  t.notOk(a.drops.auth === undefined, `Ann dropped what Mallory sent (${a.drops.auth} auth)`);

  await mallory.page.locator('#e2e-note', { hasText: 'Wrong key: nothing from this channel can be played' }).waitFor({ timeout: 5000 });
  t.pass('Mallory\'s page says "Wrong key: nothing from this channel can be played"');
  const m = await state(mallory.page);
  t.equal(m.e2e?.problem, 'wrong-key');
  t.ok((m.drops.auth ?? 0) >= 100, `every packet failed authentication (${m.drops.auth})`);
  t.equal(m.holder, null, 'the over never took the floor there');
  t.same(await decodedOvers(mallory.page), [], 'nothing decoded');
  t.equal((await takePlayed(mallory.page)).samples.length, 0, 'nothing played');
  await mallory.page.locator('#ptt[aria-disabled="true"]', { hasText: 'Wrong key' }).waitFor({ timeout: 3000 });
  t.pass('its talk button is blocked: nobody could hear it');
  t.same([ann.errors, mallory.errors], [[], []], 'no page errors');
});

t.test('replayed over: re-publishing the recorded packets plays nothing new', async (t) => {
  const audio = recorded.filter((x) => x.topic.includes('/audio/')).length;
  t.ok(audio >= 100 && recorded.length === audio + 2, `recorded START, ${audio} audio packets, END`);
  const before = await state(ann.page);
  let tookFloor = false;
  const watch = setInterval(
    () =>
      void state(ann.page).then(
        (s) => (tookFloor ||= s.holder !== null),
        () => {},
      ),
    50,
  );
  for (const x of recorded) {
    await spy.publishAsync(x.topic, x.payload, { qos: x.qos });
    await sleep(2);
  }
  const want = (before.drops.replay ?? 0) + recorded.length;
  const after = await until(ann.page, (s) => (s.drops.replay ?? 0) >= want, 'every replayed message refused', 10000);
  await sleep(500);
  clearInterval(watch);
  t.equal(after.drops.replay, want, `all ${recorded.length} replayed messages refused as replays`);
  t.notOk(tookFloor, 'the replay never took the floor');
  t.equal((await decodedOvers(ann.page)).length, 1, 'no new over decoded');
  t.equal((await takePlayed(ann.page)).samples.length, 0, 'nothing played');
});

t.test('the page talks (fake microphone) → listen --key writes the speech', async (t) => {
  const out = path.join(tmp, 'from-browser.wav');
  const listen = startCli(['listen', '--broker', mq.url, '--channel', 'ops', '--key', ops.key, '--out', out, '--timeout', '40', '--name', 'ear']);
  await until(ann.page, (s) => s.online.includes('ear'), 'listener online (its presence authenticated)');
  const btn = ann.page.getByRole('button', { name: 'Push to talk', exact: true });
  await btn.hover();
  await ann.page.mouse.down();
  await until(ann.page, (s) => s.talk === 'talking', 'talking', 10000);
  // Longer than the file, so a packet or two concealed on a loaded machine weighs little.
  await sleep(8000);
  await ann.page.mouse.up();
  await until(ann.page, (s) => s.talk === 'idle' && s.holder === null, 'over ended', 8000);
  await checkHeardFromWeb(t, await listen.result, out, SPEECH, [7.6, 8.8]);
  t.same(await decodedOvers(mallory.page), [], 'the page with the wrong key decoded nothing of it');
  t.same(ann.errors, [], 'no page errors');
  // The right invite link opened in the same tab (a hash change) rejoins with its key.
  await mallory.page.goto(`${ops.link}&name=Mallory`);
  const m = await until(mallory.page, (s) => s.joined && s.online.includes('Ann') && s.e2e?.problem === null, 'Mallory rejoined with the right key');
  t.equal(m.e2e?.epoch, 1, 'rejoined with the right key: Ann is seen, no key problem');
  t.notMatch(mallory.page.url(), /key=/, 'and the key left the address bar again');
});

t.test('passphrase: derived in the page (shown while it runs), same key as the CLI; kept on the device only when ticked', async (t) => {
  const pass = path.join(tmp, 'pass.txt');
  writeFileSync(pass, 'marsh lantern quietly orbit\n', { mode: 0o600 });
  const b = await launch();
  t.teardown(() => b.close());
  await b.page.goto(`${WEB}#broker=${encodeURIComponent(WS)}&channel=field&name=Cy`);
  // No key for "field" yet: the link joins in clear at once; leave, then join with the passphrase.
  await until(b.page, (s) => s.joined, 'joined in clear');
  t.same((await state(b.page)).e2e, { encrypted: false, epoch: null, problem: null });
  await b.page.locator('#e2e', { hasText: 'Not encrypted' }).waitFor({ timeout: 3000 });
  t.pass('a clear channel says "Not encrypted"');
  await b.page.getByRole('button', { name: 'Leave' }).click();
  await b.page.evaluate(() => {
    const seen: string[] = ((window as unknown as { progress: string[] }).progress = []);
    const el = document.getElementById('join-progress')!;
    new MutationObserver(() => seen.push(el.textContent ?? '')).observe(el, { childList: true, characterData: true, subtree: true });
  });
  await b.page.getByLabel(/Channel passphrase/).fill('short');
  await b.page.getByRole('button', { name: 'Join', exact: true }).click();
  await b.page.locator('#join-error', { hasText: 'at least 12 characters' }).waitFor({ timeout: 5000 });
  t.pass('a short passphrase is refused in words');
  await b.page.getByLabel(/Channel passphrase/).fill('marsh lantern quietly orbit');
  await b.page.getByRole('button', { name: 'Join', exact: true }).click();
  const s = await until(b.page, (s) => s.joined && s.e2e?.encrypted === true, 'joined encrypted');
  t.equal(s.e2e?.epoch, 1);
  const progress = await b.page.evaluate(() => (window as unknown as { progress: string[] }).progress);
  t.ok(progress.includes('Deriving the channel key from the passphrase…'), 'the form said it was deriving the key');
  const ms = await b.page.evaluate(() => (window as unknown as { __talkbridgeTest: { deriveMs: number } }).__talkbridgeTest.deriveMs);
  t.ok(ms > 0, `PBKDF2 (600,000 iterations) took ${Math.round(ms)} ms in Chromium`);
  const listen = startCli(['listen', '--broker', mq.url, '--channel', 'field', '--passphrase-file', pass, '--out', path.join(tmp, 'x.wav'), '--timeout', '30', '--name', 'ear2']);
  t.teardown(() => void listen.proc.kill('SIGTERM'));
  await until(b.page, (s) => s.online.includes('ear2'), 'the CLI with the same passphrase is seen online');
  t.pass('the CLI and the page derived the same key (its sealed presence opened in the page)');
  const local = await b.page.evaluate(() => JSON.stringify({ ...localStorage }));
  t.notOk(local.includes('marsh lantern'), 'the passphrase is never stored');
  t.notOk(local.includes('talkbridge.keys'), 'no key on the device before "remember" is ticked');

  // A new tab has no key for the channel: it joins in clear and is told the channel is encrypted.
  const tab2 = await b.context.newPage();
  await tab2.goto(`${WEB}#broker=${encodeURIComponent(WS)}&channel=field&name=Cy2`);
  await tab2.locator('#e2e-note', { hasText: 'This channel is encrypted — you need the invite link' }).waitFor({ timeout: 10000 });
  t.pass('a page without the key says "This channel is encrypted — you need the invite link"');
  t.equal(await tab2.locator('#ptt').getAttribute('aria-disabled'), 'true', 'and does not let its person talk in clear');
  await tab2.close();

  await b.page.getByLabel('Remember key on this device').check();
  const tab3 = await b.context.newPage();
  await tab3.goto(`${WEB}#broker=${encodeURIComponent(WS)}&channel=field&name=Cy3`);
  await tab3.locator('#e2e', { hasText: 'End-to-end encrypted · key epoch 1' }).waitFor({ timeout: 10000 });
  t.pass('once ticked, a new tab joins encrypted with the remembered key');
  t.same(b.errors, [], 'no page errors');
});

t.test('plain HTTP on a LAN name: no WebCrypto, and the page says encryption needs HTTPS', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-chromium-'));
  // kit.lan resolves to loopback, but to the browser it is an ordinary name over plain HTTP: not
  // a secure context, as a gateway reached on a field kit's Wi-Fi address would be.
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: [...chromiumArgs(), '--host-resolver-rules=MAP kit.lan 127.0.0.1'] });
  t.teardown(async () => (await ctx.close(), rmSync(dir, { recursive: true, force: true })));
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const invite = ops.link.replace('127.0.0.1', 'kit.lan');
  await page.goto(`${invite}&name=Dee`);
  t.equal(await page.evaluate(() => isSecureContext), false, 'not a secure context');
  await page.locator('#join-error', { hasText: 'browsers only allow encryption (WebCrypto) on pages opened over HTTPS' }).waitFor({ timeout: 10000 });
  t.pass('the join form says the encrypted channel needs HTTPS or localhost');
  t.notMatch(page.url(), /key=/, 'the key left the address bar all the same');
});
