#!/usr/bin/env node
// Latency of the web client on loopback, in Debian's headless Chromium against a real gateway:
//   browser → listen: the page talks (fake microphone), `talkbridge listen --latency` measures
//     each packet from the page's capture timestamp to its playout at the listener;
//   send → browser: `talkbridge send` talks, the page measures each packet from the sender's
//     capture timestamp to its decode for playout, and adds what follows (the playback queue's
//     start margin and the output latency the browser reports) for an estimate at the speaker.
// Both include packetisation (2 × 20 ms frames) and the receiver's jitter buffer, as the CLI bench
// does. Prints figures only (no pass/fail). Usage: node scripts/bench-web.mjs [--overs N]
// Needs `npm run build` first.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hookedPage, launchChromium } from './chromium.mjs';
import { freePort, sleep } from './net.mjs';
import { pino } from 'pino';
import { startDaemon } from '../gateway/dist/src/app/daemon.js';
import { ConfigSchema } from '../gateway/dist/src/config/schema.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'gateway/bin/talkbridge.js');
const speech = path.join(root, 'test/fixtures/speech-16k.wav');
const i = process.argv.indexOf('--overs');
const OVERS = i > 0 ? Math.max(1, Number(process.argv[i + 1]) || 5) : 5;
const HOLD_MS = 3000;
function cli(args) {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  return { proc: p, done: new Promise((r) => p.once('close', (code) => r({ code, out }))), output: () => out };
}
const q = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

const [mqttPort, httpPort] = [await freePort(), await freePort()];
const daemon = await startDaemon(ConfigSchema.parse({ embeddedBroker: { port: mqttPort }, http: { port: httpPort } }), pino({ level: 'silent' }));
const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
const userDir = mkdtempSync(path.join(os.tmpdir(), 'tb-bench-web-'));
const context = await launchChromium({ micFile: speech, dir: userDir });
const { page, until } = await hookedPage(context);

try {
  await page.goto(`http://127.0.0.1:${httpPort}/#channel=base&name=bench`);
  const st = await until((s) => s.conn === 'connected' && s.joined, 'joined');

  // browser → listen
  const listen = cli(['listen', '--broker', mqttUrl, '--channel', 'base', '--out', path.join(userDir, 'overs'), '--overs', String(OVERS), '--latency', '--name', 'bench-ear', '--timeout', '120']);
  await until((s) => s.online.includes('bench-ear'), 'listener');
  for (let n = 0; n < OVERS; n++) {
    await page.keyboard.down('Space');
    await until((s) => s.talk === 'talking', 'talking');
    await sleep(HOLD_MS);
    await page.keyboard.up('Space');
    await until((s) => s.talk === 'idle' && s.holder === null, 'over ended');
    await sleep(300);
  }
  const lr = await listen.done;
  const m = /latency capture->playout ms: p50 ([\d.]+) p95 ([\d.]+) max ([\d.]+) \((\d+) packets\)/.exec(lr.out);
  const lost = [...lr.out.matchAll(/(\d+) lost \/ (\d+) late/g)].reduce((a, x) => a + Number(x[1]) + Number(x[2]), 0);

  // send → browser
  await page.evaluate(() => (window.__talkbridgeTest.latencies.length = 0));
  for (let n = 0; n < OVERS; n++) {
    const s = await cli(['send', '--broker', mqttUrl, '--channel', 'base', '--name', 'bench-mouth', speech]).done;
    if (s.code !== 0) throw new Error(`send failed: ${s.out}`);
    await until((x) => x.holder === null, 'over played');
    await sleep(300);
  }
  const r = await page.evaluate(() => ({ lat: window.__talkbridgeTest.latencies.slice(), stats: window.__talkbridgeTest.stats.slice() }));
  const lat = r.lat.sort((a, b) => a - b);
  const margin = r.stats.length ? r.stats.reduce((a, s) => a + s.marginMs, 0) / r.stats.length : 0;
  const underruns = r.stats.length ? r.stats.at(-1).underruns : 0;
  const out = st.outputLatencyMs;

  console.log(`web client latency on loopback (Chromium ${context.browser()?.version() ?? ''}, encoder ${st.encoder}, context ${st.sampleRate} Hz, ${OVERS} overs each way)`);
  if (m)
    console.log(
      `  browser -> listen   capture->playout   p50 ${Number(m[1]).toFixed(1)} ms  p95 ${Number(m[2]).toFixed(1)} ms  max ${Number(m[3]).toFixed(1)} ms  (${m[4]} packets, ${lost} lost or late)`,
    );
  else console.log(`  browser -> listen   no latency line from listen: ${lr.out.trim()}`);
  if (lat.length) {
    console.log(`  send -> browser     capture->decode    p50 ${q(lat, 0.5).toFixed(1)} ms  p95 ${q(lat, 0.95).toFixed(1)} ms  max ${lat.at(-1).toFixed(1)} ms  (${lat.length} packets)`);
    console.log(
      `  send -> browser     at the speaker (est.: + playout margin ${margin.toFixed(1)} ms + output ${out.toFixed(1)} ms)  p50 ${(q(lat, 0.5) + margin + out).toFixed(1)} ms  p95 ${(q(lat, 0.95) + margin + out).toFixed(1)} ms  (${underruns} playback underruns)`,
    );
  }
} finally {
  await context.close();
  rmSync(userDir, { recursive: true, force: true });
  await daemon.stop();
}
process.exit(0);
