/**
 * Issue 17, "Side by side in the benchmark": SvxLink (Debian's svxlink-server + svxreflector, two
 * nodes through one reflector) and talkbridge (two real `talkbridge run` daemons through one
 * Mosquitto) driven by one probe (svxlink-probe.ts) in the same run, events interleaved, at two
 * profiles: each system's lowest-latency settings and its defaults.
 *
 * Everything runs in a network namespace of its own that has only `lo`: svxreflector has no bind
 * address and listens on 0.0.0.0. SvxLink's audio is its UDP "sound card" (48 kHz, 2 channels),
 * its squelch and PTT are PTYs. talkbridge's sound cards are fake `arecord`/`aplay` first on PATH
 * that bridge raw audio to and from UDP, its carrier detect and PTT are CM108 reports on FIFOs.
 *
 *   npm run bench -- svxlink        (as root: network namespaces; installs nothing itself)
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProbeConfig, ProbeResult, ProbeSystem } from './svxlink-probe.js';
import { installSoundCard } from '../helpers/sound-card.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let daemonBin = path.join(ROOT, 'gateway/bin/talkbridge.js');
const PROBE = path.join(ROOT, 'test/bench/svxlink-probe.ts');
/** NODE_OPTIONS of systemd/talkbridge.service (test/bench/memory.ts). */
const DAEMON_FLAGS = '--max-semi-space-size=1 --v8-pool-size=1';
const SHIPPED = '/etc/svxlink/svxlink.conf';

export const SVX_EVENTS = Number(process.env.SVX_EVENTS ?? 12);
const WARMUP = Number(process.env.SVX_WARMUP ?? 2);
const IDLE_S = Number(process.env.SVX_IDLE_S ?? 20);
const SETTLE_S = Number(process.env.SVX_SETTLE_S ?? 12);
/** For a profiler: extra daemon flags (e.g. --perf-basic-prof), and one profile only. */
const EXTRA_FLAGS = process.env.SVX_NODE_OPTIONS ? ` ${process.env.SVX_NODE_OPTIONS}` : '';
const PROFILES = (process.env.SVX_PROFILES ?? 'lowest,defaults').split(',') as Profile[];

export type Profile = 'lowest' | 'defaults';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function which(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])) if (d && fs.existsSync(path.join(d, cmd))) return path.join(d, cmd);
  return null;
}

/** The shipped svxlink.conf as ordered sections of key/value pairs (single-line values). */
function readIni(file: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let sec: Map<string, string> | null = null;
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    const h = /^\[(.+)\]$/.exec(l);
    if (h) {
      sec = new Map();
      out.set(h[1]!, sec);
      continue;
    }
    const kv = /^([A-Za-z0-9_]+)\s*=(.*)$/.exec(l);
    if (kv && sec) sec.set(kv[1]!, kv[2]!);
  }
  return out;
}

function writeIni(file: string, secs: Array<[string, Map<string, string>]>) {
  fs.writeFileSync(file, secs.map(([n, kv]) => `[${n}]\n${[...kv].map(([k, v]) => `${k}=${v}`).join('\n')}\n`).join('\n'));
}

/**
 * One node's svxlink.conf: the shipped [GLOBAL], [SimplexLogic], [ReflectorLogic], [Rx1] and [Tx1],
 * with what the bench needs (UDP audio, PTY squelch and PTT, the reflector on loopback, TX_DELAY 0,
 * no modules, no idents), and at the lowest-latency profile what the anchor measured fastest.
 */
function svxNodeConf(file: string, node: 'A' | 'B', p: { rx: number; tx: number; sql: string; ptt: string; profile: Profile }) {
  const shipped = readIni(SHIPPED);
  const sec = (name: string) => new Map(shipped.get(name) ?? []);
  const g = sec('GLOBAL');
  g.delete('CFG_DIR');
  g.delete('LOCATION_INFO');
  g.set('TIMESTAMP_FORMAT', '"%H:%M:%S.%f"');
  g.set('LOGICS', 'SimplexLogic,ReflectorLogic');
  g.set('LINKS', 'ReflectorLink');
  g.set('CARD_SAMPLE_RATE', '48000');
  g.set('CARD_CHANNELS', '2');
  const simplex = sec('SimplexLogic');
  for (const k of ['MODULES', 'MACROS', 'LOCATION_INFO']) simplex.delete(k);
  simplex.set('CALLSIGN', `NODE${node}`);
  simplex.set('SHORT_IDENT_INTERVAL', '0');
  simplex.set('LONG_IDENT_INTERVAL', '0');
  const refl = sec('ReflectorLogic');
  refl.set('HOST', '127.0.0.1');
  refl.set('PORT', '5300');
  refl.set('CALLSIGN', `NODE${node}`);
  refl.set('AUTH_KEY', '"bench-only"');
  const link = new Map([
    ['CONNECT_LOGICS', 'SimplexLogic:9:NODE,ReflectorLogic'],
    ['DEFAULT_ACTIVE', '1'],
  ]);
  const rx = sec('Rx1');
  rx.set('AUDIO_DEV', `udp:127.0.0.1:${p.rx}`);
  rx.set('AUDIO_CHANNEL', '0');
  rx.set('SQL_DET', 'PTY');
  rx.set('PTY_PATH', p.sql);
  const tx = sec('Tx1');
  tx.set('AUDIO_DEV', `udp:127.0.0.1:${p.tx}`);
  tx.set('AUDIO_CHANNEL', '0');
  tx.set('PTT_TYPE', 'PTY');
  tx.set('PTT_PTY', p.ptt);
  tx.set('TX_DELAY', '0');
  if (p.profile === 'lowest') {
    rx.set('SQL_HANGTIME', '0');
    rx.set('DTMF_MUTING', '0');
    refl.set('OPUS_ENC_FRAME_SIZE', '10');
    refl.set('JITTER_BUFFER_DELAY', '0');
  }
  writeIni(file, [
    ['GLOBAL', g],
    ['SimplexLogic', simplex],
    ['ReflectorLogic', refl],
    ['ReflectorLink', link],
    ['Rx1', rx],
    ['Tx1', tx],
  ]);
}

/** talkbridge's settings at each profile: its defaults, or what it can do fastest. */
export const TB_PROFILE: Record<Profile, { codec: string; bridge: string; debounce: string }> = {
  defaults: { codec: '', bridge: '', debounce: '' },
  lowest: { codec: 'codec:\n  framesPerPacket: 1\n', bridge: 'bridge:\n  txDelayMs: 0\n  hangMs: 0\n', debounce: ', debounceMs: 0' },
};

function tbConf(file: string, id: string, mqttPort: number, radio: string, profile: Profile) {
  const t = TB_PROFILE[profile];
  fs.writeFileSync(
    file,
    `gateway:\n  id: ${id}\n  name: ${id}\nbroker:\n  url: mqtt://127.0.0.1:${mqttPort}\nembeddedBroker:\n  enabled: false\nhttp:\n  enabled: false\nchannels:\n  - name: link\n${t.codec}radios:\n${radio}\n${t.bridge}`,
  );
}

interface Proc {
  label: string;
  proc: ChildProcess;
  /** A talkbridge daemon that reads this carrier-detect FIFO (see stop()). */
  cosFd?: number;
}

/** Every process this part started, and the namespace: ended by id on the way out, however it ends. */
class Lab {
  readonly ns = `tbsvx-${process.pid}`;
  readonly procs: Proc[] = [];
  private nsMade = false;
  private readonly fds: number[] = [];
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.killAllSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  private readonly onExit = () => this.killAllSync();

  constructor() {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.onExit);
  }

  makeNs() {
    execFileSync('ip', ['netns', 'add', this.ns]);
    this.nsMade = true;
    execFileSync('ip', ['netns', 'exec', this.ns, 'ip', 'link', 'set', 'lo', 'up']);
  }

  delNs() {
    if (!this.nsMade) return;
    try {
      execFileSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
    this.nsMade = false;
  }

  fd(p: string, flags: number): number {
    const fd = fs.openSync(p, flags);
    this.fds.push(fd);
    return fd;
  }

  /** Runs `cmd` inside the namespace; `ip netns exec` execs it, so the pid is the command's. */
  run(label: string, cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; log: string }): Proc {
    const out = fs.openSync(o.log, 'a');
    const proc = spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], { env: o.env ?? process.env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const p = { label, proc };
    this.procs.push(p);
    return p;
  }

  /** The process and everything below it, deepest first. */
  static tree(pid: number): number[] {
    const out: number[] = [];
    try {
      for (const t of fs.readdirSync(`/proc/${pid}/task`)) for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) out.push(...Lab.tree(Number(c)));
    } catch {
      /* gone */
    }
    out.push(pid);
    return out;
  }

  static alive(pid: number): boolean {
    try {
      const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0];
      return st !== 'Z';
    } catch {
      return false;
    }
  }

  /** SIGTERM, then SIGKILL after 3 s; its children (fake sound cards, the PTT guard) too. */
  async stop(p: Proc) {
    const pid = p.proc.pid;
    if (!pid) return;
    const tree = Lab.tree(pid);
    const gone = new Promise((r) => (p.proc.exitCode !== null || p.proc.signalCode !== null ? r(null) : p.proc.once('exit', r)));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    // A talkbridge daemon does not yet stop while its CM108 carrier input is silent (issue 17):
    // one "carrier closed" report lets it.
    if (p.cosFd !== undefined) {
      await sleep(200);
      try {
        fs.writeSync(p.cosFd, Buffer.from([0, 0, 0, 0]));
      } catch {
        /* reader gone */
      }
    }
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 3000);
    await gone;
    clearTimeout(t);
    for (const c of tree) if (c !== pid && Lab.alive(c)) process.kill(c, 'SIGKILL');
    this.procs.splice(this.procs.indexOf(p), 1);
  }

  async stopAll() {
    for (const p of [...this.procs].reverse()) await this.stop(p);
  }

  killAllSync() {
    for (const p of this.procs) {
      if (!p.proc.pid) continue;
      for (const c of Lab.tree(p.proc.pid)) {
        try {
          process.kill(c, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    this.procs.length = 0;
    this.closeFds();
    this.delNs();
  }

  closeFds() {
    for (const fd of this.fds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed */
      }
    }
  }

  async close() {
    await this.stopAll();
    this.killAllSync();
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('exit', this.onExit);
  }
}

async function waitFile(file: string, re: RegExp, ms: number, what: string) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (fs.existsSync(file) && re.test(fs.readFileSync(file, 'utf8'))) return;
    await sleep(100);
  }
  const tail = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(-12).join('\n') : '(no log)';
  throw new Error(`${what}: not ready after ${ms} ms\n${tail}`);
}

/** One profile: start both systems, let the probe drive them, stop everything. */
async function runProfile(lab: Lab, dir: string, profile: Profile, log: (s: string) => void): Promise<ProbeResult[]> {
  const d = path.join(dir, profile);
  fs.mkdirSync(d);
  // A fresh namespace per profile: nothing of the previous one (ports, sockets) carries over.
  lab.makeNs();
  const port = { svxRxA: 41001, svxTxA: 41002, svxRxB: 41003, svxTxB: 41004, tbRx: 41011, tbTx: 41012, mqtt: 1883 };
  // SvxLink: the reflector, then both nodes.
  fs.writeFileSync(path.join(d, 'svxreflector.conf'), `[GLOBAL]\nTIMESTAMP_FORMAT="%H:%M:%S.%f"\nLISTEN_PORT=5300\n\n[USERS]\nNODEA=Nodes\nNODEB=Nodes\n\n[PASSWORDS]\nNodes="bench-only"\n`);
  const pty = (n: string) => path.join(d, n);
  svxNodeConf(path.join(d, 'nodeA.conf'), 'A', { rx: port.svxRxA, tx: port.svxTxA, sql: pty('sqlA'), ptt: pty('pttA'), profile });
  svxNodeConf(path.join(d, 'nodeB.conf'), 'B', { rx: port.svxRxB, tx: port.svxTxB, sql: pty('sqlB'), ptt: pty('pttB'), profile });
  const refl = lab.run('svxreflector', 'svxreflector', [`--config=${d}/svxreflector.conf`], { log: `${d}/svxreflector.log` });
  await waitFile(`${d}/svxreflector.log`, /Using configuration file/, 10000, 'svxreflector');
  const svxA = lab.run('svxlink A', 'svxlink', [`--config=${d}/nodeA.conf`], { log: `${d}/svxlink-A.log` });
  const svxB = lab.run('svxlink B', 'svxlink', [`--config=${d}/nodeB.conf`], { log: `${d}/svxlink-B.log` });

  // talkbridge: Mosquitto, then both daemons with fake sound cards first on PATH.
  fs.writeFileSync(path.join(d, 'mosquitto.conf'), `listener ${port.mqtt} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nmax_queued_messages 1000\n`);
  const mosq = lab.run('mosquitto', which('mosquitto')!, ['-c', `${d}/mosquitto.conf`], { log: `${d}/mosquitto.log` });
  const bin = path.join(d, 'bin');
  installSoundCard(bin, { capture: 'udp', playback: 'udp' });
  const cosA = path.join(d, 'hidraw-cos-a');
  const pttB = path.join(d, 'hidraw-ptt-b');
  execFileSync('mkfifo', [cosA, pttB]);
  // Held open read-write here, so that neither the daemons' opens nor the probe's wait on the other.
  const cosFd = lab.fd(cosA, fs.constants.O_RDWR);
  lab.fd(pttB, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const t = TB_PROFILE[profile];
  tbConf(
    path.join(d, 'gw-b.yaml'),
    'gw-b',
    port.mqtt,
    `  - name: b\n    ptt: { type: cm108, device: ${pttB} }\n    audio: { sampleRate: 48000, output: { type: alsa, device: 'plughw:CARD=B,DEV=0' } }`,
    profile,
  );
  tbConf(
    path.join(d, 'gw-a.yaml'),
    'gw-a',
    port.mqtt,
    `  - name: a\n    ptt: { type: none }\n    cos: { type: cm108, device: ${cosA}${t.debounce} }\n    audio: { sampleRate: 48000, input: { type: alsa, device: 'plughw:CARD=A,DEV=0' } }`,
    profile,
  );
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, NODE_OPTIONS: DAEMON_FLAGS + EXTRA_FLAGS, TB_BENCH_ARECORD_PORT: String(port.tbRx), TB_BENCH_APLAY_PORT: String(port.tbTx) };
  await sleep(300);
  const tbB = lab.run('talkbridge B', process.execPath, [daemonBin, 'run', '--config', `${d}/gw-b.yaml`], { env, log: `${d}/gw-b.log` });
  const tbA = lab.run('talkbridge A', process.execPath, [daemonBin, 'run', '--config', `${d}/gw-a.yaml`], { env, log: `${d}/gw-a.log` });
  tbA.cosFd = cosFd;
  await Promise.all([
    waitFile(`${d}/svxlink-A.log`, /Authentication OK/, 20000, 'svxlink A'),
    waitFile(`${d}/svxlink-B.log`, /Authentication OK/, 20000, 'svxlink B'),
    waitFile(`${d}/gw-a.log`, /"event":"ready"/, 30000, 'talkbridge A'),
    waitFile(`${d}/gw-b.log`, /"event":"ready"/, 30000, 'talkbridge B'),
  ]);
  // B's PTT guard (a bash child of the daemon) is part of the gateway.
  const guard = Lab.tree(tbB.proc.pid!).filter((p) => p !== tbB.proc.pid && fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'bash');
  const sys: ProbeSystem[] = [
    {
      name: 'SvxLink',
      inPort: port.svxRxA,
      inChannels: 2,
      outPort: port.svxTxB,
      outChannels: 2,
      carrier: { kind: 'pty', path: pty('sqlA') },
      ptt: { kind: 'pty', path: pty('pttB') },
      procs: [refl, svxA, svxB].map((p) => ({ label: p.label, pid: p.proc.pid! })),
    },
    {
      name: 'talkbridge',
      inPort: port.tbRx,
      inChannels: 1,
      outPort: port.tbTx,
      outChannels: 1,
      carrier: { kind: 'cm108', path: cosA },
      ptt: { kind: 'cm108', path: pttB },
      procs: [mosq, tbA, tbB].map((p) => ({ label: p.label, pid: p.proc.pid! })).concat(guard.map((pid) => ({ label: 'B PTT guard', pid }))),
    },
  ];
  const cfg: ProbeConfig = { systems: sys, warmup: WARMUP, events: SVX_EVENTS, idleS: IDLE_S, settleS: SETTLE_S };
  fs.writeFileSync(path.join(d, 'probe.json'), JSON.stringify(cfg));
  log(`${profile}: both systems up; probe running (${WARMUP} warm-up + ${SVX_EVENTS} events each, ${IDLE_S} s idle)`);
  const probe = lab.run('probe', process.execPath, ['--import', 'tsx', PROBE, path.join(d, 'probe.json')], { log: `${d}/probe.log` });
  const code = await new Promise<number | null>((r) => probe.proc.once('exit', (c) => r(c)));
  lab.procs.splice(lab.procs.indexOf(probe), 1);
  const out = fs.readFileSync(`${d}/probe.log`, 'utf8');
  for (const l of out.split('\n')) if (l.startsWith('[probe]') && !/streaming|idle|events per|of \d+$/.test(l)) log(l);
  const json = out.split('\n').find((l) => l.startsWith('[{'));
  if (code !== 0 || !json) throw new Error(`probe failed (${code}):\n${out.split('\n').slice(-15).join('\n')}`);
  await lab.stopAll();
  lab.closeFds();
  lab.delNs();
  return JSON.parse(json) as ProbeResult[];
}

const q = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
const f4 = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '–');
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : '–');

export interface SideBySide {
  title: string;
  rows: Array<Record<string, string>>;
  notes: string[];
}

function tableOf(profile: Profile, r: ProbeResult[]): SideBySide {
  const svx = r.find((x) => x.name === 'SvxLink')!;
  const tb = r.find((x) => x.name === 'talkbridge')!;
  const row = (what: string, s: string, t: string, ra: string) => ({ '': what, SvxLink: s, talkbridge: t, 'talkbridge/SvxLink': ra });
  const perAudio = (x: ProbeResult) => sum(x.eventCpu) / x.audioS;
  const net = (x: ProbeResult) => (sum(x.eventCpu) - (sum(x.idleCpu) / x.idleS) * x.eventWindowS) / x.audioS;
  const idle = (x: ProbeResult) => sum(x.idleCpu) / x.idleS;
  const per = (x: ProbeResult, f: (l: string) => string) =>
    Object.keys(x.eventCpu)
      .map((l) => `${l.replace(/^(svxlink|talkbridge) /, '')} ${f(l)}`)
      .join(', ');
  const rows = [
    row(
      'radio-in → radio-out p50 / p95 ms',
      `${f1(q(svx.latency, 0.5))} / ${f1(q(svx.latency, 0.95))}`,
      `${f1(q(tb.latency, 0.5))} / ${f1(q(tb.latency, 0.95))}`,
      `${ratio(q(tb.latency, 0.5), q(svx.latency, 0.5))} / ${ratio(q(tb.latency, 0.95), q(svx.latency, 0.95))}`,
    ),
    row(
      '  min–max ms; markers found',
      `${f1(Math.min(...svx.latency))}–${f1(Math.max(...svx.latency))}; ${svx.markersFound}/${svx.markers}`,
      `${f1(Math.min(...tb.latency))}–${f1(Math.max(...tb.latency))}; ${tb.markersFound}/${tb.markers}`,
      '',
    ),
    row(
      'carrier open → far PTT keyed p50 / p95 ms',
      `${f1(q(svx.pttOn, 0.5))} / ${f1(q(svx.pttOn, 0.95))}`,
      `${f1(q(tb.pttOn, 0.5))} / ${f1(q(tb.pttOn, 0.95))}`,
      ratio(q(tb.pttOn, 0.5), q(svx.pttOn, 0.5)),
    ),
    row('carrier close → far PTT unkeyed p50 ms', f1(q(svx.pttOff, 0.5)), f1(q(tb.pttOff, 0.5)), ratio(q(tb.pttOff, 0.5), q(svx.pttOff, 0.5))),
    row('CPU-s per s of bridged audio, all processes', f4(perAudio(svx)), f4(perAudio(tb)), ratio(perAudio(tb), perAudio(svx))),
    row('  the same, idle taken off', f4(net(svx)), f4(net(tb)), ratio(net(tb), net(svx))),
    row(
      '  per process',
      per(svx, (l) => f4(svx.eventCpu[l]! / svx.audioS)),
      per(tb, (l) => f4(tb.eventCpu[l]! / tb.audioS)),
      '',
    ),
    row('idle CPU-s per s, all processes', f4(idle(svx)), f4(idle(tb)), ratio(idle(tb), idle(svx))),
    row(
      '  per process',
      per(svx, (l) => f4(svx.idleCpu[l]! / svx.idleS)),
      per(tb, (l) => f4(tb.idleCpu[l]! / tb.idleS)),
      '',
    ),
    row('RSS MB, all processes', f1(sum(svx.rssMB)), f1(sum(tb.rssMB)), ratio(sum(tb.rssMB), sum(svx.rssMB))),
    row(
      '  per process',
      per(svx, (l) => f1(svx.rssMB[l]!)),
      per(tb, (l) => f1(tb.rssMB[l]!)),
      '',
    ),
  ];
  const notes = [
    `${svx.audioS / 2.5} events per system (${svx.audioS} s of audio each), interleaved; event windows ${f1(svx.eventWindowS)} s (SvxLink) and ${f1(tb.eventWindowS)} s (talkbridge); idle ${f1(svx.idleS)} s, both at once`,
  ];
  for (const x of [svx, tb]) if (x.failed) notes.push(`${x.name}: ${x.failed} events without a far PTT off`);
  return { title: profile === 'lowest' ? 'lowest-latency settings' : "each system's defaults (SvxLink's shipped, TX_DELAY 0)", rows, notes };
}

export async function benchSvxlink(log: (s: string) => void = (s) => console.log(`  ${s}`)): Promise<SideBySide[]> {
  const missing = [
    ['svxlink', 'svxlink-server'],
    ['svxreflector', 'svxreflector'],
    ['mosquitto', 'mosquitto'],
    ['ip', 'iproute2'],
    ['python3', 'python3'],
  ].filter(([c]) => !which(c!));
  if (missing.length) {
    log(`skipped: install ${missing.map((m) => m[1]).join(' ')} (sudo apt-get install ${missing.map((m) => m[1]).join(' ')})`);
    return [];
  }
  if (!fs.existsSync(SHIPPED)) {
    log(`skipped: ${SHIPPED} (svxlink-server's shipped configuration) is missing`);
    return [];
  }
  if (process.getuid?.() !== 0) {
    log('skipped: needs root (a network namespace keeps svxreflector, which binds 0.0.0.0, on a loopback of its own): sudo npm run bench -- svxlink');
    return [];
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tb-svx-'));
  // Both profiles run one build: a copy of the daemon's bundle taken now (this tree's bundle may be
  // rebuilt while the part runs), under a path of its own.
  const app = path.join(dir, 'app');
  for (const p of ['gateway/bin', 'gateway/dist/bundle', 'firmware-config', 'package.json']) fs.cpSync(path.join(ROOT, p), path.join(app, p), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'));
  daemonBin = path.join(app, 'gateway/bin/talkbridge.js');
  const lab = new Lab();
  const out: SideBySide[] = [];
  try {
    for (const profile of PROFILES) out.push(tableOf(profile, await runProfile(lab, dir, profile, log)));
  } finally {
    await lab.close();
  }
  if (process.env.SVX_KEEP) log(`logs and configs kept in ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
  return out;
}
