/**
 * Issue-4 figures: radio-in → radio-out latency gateway to gateway through Mosquitto (two bridges
 * with timestamped radio I/O), CPU per second of bridged audio and RSS of real `talkbridge run`
 * daemons, event-loop delay while bridging.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pino } from 'pino';
import { Emitter } from '../../gateway/shared/core/emitter.js';
import type { AudioIn, AudioOut, AudioOutEvents, CarrierDetect, Ptt, PttEvents } from '../../gateway/src/radio/types.js';
import { FakeCapture, FakeCarrier, NO_LEVELS } from '../helpers/radio-fakes.js';
import { Bridge } from '../../gateway/src/bridge/bridge.js';
import { BridgeSchema } from '../../gateway/src/bridge/schema.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { encodeWav, readWav } from '../../gateway/src/audio/wav.js';
import { resampleAll } from '../../gateway/shared/audio/resample.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';
import { pttFifo, runGateway, tmp, writeConfig } from '../bridge/helpers.js';
import { DAEMON_FLAGS } from './memory.js';

const RATE = 48000;
/** Capture period of the simulated sound card: 5 ms, as a low-latency ALSA setup delivers. */
const BLOCK = 240;
const BLOCK_MS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Ptt0 extends Emitter<PttEvents> implements Ptt {
  keyed = false;
  readonly description = 'bench';
  async open() {}
  async key() {
    this.keyed = true;
  }
  async unkey() {
    this.keyed = false;
  }
  async close() {}
}
class Out0 extends Emitter<AudioOutEvents> implements AudioOut {
  readonly description = 'bench';
  readonly sampleRate = RATE;
  readonly state = 'running' as const;
  /**
   * [time the block's first sample is played, samples written before it, block]. A card plays in
   * real time: a block handed over while earlier audio is still playing waits its turn (audio held
   * back during the TX delay and then written at once delays everything after it). Only the card's
   * own buffer is left out ("sound-card buffers aside").
   */
  blocks: Array<[number, number, Int16Array]> = [];
  private n = 0;
  private playedUntil = 0;
  write(s: Int16Array) {
    const at = Math.max(performance.now(), this.playedUntil);
    this.playedUntil = at + (s.length * 1000) / RATE;
    this.blocks.push([at, this.n, s]);
    this.n += s.length;
    return true;
  }
  async drain() {}
  levels() {
    return NO_LEVELS;
  }
  async close() {}
}

export async function latencyRun(framesPerPacket: number): Promise<Record<string, number | string>> {
  const broker = await startMosquitto();
  const silent = pino({ level: 'silent' });
  try {
    const chA = await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'bench', name: 'gw-a', sender: 'gw-a', source: 'radio', silenceMs: 1000 });
    const chB = await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'bench', name: 'gw-b', sender: 'gw-b', source: 'radio', silenceMs: 1000 });
    const cfg = BridgeSchema.parse({});
    const ain = new FakeCapture(RATE, 'bench');
    const acos = new FakeCarrier('bench');
    const bout = new Out0();
    const mk = async (name: string, io: { cos: CarrierDetect; input: AudioIn | null; output: AudioOut }, ch: typeof chA) => {
      const b = new Bridge({
        radio: { name, ptt: new Ptt0(), ...io },
        transmit: ch.session,
        monitor: [ch.session],
        encoder: await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 }),
        frameMs: 20,
        framesPerPacket,
        config: cfg,
        log: silent,
      });
      await b.start();
      return b;
    };
    const a = await mk('a', { cos: acos, input: ain, output: new Out0() }, chA);
    const b = await mk('b', { cos: new FakeCarrier('bench'), input: null, output: bout }, chB);
    await sleep(300);
    // 24 overs of 2.5 s, each with five 60 ms tone bursts, one per 500 ms. Speech does not start on
    // codec frame boundaries: the bursts' offsets step through a whole 40 ms packet in 5 ms blocks
    // (0–35 ms), so every phase against the packetisation is measured equally often.
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const marks: number[] = [];
    const lat: number[] = [];
    for (let over = 0; over < 24; over++) {
      acos.set(true);
      const t0 = performance.now();
      const per = 500 / BLOCK_MS;
      const blocks = 5 * per;
      const starts: number[] = [];
      for (let k = 0; k < blocks; k++) {
        const due = t0 + (k + 1) * BLOCK_MS;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const blk = new Int16Array(BLOCK);
        const first = 8 + ((over * 5 + Math.floor(k / per)) % 8);
        const burst = k % per >= first && k % per < first + 12; // 60 ms burst every 500 ms
        if (burst) for (let i = 0; i < BLOCK; i++) blk[i] = Math.round(12000 * Math.sin((2 * Math.PI * 1000 * (k * BLOCK + i)) / RATE));
        // The block's first sample was captured one period before the block is delivered.
        if (k % per === first) starts.push(performance.now() - BLOCK_MS);
        ain.push(blk);
      }
      acos.set(false);
      await sleep(1200);
      // Find each burst onset in B's output.
      const flat: Array<[number, number]> = [];
      for (const [at, , blk] of bout.blocks) for (let i = 0; i < blk.length; i++) if (Math.abs(blk[i]!) > 2000) flat.push([at, i]);
      const onsets: number[] = [];
      let last = -Infinity;
      for (const [at, i] of flat) {
        const tt = at + (i * 1000) / RATE;
        if (tt - last > 250) onsets.push(tt);
        last = tt;
      }
      bout.blocks = [];
      for (let i = 0; i < Math.min(starts.length, onsets.length); i++) lat.push(onsets[i]! - starts[i]!);
      marks.push(starts.length);
    }
    h.disable();
    await a.stop();
    await b.stop();
    await chA.close();
    await chB.close();
    lat.sort((x, y) => x - y);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
    return {
      framesPerPacket,
      markers: `${lat.length} of ${marks.reduce((x, y) => x + y, 0)}`,
      'radio→radio p50 ms': Number(q(0.5).toFixed(1)),
      'p95 ms': Number(q(0.95).toFixed(1)),
      'max ms': Number(lat.at(-1)!.toFixed(1)),
      'event-loop delay p99 ms': Number((h.percentile(99) / 1e6).toFixed(2)),
    };
  } finally {
    await broker.stop();
  }
}

/**
 * CPU time of a daemon and everything it runs (the PTT guard is part of the gateway), in seconds,
 * and the daemon's own RSS.
 */
function procStat(pid: number): { cpu: number; rssMB: number } {
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  return { cpu: treeCpu(pid), rssMB: rss };
}

function treeCpu(pid: number): number {
  try {
    // utime, stime, and the children already waited for (cutime, cstime).
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    let cpu = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) cpu += treeCpu(Number(c));
    }
    return cpu;
  } catch {
    return 0; // exited between the listing and the read: its time is in the parent's cutime
  }
}

/** Seconds both daemons idle after start-up before the first over. */
const SETTLE_S = 15;

/** Overs of 20 s of speech A's radio hears in each round, one every PERIOD_S seconds. */
const OVERS = 6;
const PERIOD_S = 25;
/** The overs from this one (1-based) to the last give the steady figure: after a minute of bridged audio. */
const STEADY_FROM = 4;

/** One pair of fresh daemons bridging OVERS overs (CPU of each), then, if asked, 1,000 short overs into B (RSS). */
async function daemonRound(brokerUrl: string, file: string, speech: Int16Array, withRss: boolean) {
  const dir = tmp();
  const fifo = pttFifo(dir);
  const extra = 'bridge:\n  hangMs: 0\n';
  // As the systemd unit runs it (a 1 MB young generation, one V8 helper thread).
  process.env.NODE_OPTIONS = DAEMON_FLAGS;
  const b = runGateway(
    writeConfig(dir, { id: 'gw-b', broker: brokerUrl, radio: `  - name: b\n    ptt: { type: cm108, device: ${fifo.path} }\n    audio: { sampleRate: 48000, output: { type: 'null' } }`, extra }),
  );
  await b.waitFor(/"event":"ready"/);
  const a = runGateway(
    writeConfig(dir, {
      id: 'gw-a',
      broker: brokerUrl,
      radio: `  - name: a\n    ptt: { type: none }\n    cos: { type: vox, thresholdDb: -45, attackMs: 20, hangMs: 1500 }\n    audio: { sampleRate: 48000, input: { type: file, path: ${file} } }`,
    }),
  );
  await a.waitFor(/"event":"ready"/);
  // Both settle first, as a gateway started at boot has long before its first over: V8's memory
  // reducer compacts each heap 8 s after start-up's last full GC (2–3 full GCs, ~25 ms of CPU;
  // seen with --trace-gc up to 12.6 s after A's ready), and that belongs to starting, not to
  // bridging. A's file stays silent ~2 s longer (its speech starts at SETTLE_S + 1 s).
  await sleep((SETTLE_S - 1) * 1000);
  const marks = [{ a: procStat(a.proc.pid!), b: procStat(b.proc.pid!) }];
  const pttOff = /"event":"ptt"[^\n]*"on":false/.source;
  for (let k = 1; k <= OVERS; k++) {
    await b.waitFor(new RegExp(Array(k).fill(pttOff).join('[^]*')), 60000);
    marks.push({ a: procStat(a.proc.pid!), b: procStat(b.proc.pid!) });
  }
  // Per second of bridged audio: what B played of each over (20 s of speech and the VOX hang).
  await b.waitFor(new RegExp(Array(OVERS).fill('"event":"over-end"').join('[^]*')), 10000);
  const secs = b
    .events()
    .filter((e) => e.event === 'over-end' && e.module === 'channel')
    .map((e) => Number(e.seconds));
  const rss: number[] = [];
  let played = 0;
  if (withRss) {
    // 1,000 short overs through B: RSS must stay flat.
    const talker = await openChannel({ url: brokerUrl, prefix: 'talkbridge/v1', channel: 'link', name: 'rss', source: 'cli', silenceMs: 1000 });
    const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
    const short = { sampleRate: 16000, samples: speech.subarray(16000, 16000 + 1280) };
    for (let i = 0; i < 1000; i++) {
      await sendPcm(talker.session, enc, short, { framesPerPacket: 2, frameMs: 20, fast: true });
      await sleep(130);
      if (i % 250 === 249) rss.push(procStat(b.proc.pid!).rssMB);
    }
    await talker.close();
    played = b.events().filter((e) => e.event === 'over-end' && e.module === 'channel').length;
  }
  a.proc.kill('SIGTERM');
  b.proc.kill('SIGTERM');
  await Promise.all([a.result, b.result]);
  fifo.close();
  // CPU-s per second of audio over overs `from`..`to` (1-based, inclusive).
  const per = (who: 'a' | 'b', from: number, to: number) => {
    let s = 0;
    for (let k = from; k <= to; k++) s += secs[k - 1]!;
    return (marks[to]![who].cpu - marks[from - 1]![who].cpu) / s;
  };
  return {
    secs,
    a: [per('a', 1, 1), per('a', 2, 2), per('a', STEADY_FROM, OVERS)] as const,
    b: [per('b', 1, 1), per('b', 2, 2), per('b', STEADY_FROM, OVERS)] as const,
    idleMB: marks[0]!.b.rssMB,
    rss,
    played,
  };
}

/** CPU-s per second of audio of opusenc + opusdec on `seconds` of the bridged audio: the median of three runs. */
function nativeTools(dir: string, one: Int16Array, seconds: number): number {
  const wav16 = path.join(dir, 'in16.wav');
  const ref16 = new Int16Array(Math.round(seconds * 16000));
  ref16.set(resampleAll(one.subarray(RATE), 48000, 16000).subarray(0, ref16.length));
  writeFileSync(wav16, encodeWav({ sampleRate: 16000, samples: ref16 }));
  const time = (cmd: string) => {
    const r = spawnSync('bash', ['-c', `TIMEFORMAT='%U %S'; time ( ${cmd} 2>/dev/null )`], { encoding: 'utf8' });
    const [u, s] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
    return u! + s!;
  };
  const runs = [0, 1, 2].map(() => time(`opusenc --quiet --bitrate 16 --framesize 20 --comp 9 ${wav16} ${dir}/x.opus`) + time(`opusdec --quiet --rate 48000 ${dir}/x.opus ${dir}/y.wav`));
  return runs.sort((x, y) => x - y)[1]! / seconds;
}

/**
 * CPU per wake-up of a bare Node process on a 40 ms timer, measured now: what being real-time costs
 * on this machine at the moment. The daemons wake ~31 (A) and ~57 (B) times a second; the native
 * tools run flat out and hardly pay it, so it is what moves the ratios from one day to the next.
 */
function wakeCostUs(): number {
  const probe = 'let n=0,c;const t=setInterval(()=>{if(++n===1)c=process.cpuUsage();else if(n===126){const d=process.cpuUsage(c);console.log((d.user+d.system)/125);clearInterval(t)}},40)';
  return Number(spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' }).stdout.trim());
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

export async function daemonRun(rounds = 5): Promise<Record<string, number | string>> {
  const broker = await startMosquitto();
  const dir = tmp();
  try {
    const sp = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
    // Overs of 20 s of continuous speech for A's radio (VOX keeps each one over), 5 s apart. The
    // first is the daemons' first after starting; V8 optimizes the per-packet code over the next
    // ones (src/app/tiering.ts), and overs 4–6 are what a gateway that has been up a while spends.
    const s48 = resampleAll(sp.samples, 16000, 48000);
    const one = new Int16Array(RATE * 21);
    for (let o = RATE; o < one.length; o += s48.length) one.set(s48.subarray(0, Math.min(s48.length, one.length - o)), o);
    const all = new Int16Array(RATE * (SETTLE_S + PERIOD_S * OVERS));
    for (let k = 0; k < OVERS; k++) all.set(one, RATE * (SETTLE_S + PERIOD_S * k));
    const file = path.join(dir, 'in.wav');
    writeFileSync(file, encodeWav({ sampleRate: RATE, samples: all }));
    // This machine is shared and its load comes and goes: fresh daemons several times, each round's
    // ratios against the native tools run right after it, and the median round reported with the range.
    const keys = ['a1', 'b1', 'a2', 'b2', 'as', 'bs'] as const;
    const cpu = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<(typeof keys)[number], number[]>;
    const ratios = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<(typeof keys)[number], number[]>;
    const natives: number[] = [];
    const wakes: number[] = [];
    let last: Awaited<ReturnType<typeof daemonRound>> | null = null;
    for (let r = 0; r < rounds; r++) {
      const x = await daemonRound(broker.url, file, sp.samples, r === rounds - 1);
      const ref = nativeTools(dir, one, x.secs[0]!);
      natives.push(ref);
      wakes.push(wakeCostUs());
      const got = { a1: x.a[0], b1: x.b[0], a2: x.a[1], b2: x.b[1], as: x.a[2], bs: x.b[2] };
      for (const k of keys) {
        cpu[k].push(got[k]);
        ratios[k].push(got[k] / ref);
      }
      last = x;
    }
    const fig = (label: string, c: number[], q: number[]) => ({
      [`${label} CPU-s per audio-s`]: Number(median(c).toFixed(4)),
      [`${label} ratio to native tools (target ≤ 1.3)`]: `${median(q).toFixed(2)} (rounds ${q.map((v) => v.toFixed(2)).join(', ')})`,
    });
    return {
      rounds,
      'opusenc+opusdec CPU-s per audio-s (each round)': natives.map((v) => v.toFixed(4)).join(', '),
      'a bare Node timer wake-up, µs of CPU (each round)': wakes.map((v) => v.toFixed(0)).join(', '),
      'seconds of audio bridged per over (last round)': last!.secs.map((v) => v.toFixed(2)).join(' / '),
      // "CPU per second of bridged audio for one gateway, as a ratio to opusenc + opusdec".
      ...fig(`A (radio→channel), overs ${STEADY_FROM}–${OVERS} (steady):`, cpu.as, ratios.as),
      ...fig(`B (channel→radio), overs ${STEADY_FROM}–${OVERS} (steady):`, cpu.bs, ratios.bs),
      ...fig('A, first over after start:', cpu.a1, ratios.a1),
      ...fig('B, first over after start:', cpu.b1, ratios.b1),
      ...fig('A, second over:', cpu.a2, ratios.a2),
      ...fig('B, second over:', cpu.b2, ratios.b2),
      'B RSS idle MB': Number(last!.idleMB.toFixed(1)),
      'B RSS after 250/500/750/1000 overs MB': last!.rss.map((x) => x.toFixed(1)).join(' / '),
      // Back-to-back overs chain through the hang state on one key-up (and eventually the time-out).
      [`overs B played (of ${OVERS + 1000}: A's ${OVERS} and 1,000)`]: last!.played,
    };
  } finally {
    await broker.stop();
  }
}

export async function benchBridge(): Promise<{ latency: Array<Record<string, number | string>>; daemon: Record<string, number | string> }> {
  const latency = [];
  for (const fpp of [2, 1]) latency.push(await latencyRun(fpp));
  return { latency, daemon: await daemonRun() };
}
