/**
 * Where a bridging daemon's resident memory goes. Starts a real `talkbridge run` (one radio with a
 * PTT on a FIFO and a null audio output, one channel, an external Mosquitto) the way the systemd
 * unit runs it, and reads it from outside: VmRSS and /proc/PID/smaps grouped by mapping, plus what
 * V8 says from inside through a preloaded probe (no daemon code involved) that answers SIGUSR2 by
 * writing process.memoryUsage() and the heap spaces to a file — optionally after a full GC, which
 * is how "flat after N overs" is told apart from garbage not yet collected.
 *
 *   node --import tsx test/bench/memory.ts [overs=2000]
 */
import { readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { openChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';
import { pttFifo, runGateway, tmp, writeConfig } from '../bridge/helpers.js';

/** NODE_OPTIONS of systemd/talkbridge.service. */
export const DAEMON_FLAGS = '--max-semi-space-size=1 --v8-pool-size=1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = (kb: number) => Number((kb / 1024).toFixed(1));

const PROBE = `
import v8 from 'node:v8';
import vm from 'node:vm';
import { writeFileSync } from 'node:fs';
const out = process.env.TB_PROBE_OUT;
if (out && process.argv.includes('run')) {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  let n = 0; // one file per request: the reader never sees a half-written one
  process.on('SIGUSR2', () => {
    if (process.env.TB_PROBE_GC !== '0') { gc(); gc(); }
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, committed: s.physical_space_size }]));
    writeFileSync(out + '.' + (n++), JSON.stringify({ m, spaces, heap: v8.getHeapStatistics(), code: v8.getHeapCodeStatistics() }));
  });
}
`;

export function rssKB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(stat[11]) + Number(stat[12])) / 100;
}

/** Resident kB per kind of mapping. Anonymous mappings are told apart by their reservation size. */
export function smapsBreakdown(pid: number): Record<string, number> {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out: Record<string, number> = {};
  let name = '';
  let size = 0;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      size = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024;
      const file = head[3]!;
      if (file.startsWith('[')) name = file;
      else if (file) name = /\.node$/.test(file) ? `addon ${path.basename(file)}` : /\/node$/.test(file) ? 'node binary' : /\.so/.test(file) ? 'shared libraries' : `file ${path.basename(file)}`;
      // x64 V8 reserves 8 GB+ of address space around each WebAssembly memory (guard regions).
      else name = size >= 4 << 20 ? 'anon: wasm memory reservation' : size >= 64 << 10 ? 'anon: ≥64 MB reservation (malloc arena / V8 code range)' : 'anon: other (V8 heap pages, malloc)';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[name] = (out[name] ?? 0) + Number(rss[1]);
  }
  return out;
}

interface Probe {
  m: NodeJS.MemoryUsage;
  spaces: Record<string, { size: number; used: number; committed: number }>;
  heap: { total_physical_size: number; malloced_memory: number; external_memory: number };
  code: { code_and_metadata_size: number; bytecode_and_metadata_size: number };
}

let probes = 0;
async function probe(pid: number, out: string): Promise<Probe> {
  const file = `${out}.${probes++}`;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(50);
  await sleep(50);
  const p = JSON.parse(readFileSync(file, 'utf8')) as Probe;
  rmSync(file);
  return p;
}

function describe(p: Probe): Record<string, number> {
  const r: Record<string, number> = {
    'rss (V8 view)': p.m.rss / 1048576,
    heapTotal: p.m.heapTotal / 1048576,
    heapUsed: p.m.heapUsed / 1048576,
    external: p.m.external / 1048576,
    arrayBuffers: p.m.arrayBuffers / 1048576,
    'V8 malloced': p.heap.malloced_memory / 1048576,
    'code+metadata': p.code.code_and_metadata_size / 1048576,
    'bytecode+metadata': p.code.bytecode_and_metadata_size / 1048576,
  };
  for (const [k, v] of Object.entries(p.spaces)) r[`space ${k} committed`] = v.committed / 1048576;
  for (const k of Object.keys(r)) r[k] = Number(r[k]!.toFixed(2));
  return r;
}

export async function memoryRun(overs: number, log = console.log): Promise<Record<string, unknown>> {
  const broker = await startMosquitto();
  const dir = tmp();
  const probeFile = path.join(dir, 'probe.mjs');
  writeFileSync(probeFile, PROBE);
  const out = path.join(dir, 'probe-out');
  const fifo = pttFifo(dir);
  try {
    // As the systemd unit runs it (systemd/talkbridge.service); TB_NODE_FLAGS compares others.
    process.env.NODE_OPTIONS = `${process.env.TB_NODE_FLAGS ?? DAEMON_FLAGS} --import ${probeFile}`;
    process.env.TB_PROBE_OUT = out;
    const b = runGateway(
      writeConfig(dir, {
        id: 'gw-b',
        broker: broker.url,
        radio: `  - name: b\n    ptt: { type: cm108, device: ${fifo.path} }\n    audio: { sampleRate: 48000, output: { type: 'null' } }`,
        extra: 'bridge:\n  hangMs: 0\n',
      }),
    );
    await b.waitFor(/"event":"ready"/);
    const pid = b.proc.pid!;
    await sleep(3000);
    const idle = rssKB(pid);
    const idleMaps = smapsBreakdown(pid);
    const idleProbe = await probe(pid, out);
    const idleAfterGc = rssKB(pid);
    log(`idle RSS ${MB(idle)} MB (after a forced GC ${MB(idleAfterGc)} MB)`);
    log(
      'smaps resident MB:',
      Object.fromEntries(
        Object.entries(idleMaps)
          .sort((x, y) => y[1] - x[1])
          .map(([k, v]) => [k, MB(v)]),
      ),
    );
    log('V8 (after GC):', describe(idleProbe));

    const sp = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
    const talker = await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'link', name: 'rss', source: 'cli', silenceMs: 1000 });
    const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
    const short = { sampleRate: 16000, samples: sp.samples.subarray(16000, 16000 + 1280) };
    const series: Array<{ overs: number; rssMB: number; rssAfterGcMB: number; heapUsedMB: number; cpuS: number }> = [];
    const cpu0 = cpuSeconds(pid);
    for (let i = 1; i <= overs; i++) {
      await sendPcm(talker.session, enc, short, { framesPerPacket: 2, frameMs: 20, fast: true });
      await sleep(130);
      if (i % 250 === 0) {
        const r = rssKB(pid);
        const p = await probe(pid, out);
        const row = { overs: i, rssMB: MB(r), rssAfterGcMB: MB(rssKB(pid)), heapUsedMB: Number((p.m.heapUsed / 1048576).toFixed(2)), cpuS: Number((cpuSeconds(pid) - cpu0).toFixed(2)) };
        series.push(row);
        log(JSON.stringify(row));
      }
    }
    await talker.close();
    await sleep(3000);
    const endMaps = smapsBreakdown(pid);
    const end = await probe(pid, out);
    log(`after ${overs} overs, idle again: RSS ${MB(rssKB(pid))} MB`);
    log(
      'smaps resident MB:',
      Object.fromEntries(
        Object.entries(endMaps)
          .sort((x, y) => y[1] - x[1])
          .map(([k, v]) => [k, MB(v)]),
      ),
    );
    log('V8 (after GC):', describe(end));
    const played = b.events().filter((e) => e.event === 'over-end' && e.module === 'channel').length;
    b.proc.kill('SIGTERM');
    await b.result;
    return { idleMB: MB(idle), idleAfterGcMB: MB(idleAfterGc), series, played };
  } finally {
    fifo.close();
    await broker.stop();
  }
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const overs = Number(process.argv[2] ?? 2000);
  console.log(await memoryRun(overs));
}
