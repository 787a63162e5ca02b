/**
 * What the web client must do in every browser, as scenarios each browser's test file runs through
 * its driver (drivers.ts): Firefox ESR (firefox.test.ts) and WebKitGTK (webkit.test.ts). Chromium
 * runs the same and more through playwright-core (e2e.test.ts, encrypted.test.ts).
 *
 * Against a real gateway, a page joins from a link and talks with the pointer and the browser's
 * fake microphone, heard by `talkbridge listen`; it receives `talkbridge send` and decodes the
 * speech intact; it joins an encrypted channel from a `talkbridge channel new` invite link and
 * decodes the speech sent with its key; with no microphone, or no sound output, pressing says so
 * plainly and sends nothing.
 *
 * The fake microphones of Firefox and WebKit are tones, not files: the over must arrive whole (none
 * lost, as long as the press) and carry sound, not silence.
 *
 * Each scenario has a browser of its own, and every wait is bounded well below tap's per-file
 * timeout, so that a hang fails with what was awaited and the teardown still ends every process.
 */
import type { Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import { envelopeCorrelation, rms } from '../helpers/audio.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { type Gateway, type PageState, startGateway } from './browser.js';
import { bounded, type Driven, DriverHang, type Launcher, type LaunchOptions } from './drivers.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type State = PageState & { e2e: { encrypted: boolean; problem: string | null } | null };

function state(b: Driven): Promise<State> {
  return b.evaluate(() => (window as unknown as { __talkbridgeTest: { state: () => State } }).__talkbridgeTest.state(), null);
}

/** Polls the page's own state (window.__talkbridgeTest) until `pred`, for at most `ms`. */
async function until(b: Driven, pred: (s: State) => boolean, what: string, ms = 15000): Promise<State> {
  const end = Date.now() + ms;
  let last: State | null = null;
  let error = '';
  for (;;) {
    try {
      last = await state(b);
      if (pred(last)) return last;
    } catch (err) {
      if (err instanceof DriverHang) throw err;
      error = (err as Error).message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; last state ${JSON.stringify(last)}${error ? `; last error ${error}` : ''}`);
    await sleep(50);
  }
}

/**
 * Runs `body` with a new gateway and browser, and again (three tries in all) if the browser's
 * automation channel stops answering (DriverHang): that is the driver failing, not the page, and
 * every try says so in the output. A failed assertion or any other error ends it at once.
 */
async function attempt(t: Test, launch: Launcher, o: LaunchOptions, body: (b: Driven, gw: Gateway) => Promise<void>): Promise<void> {
  for (let i = 1; ; i++) {
    const gw = await startGateway();
    let b: Driven | null = null;
    try {
      b = await launch(o);
      if (i === 1) t.comment(b.version);
      await body(b, gw);
      return;
    } catch (err) {
      if (!(err instanceof DriverHang) || i === 3) throw err;
      t.comment(`try ${i}: the driver stopped answering (${err.message}); again in a new browser`);
    } finally {
      await b?.close();
      await gw.stop();
    }
  }
}

function text(b: Driven, id: string): Promise<string> {
  return b.evaluate((i: string) => document.getElementById(i)?.textContent?.replace(/\s+/g, ' ').trim() ?? '', id);
}

/** The overs the page decoded: who, and the 16 kHz PCM. */
async function decoded(b: Driven): Promise<Array<{ name: string; samples: number[] }>> {
  return b.evaluate(() => {
    const d = (window as unknown as { __talkbridgeTest: { decoded: Array<{ name: string; chunks: Int16Array[] }> } }).__talkbridgeTest.decoded;
    return d.map((o) => ({ name: o.name, samples: o.chunks.flatMap((c) => Array.from(c)) }));
  }, null);
}

/** Sends the speech file with `talkbridge send` and checks that the page decoded it intact. */
async function checkReceived(t: Test, b: Driven, args: string[]): Promise<void> {
  const before = (await decoded(b)).length;
  const sent = await bounded(runCli(['send', ...args, '--name', 'Base radio op', SPEECH]), 20000, 'talkbridge send');
  t.equal(sent.code, 0, `send exits 0 ${sent.stderr}`);
  await until(b, (s) => s.holder === null, 'the over to end', 5000);
  const d = await decoded(b);
  t.equal(d.length, before + 1, 'one more over decoded');
  t.equal(d.at(-1)?.name, 'Base radio op', 'from the sender');
  const ref = await readWav(SPEECH);
  const r = envelopeCorrelation(ref.samples, ref.sampleRate, Int16Array.from(d.at(-1)?.samples ?? []), 16000);
  t.ok(r.r >= 0.85, `decoded speech: envelope correlation ${r.r.toFixed(3)} ≥ 0.85`);
}

/** Joins from a link, talks with the pointer and the fake microphone, receives, joins an encrypted invite. */
export async function talkAndReceive(t: Test, launch: Launcher): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-web-browser-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  await attempt(t, launch, { fakeMic: true }, async (b, gw) => {
    const opened = Date.now();
    await b.goto(`${gw.web}#channel=base&name=Ann`);
    const joined = await until(b, (s) => s.conn === 'connected' && s.joined, 'joined');
    // Figures for docs/operations.md: polled every 50 ms through the driver, so ±50 ms.
    t.comment(`join: link opened → joined in ${Date.now() - opened} ms`);
    t.ok(joined.encoder, `joined from the link; encoder ${joined.encoder}`);

    // Talk: press the button with the pointer, as a person would.
    const out = path.join(tmp, `from-browser-${Date.now()}.wav`);
    const listen = startCli(['listen', '--broker', gw.mqtt, '--channel', 'base', '--out', out, '--timeout', '30', '--name', 'ear']);
    t.teardown(() => void listen.proc.kill()); // a try that failed leaves it waiting
    await until(b, (s) => s.online.includes('ear'), 'listener online');
    const pressed = Date.now();
    await b.pointerDown('#ptt');
    await until(b, (s) => s.talk === 'talking', 'talking', 10000);
    t.comment(`talk: press → talking in ${Date.now() - pressed} ms`);
    await sleep(3000);
    await b.pointerUp();
    await until(b, (s) => s.talk === 'idle' && s.holder === null, 'over ended', 5000);
    const heard = await bounded(listen.result, 35000, 'talkbridge listen');
    t.equal(heard.code, 0, `listen exits 0 (${heard.stderr.trim()})`);
    t.match(heard.stdout, /over 1: Ann \(web\)/, 'listen names the web talker');
    const pk = /packets (\d+) received \/ (\d+) lost \/ (\d+) late/.exec(heard.stdout);
    t.ok(pk && Number(pk[2]) === 0 && Number(pk[1]) > 0, `none lost (${pk?.[0]})`);
    const got = await readWav(out);
    const secs = got.samples.length / got.sampleRate;
    t.ok(secs > 2.5 && secs < 3.8, `over lasts about as long as the press (${secs.toFixed(2)} s)`);
    const level = rms(got.samples);
    t.ok(level > 300, `the fake microphone's sound arrived, not silence (RMS ${level.toFixed(0)})`);

    // Receive: the page decodes `talkbridge send`'s speech intact.
    await checkReceived(t, b, ['--broker', gw.mqtt, '--channel', 'base']);

    // An encrypted channel, joined from the invite link `talkbridge channel new` prints.
    const made = await bounded(runCli(['channel', 'new', 'ops', '--web', gw.web, '--broker', gw.ws, '--no-qr']), 20000, 'talkbridge channel new');
    const link = /^\s*(http:\/\/\S+#\S+)\s*$/m.exec(made.stdout)?.[1];
    t.ok(link, 'channel new prints an invite link');
    const key = new URLSearchParams(new URL(link!).hash.slice(1)).get('key')!;
    await b.goto(`${link}&name=Ann`);
    const enc = await until(b, (s) => s.conn === 'connected' && s.joined, 'joined the encrypted channel');
    t.ok(enc.e2e?.encrypted && !enc.e2e.problem, 'the page knows the channel is encrypted and has its key');
    await checkReceived(t, b, ['--broker', gw.mqtt, '--channel', 'ops', '--key', key]);
  });
}

/**
 * With `o`, pressing Push to talk fails, the page says so under the button (`note`), and nothing
 * is sent.
 */
async function pressFails(t: Test, launch: Launcher, o: LaunchOptions, expect: { mic: string; note: RegExp; button?: RegExp }): Promise<void> {
  await attempt(t, launch, o, async (b, gw) => {
    await b.goto(`${gw.web}#channel=base&name=Ann`);
    await until(b, (s) => s.conn === 'connected' && s.joined, 'joined');
    await b.pointerDown('#ptt');
    const s = await until(b, (s) => s.talk === 'failed', 'the press to fail, not hang at Starting…', 8000);
    t.equal(s.mic, expect.mic, `the page knows why (${expect.mic})`);
    await sleep(100); // the DOM follows on the next animation frame
    t.match(await text(b, 'mic-note'), expect.note, 'the note under the button says so');
    if (expect.button) t.match(await text(b, 'ptt'), expect.button, 'the button says it cannot talk');
    await b.pointerUp();
    t.equal(await b.evaluate(() => (window as unknown as { __talkbridgeTest: { sent: number } }).__talkbridgeTest.sent, null), 0, 'nothing sent');
  });
}

/**
 * No sound output: pressing says so plainly and sends nothing. Chromium (headless) and WebKit run
 * their audio with no device at all; Firefox needs one, and with none used to sit at "Starting…"
 * for ever.
 */
export function noSoundOutput(t: Test, launch: Launcher): Promise<void> {
  return pressFails(t, launch, { fakeMic: true, audioOut: false }, { mic: 'no-output', note: /^No sound output found: .*Connect a speaker or headphones/, button: /Cannot talk/ });
}

/** No microphone at all: pressing says so plainly and sends nothing. */
export function noMicrophone(t: Test, launch: Launcher): Promise<void> {
  return pressFails(t, launch, { fakeMic: false }, { mic: 'missing', note: /^No microphone found/ });
}
