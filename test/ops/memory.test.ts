/**
 * The daemon's resident memory is mostly what it loads, so this guards what a bridging gateway
 * loads: a real `talkbridge run` against a real Mosquitto, observed by a preloaded probe (a module
 * resolve hook and, on SIGUSR2, a full GC and process.memoryUsage()). Nothing in the daemon knows
 * about it. The daemon is a bundle (scripts/build-daemon.mjs): the files it loads are chunks, and
 * the build's metafile says which sources and packages each chunk holds. The RSS figure itself is
 * machine-dependent and is measured by test/bench/memory.ts.
 */
import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMosquitto, freePort } from '../helpers/brokers.js';
import { spawn } from 'node:child_process';
import { BIN } from '../helpers/cli.js';
import { pttFifo, sleep, tmp, writeConfig } from '../bridge/helpers.js';

const PROBE = `
import { register, createRequire } from 'node:module';
import { appendFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
const out = process.env.TB_PROBE_OUT;
if (out && process.argv.includes('run')) {
  // The hook runs on a loader thread of its own and inflates the heap: figures come from runs without it.
  if (process.env.TB_PROBE_TRACE) register('data:text/javascript,' + encodeURIComponent(
    'import { appendFileSync } from "node:fs";' +
    'export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(' + JSON.stringify(out + '.esm') + ', r.url + "\\\\n"); return r; }'));
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  process.on('SIGUSR2', () => {
    gc();
    gc();
    const cjs = Object.keys(createRequire(import.meta.url).cache);
    const m = process.memoryUsage();
    writeFileSync(out + '.tmp', JSON.stringify({ cjs, heapUsed: m.heapUsed, rss: m.rss }));
    appendFileSync(out + '.done', '.');
  });
}
`;

interface Report {
  /** Sources (gateway/src/…, node_modules/…) inside the loaded chunks, and unbundled modules. */
  modules: string[];
  packages: Set<string>;
  heapUsedMB: number;
  rssMB: number;
}

const ROOT = path.resolve(import.meta.dirname, '../..');

function packageOf(file: string): string | null {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
  return m ? m[1]! : null;
}

async function observe(t: Test, extra: string, o: { web?: string; trace: boolean }): Promise<Report> {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const dir = tmp();
  const fifo = pttFifo(dir);
  t.teardown(() => fifo.close());
  const probe = path.join(dir, 'probe.mjs');
  writeFileSync(probe, PROBE);
  const out = path.join(dir, 'probe');
  const cfg = writeConfig(dir, {
    id: 'gw-m',
    broker: broker.url,
    radio: `  - name: m\n    ptt: { type: cm108, device: ${fifo.path} }\n    audio: { sampleRate: 48000, output: { type: 'null' } }`,
    extra,
  });
  if (o.web) writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('http:\n  enabled: false\n', o.web));
  // Through env(1): tap's process-info hook rewrites NODE_OPTIONS of every child it sees spawned,
  // and its loader in the daemon would be measured too.
  const options = `--max-semi-space-size=1 --import ${probe}`;
  const gw = spawn('env', [`NODE_OPTIONS=${options}`, `TB_PROBE_OUT=${out}`, `TB_PROBE_TRACE=${o.trace ? '1' : ''}`, process.execPath, BIN, 'run', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ended = new Promise<number | null>((r) => gw.once('close', (code) => r(code)));
  t.teardown(() => void gw.kill('SIGKILL'));
  let log = '';
  gw.stdout!.on('data', (d) => (log += d));
  gw.stderr!.on('data', (d) => (log += d));
  for (let i = 0; i < 600 && !log.includes('"event":"ready"'); i++) await sleep(50);
  t.match(log, /"event":"ready"/, 'the daemon is up');
  await sleep(500);
  gw.kill('SIGUSR2');
  for (let i = 0; i < 200 && !existsSync(`${out}.done`); i++) await sleep(50);
  const r = JSON.parse(readFileSync(`${out}.tmp`, 'utf8')) as { cjs: string[]; heapUsed: number; rss: number };
  gw.kill('SIGTERM');
  t.equal(await ended, 0, 'the daemon stops cleanly');
  const esm = o.trace ? readFileSync(`${out}.esm`, 'utf8').split('\n').filter(Boolean) : [];
  const meta = JSON.parse(readFileSync(path.join(ROOT, 'gateway/dist/bundle/meta.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
  const chunks = esm
    .filter((u) => u.startsWith('file:'))
    .map((u) => path.relative(ROOT, fileURLToPath(u)))
    .filter((f) => meta.outputs[f]);
  if (o.trace) t.ok(chunks.length > 1, `the probe sees the bundle's chunks load (${chunks.length})`);
  const modules = [...new Set([...chunks.flatMap((c) => Object.keys(meta.outputs[c]!.inputs)), ...r.cjs])];
  const packages = new Set(modules.map(packageOf).filter((p): p is string => p !== null));
  return { modules, packages, heapUsedMB: r.heapUsed / 1048576, rssMB: r.rss / 1048576 };
}

/** Loaded by `check-config` in its own short-lived process, or only by the features that need them. */
const NEVER = ['zod', 'yaml', 'aedes', 'serialport', '@serialport/stream', '@serialport/bindings-cpp', 'pino-pretty', 'qrcode'];

t.test('a bridging gateway on an external broker loads only what it uses', async (t) => {
  const r = await observe(t, 'bridge:\n  hangMs: 0\n', { trace: true });
  for (const p of NEVER) t.notOk(r.packages.has(p), `${p} is not loaded`);
  t.notOk(
    r.modules.some((m) => /^gateway\/src\/http\//.test(m)),
    'no web server code (http is disabled)',
  );
  t.notOk(r.packages.has('prom-client'), 'no prom-client: nothing could scrape /metrics');
  t.ok(r.packages.has('mqtt') && r.packages.has('pino'), 'the probe does see the packages the daemon uses');
});

t.test('its V8 heap stays small', async (t) => {
  const r = await observe(t, 'bridge:\n  hangMs: 0\n', { trace: false });
  t.comment(`heap used after GC ${r.heapUsedMB.toFixed(1)} MB, RSS ${r.rssMB.toFixed(1)} MB`);
  // 9 MB on Node 20 x64 when this was written; zod, or MQTT.js's 65,536-Buffer number cache (which
  // net/connect.ts keeps it from building), alone would add 3–7 MB.
  t.ok(r.heapUsedMB < 13, `V8 heap after a full GC: ${r.heapUsedMB.toFixed(1)} MB (< 13 MB)`);
});

t.test('with the web port on, still no embedded broker code unless it is enabled', async (t) => {
  const port = await freePort();
  const r = await observe(t, 'bridge:\n  hangMs: 0\n', { trace: true, web: `http:\n  enabled: true\n  host: 127.0.0.1\n  port: ${port}\n` });
  for (const p of NEVER) t.notOk(r.packages.has(p), `${p} is not loaded`);
  t.ok(
    r.modules.some((m) => m === 'gateway/src/http/server.ts'),
    'the web server is loaded',
  );
  t.ok(r.packages.has('prom-client'), 'prom-client is loaded for /metrics');
});
