/**
 * The daemon under attack, watched from outside: a real `talkbridge run` (the bundle built from
 * this tree) with one radio whose PTT is a CM108 on a FIFO, read by a separate Python process that
 * timestamps every 5-byte report as it arrives (so a busy harness cannot skew the times), and fake
 * `arecord` / `aplay` first on PATH for its sound card. Samples VmRSS from /proc and scrapes
 * /metrics (event-loop delay, input dropped by reason); keeps the daemon's log events that matter
 * (PTT on/off with their reasons, state changes, refusals); notices when the process exits.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { type WriteStream, createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { installSoundCard } from '../helpers/sound-card.js';

/** CM108 GPIO3 reports (test/bridge/helpers.ts). */
export const KEY = '0000040400';
export const UNKEY = '0000000400';
/** As systemd/talkbridge.service runs it. */
const DAEMON_FLAGS = '--max-semi-space-size=1 --v8-pool-size=1';

const PTT_READER = `
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)  # read-write: never an end-of-file when a writer closes
buf = b''
while True:
    d = os.read(fd, 4096)
    if not d:
        break
    now = time.time() * 1000
    buf += d
    lines = []
    while len(buf) >= 5:
        lines.append('%.1f %s\\n' % (now, buf[:5].hex()))
        buf = buf[5:]
    sys.stdout.write(''.join(lines))
    sys.stdout.flush()
`;

export interface PttEdge {
  at: number;
  on: boolean;
}

export interface DaemonEvent {
  /** The daemon's own clock (pino's time), ms since the epoch. */
  at: number;
  event: string;
  [k: string]: unknown;
}

export interface Crash {
  at: number;
  code: number | null;
  signal: string | null;
  tail: string;
}

export interface Sample {
  at: number;
  rssKB: number;
}

export interface Scrape {
  at: number;
  /** talkbridge_event_loop_delay_max_seconds since the previous scrape, in ms. */
  loopMaxMs: number | null;
  /** Sum of talkbridge_malformed_input_total. */
  dropped: number;
  byReason: Record<string, number>;
  rttMs: number;
  ok: boolean;
}

export interface DaemonSpec {
  name: string;
  bin: string;
  dir: string;
  config: (o: { fifo: string; httpPort: number }) => string;
  httpPort: number;
}

const KEEP = new Set(['ptt', 'state', 'tx-skipped', 'starvation', 'time-out', 'over-start', 'over-end', 'broker', 'ready', 'ptt-fault', 'auth']);

export class WatchedDaemon {
  proc: ChildProcess | null = null;
  reader: ChildProcess | null = null;
  readonly edges: PttEdge[] = [];
  readonly events: DaemonEvent[] = [];
  readonly crashes: Crash[] = [];
  readonly samples: Sample[] = [];
  readonly scrapes: Scrape[] = [];
  /** Log lines at error level or worse. */
  errors = 0;
  /** Restarts after a crash; each gets a new process (RSS starts over). */
  starts = 0;
  keyed = false;
  private stopping = false;
  private timers: NodeJS.Timeout[] = [];
  private tail: string[] = [];
  private fifo: string;
  private bin: string;
  private lastDropped = 0;
  private inflight: Promise<Scrape | null> | null = null;
  /** Everything the daemon printed, for a look afterwards (run.ts --keep). */
  private logFile: WriteStream;

  constructor(readonly spec: DaemonSpec) {
    mkdirSync(spec.dir, { recursive: true });
    this.fifo = path.join(spec.dir, 'hidraw-fuzz');
    this.bin = path.join(spec.dir, 'bin');
    installSoundCard(this.bin);
    execFileSync('mkfifo', [this.fifo]);
    writeFileSync(path.join(spec.dir, 'ptt-reader.py'), PTT_READER);
    this.logFile = createWriteStream(path.join(spec.dir, 'daemon.log'), { flags: 'a' });
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  get alive(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts the PTT reader (once) and the daemon; resolves when the daemon logs ready. */
  async start(): Promise<void> {
    if (!this.reader) {
      // Own process group, so that cleanup can end it (and nothing else) by its id.
      this.reader = spawn('python3', ['-u', path.join(this.spec.dir, 'ptt-reader.py'), this.fifo], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      createInterface({ input: this.reader.stdout! }).on('line', (l) => {
        const [t, hex] = l.split(' ');
        const on = hex === KEY ? true : hex === UNKEY ? false : null;
        if (on === null || on === this.keyed) return;
        this.keyed = on;
        this.edges.push({ at: Number(t), on });
      });
    }
    const config = path.join(this.spec.dir, 'config.yaml');
    writeFileSync(config, this.spec.config({ fifo: this.fifo, httpPort: this.spec.httpPort }));
    this.stopping = false;
    const proc = spawn(process.execPath, [this.spec.bin, 'run', '--config', config], {
      cwd: this.spec.dir,
      env: { ...process.env, PATH: `${this.bin}:${process.env.PATH}`, NODE_OPTIONS: DAEMON_FLAGS },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.proc = proc;
    this.starts++;
    let ready!: () => void;
    let failed!: (e: Error) => void;
    const isReady = new Promise<void>((res, rej) => ((ready = res), (failed = rej)));
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      this.logFile.write(l + '\n');
      this.onLine(l, ready);
    });
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      this.logFile.write(l + '\n');
      this.remember(l);
    });
    proc.once('exit', (code, signal) => {
      if (!this.stopping) this.crashes.push({ at: Date.now(), code, signal, tail: this.tail.slice(-6).join('\n') });
      failed(new Error(`${this.spec.name}: the daemon exited (${signal ?? code}) before it was ready:\n${this.tail.slice(-10).join('\n')}`));
    });
    const t = setTimeout(() => failed(new Error(`${this.spec.name}: not ready after 30 s:\n${this.tail.slice(-10).join('\n')}`)), 30000);
    try {
      await isReady;
    } finally {
      clearTimeout(t);
    }
    if (this.timers.length === 0) {
      this.timers.push(setInterval(() => this.sampleRss(), 200));
      this.timers.push(setInterval(() => void this.scrape(), 1000));
    }
  }

  private remember(l: string): void {
    this.tail.push(l.length > 400 ? l.slice(0, 400) + '…' : l);
    if (this.tail.length > 40) this.tail.shift();
  }

  private onLine(l: string, ready: () => void): void {
    if (!l.startsWith('{')) return this.remember(l);
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return this.remember(l);
    }
    if (typeof j.level === 'number' && j.level >= 50) {
      this.errors++;
      this.remember(l);
    }
    const ev = typeof j.event === 'string' ? j.event : '';
    if (ev === 'ready') ready();
    if (!KEEP.has(ev)) return;
    // Bounded: a flood of refused overs logs a line each.
    if (this.events.length > 200_000) this.events.splice(0, 100_000);
    this.events.push({ ...j, at: Date.parse(String(j.time)) || Date.now(), event: ev });
  }

  rssKB(): number | null {
    if (!this.alive) return null;
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.proc!.pid}/status`, 'utf8'))![1]);
    } catch {
      return null;
    }
  }

  private sampleRss(): void {
    const r = this.rssKB();
    if (r !== null) this.samples.push({ at: Date.now(), rssKB: r });
  }

  /** One /metrics scrape (or the one in flight); a daemon too busy to answer within 10 s counts as a 10 s stall. */
  scrape(): Promise<Scrape | null> {
    if (!this.alive) return Promise.resolve(null);
    this.inflight ??= this.scrapeNow().finally(() => (this.inflight = null));
    return this.inflight;
  }

  private async scrapeNow(): Promise<Scrape | null> {
    const t0 = performance.now();
    const at = Date.now();
    try {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 10000);
      const res = await fetch(`http://127.0.0.1:${this.spec.httpPort}/metrics`, { signal: ac.signal }).finally(() => clearTimeout(timer));
      const text = await res.text();
      const rttMs = performance.now() - t0;
      const loop = /^talkbridge_event_loop_delay_max_seconds\{[^}]*\} ([\d.e+-]+)$/m.exec(text);
      const byReason: Record<string, number> = {};
      let dropped = 0;
      for (const m of text.matchAll(/^talkbridge_malformed_input_total\{([^}]*)\} ([\d.e+-]+)$/gm)) {
        const reason = /reason="([^"]*)"/.exec(m[1]!)?.[1] ?? '?';
        byReason[reason] = (byReason[reason] ?? 0) + Number(m[2]);
        dropped += Number(m[2]);
      }
      const s: Scrape = { at, loopMaxMs: loop ? Number(loop[1]) * 1000 : null, dropped, byReason, rttMs, ok: true };
      this.lastDropped = dropped;
      this.scrapes.push(s);
      return s;
    } catch {
      const s: Scrape = { at, loopMaxMs: null, dropped: this.lastDropped, byReason: {}, rttMs: performance.now() - t0, ok: false };
      if (this.alive) this.scrapes.push(s);
      return s;
    }
  }

  /** SIGTERM, then SIGKILL to the daemon's whole process group (guard, fake sound card). */
  async stop(): Promise<void> {
    this.stopping = true;
    const p = this.proc;
    if (p && this.alive) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    }
    if (p?.pid) killGroup(p.pid);
  }

  /** Everything this object started, at once (also the path taken on Ctrl-C). */
  kill(): void {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.logFile.end();
    if (this.proc?.pid) killGroup(this.proc.pid);
    if (this.reader?.pid) killGroup(this.reader.pid);
  }
}

export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
