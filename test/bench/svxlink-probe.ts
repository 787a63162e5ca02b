/**
 * The probe of `npm run bench -- svxlink`: one program, one monotonic clock (performance.now), that
 * drives SvxLink and talkbridge the same way. For each system it streams continuous 48 kHz audio
 * to the sending node's receiver (5 ms UDP packets on an absolute schedule, silence between
 * events), opens and closes that receiver's carrier (SvxLink: a PTY squelch, `O`/`Z`; talkbridge: a
 * CM108 input report on a FIFO), and timestamps what the far node's transmitter puts out (audio
 * over UDP; PTT on a PTY, `T`/`R`, or CM108 GPIO reports on a FIFO). Events alternate between the
 * systems. Between events it reads utime+stime of every process from /proc/PID/stat; after them it
 * finds the chirp markers in the far audio with a matched filter. Writes one JSON result to stdout.
 *
 *   node --import tsx test/bench/svxlink-probe.ts config.json
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';

export interface ProbeSystem {
  name: string;
  /** UDP port the sending node reads its receiver's audio from, and its channel count. */
  inPort: number;
  inChannels: 1 | 2;
  /** UDP port the far node's transmitter audio arrives on, and its channel count (channel 0 is read). */
  outPort: number;
  outChannels: 1 | 2;
  carrier: { kind: 'pty' | 'cm108'; path: string };
  ptt: { kind: 'pty' | 'cm108'; path: string };
  procs: Array<{ label: string; pid: number }>;
}

export interface ProbeConfig {
  systems: ProbeSystem[];
  warmup: number;
  events: number;
  idleS: number;
  settleS: number;
}

export interface ProbeResult {
  name: string;
  markers: number;
  markersFound: number;
  latency: number[];
  pttOn: number[];
  pttOff: number[];
  /** CPU-s in the event windows (carrier open → far PTT off), per process label. */
  eventCpu: Record<string, number>;
  eventWindowS: number;
  audioS: number;
  idleCpu: Record<string, number>;
  idleS: number;
  rssMB: Record<string, number>;
  failed: number;
}

const RATE = 48000;
const PKT = 240; // 5 ms
const PKT_MS = 5;
const EVENT_S = 2.5;
const MARKERS_S = [0.05, 0.55, 1.05, 1.55, 2.05];
const CHIRP_S = 0.04;
const GAP_MS = 1000;
const PTT_WAIT_MS = 8000;

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The 600 → 3000 Hz chirp, Hann-tapered, at `rate`; `quad` gives the sine (quadrature) version. */
function chirp(rate: number, quad = false): Float64Array {
  const n = Math.round(CHIRP_S * rate);
  const out = new Float64Array(n);
  const f0 = 600;
  const f1 = 3000;
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const ph = 2 * Math.PI * (f0 * t + ((f1 - f0) * t * t) / (2 * CHIRP_S));
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    out[i] = w * (quad ? Math.sin(ph) : Math.cos(ph));
  }
  return out;
}

/**
 * 2.5 s of speech-like audio: 300–3400 Hz noise amplitude-modulated at 4 Hz, about -24 dBFS RMS,
 * with five 40 ms chirp markers at about -12 dBFS peak in place of the noise.
 */
function eventAudio(): Int16Array {
  const n = Math.round(EVENT_S * RATE);
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  // Biquads (RBJ): high-pass 300 Hz then low-pass 3400 Hz, each twice.
  const biquad = (type: 'hp' | 'lp', f: number) => {
    const w = (2 * Math.PI * f) / RATE;
    const a = Math.sin(w) / (2 * Math.SQRT1_2);
    const c = Math.cos(w);
    const b0 = type === 'lp' ? (1 - c) / 2 : (1 + c) / 2;
    const b1 = type === 'lp' ? 1 - c : -(1 + c);
    const a0 = 1 + a;
    const k = [b0 / a0, b1 / a0, b0 / a0, (-2 * c) / a0, (1 - a) / a0] as const;
    let x1 = 0,
      x2 = 0,
      y1 = 0,
      y2 = 0;
    return (x: number) => {
      const y = k[0] * x + k[1] * x1 + k[2] * x2 - k[3] * y1 - k[4] * y2;
      x2 = x1;
      x1 = x;
      y2 = y1;
      y1 = y;
      return y;
    };
  };
  const chain = [biquad('hp', 300), biquad('hp', 300), biquad('lp', 3400), biquad('lp', 3400)];
  const x = new Float64Array(n);
  let e = 0;
  for (let i = 0; i < n + RATE / 10; i++) {
    let v = rnd();
    for (const f of chain) v = f(v);
    if (i < RATE / 10) continue; // filters settle
    const j = i - RATE / 10;
    x[j] = v * (0.55 + 0.45 * Math.sin((2 * Math.PI * 4 * j) / RATE));
    e += x[j]! * x[j]!;
  }
  const g = (10 ** (-24 / 20) * 32767) / Math.sqrt(e / n);
  const c = chirp(RATE);
  const fade = RATE / 200;
  for (const at of MARKERS_S) {
    const s = Math.round(at * RATE);
    for (let i = -fade; i < c.length + fade; i++) {
      const k = s + i;
      // Duck the noise around the chirp, then add it.
      const d = i < 0 ? -i / fade : i >= c.length ? (i - c.length + 1) / fade : 0;
      x[k]! *= Math.min(1, d);
    }
    for (let i = 0; i < c.length; i++) x[s + i]! += (c[i]! * 10 ** (-12 / 20) * 32767) / g;
  }
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(x[i]! * g)));
  return out;
}

function cpuOf(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

function rssOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}

interface Chunk {
  at: number;
  s: Int16Array;
}

interface Event {
  sys: Sys;
  warm: boolean;
  /** Tick after which the carrier opens; audio goes out in the next EVENT_S of ticks. */
  openTick: number;
  tOpen: number;
  tClose: number;
  tPttOn: number | null;
  tPttOff: number | null;
  /** Send time of each audio packet. */
  sent: number[];
  out: Chunk[];
  cpu0: number[];
  cpu1: number[] | null;
  done: number | null;
}

class Sys {
  carrierFd: number;
  pttOn = false;
  playedUntil = 0;
  current: Event | null = null;
  events: Event[] = [];
  stray = 0;
  constructor(
    readonly c: ProbeSystem,
    private readonly onPtt: (s: Sys, on: boolean, at: number) => void,
  ) {
    this.carrierFd = fs.openSync(c.carrier.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const fd = fs.openSync(c.ptt.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | (c.ptt.kind === 'cm108' ? fs.constants.O_NONBLOCK : 0));
    if (c.ptt.kind === 'pty') {
      const s = new tty.ReadStream(fd);
      s.setRawMode(true);
      s.on('data', (d: Buffer) => {
        const at = now();
        for (const ch of d.toString('latin1')) if (ch === 'T' || ch === 'R') this.edge(ch === 'T', at);
      });
    } else {
      // CM108 output reports, 5 bytes: GPIO3 set = keyed (gateway/src/radio/ptt/cm108.ts).
      const s = new net.Socket({ fd, readable: true, writable: false });
      let pending = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        const at = now();
        pending = Buffer.concat([pending, d]);
        while (pending.length >= 5) {
          this.edge((pending[2]! & 0x04) !== 0, at);
          pending = pending.subarray(5);
        }
      });
    }
  }
  carrier(on: boolean) {
    if (this.c.carrier.kind === 'pty') fs.writeSync(this.carrierFd, on ? 'O' : 'Z');
    else fs.writeSync(this.carrierFd, Buffer.from([on ? 0x02 : 0, 0, 0, 0]));
  }
  private edge(on: boolean, at: number) {
    if (on === this.pttOn) return;
    this.pttOn = on;
    this.onPtt(this, on, at);
  }
  audio(d: Buffer, at: number) {
    const ch = this.c.outChannels;
    const n = Math.floor(d.length / (2 * ch));
    const s = new Int16Array(n);
    for (let i = 0; i < n; i++) s[i] = d.readInt16LE(2 * ch * i);
    // Played in real time: audio arriving while earlier audio still plays waits its turn.
    const start = Math.max(at, this.playedUntil);
    this.playedUntil = start + (n * 1000) / RATE;
    if (this.current) this.current.out.push({ at: start, s });
    else this.stray += n;
  }
  cpu(): number[] {
    return this.c.procs.map((p) => cpuOf(p.pid));
  }
}

/** Chirp starts in one event's far audio, in ms, by matched filter (quadrature envelope) at 16 kHz. */
function findMarkers(ev: Event, tIn: number[]): Array<number | null> {
  if (ev.out.length === 0) return tIn.map(() => null);
  const base = ev.tOpen;
  const end = Math.max(...ev.out.map((c) => c.at + (c.s.length * 1000) / RATE));
  const n16 = Math.ceil(((end - base) * 16000) / 1000) + 1;
  const y = new Float64Array(n16);
  // Place each chunk on the play-time axis, then average each 3 samples down to 16 kHz.
  for (const c of ev.out) {
    const off = ((c.at - base) * RATE) / 1000;
    for (let i = 0; i < c.s.length; i++) {
      const k = Math.floor((off + i) / 3);
      if (k >= 0 && k < n16) y[k]! += c.s[i]! / 3;
    }
  }
  const ci = chirp(16000);
  const cq = chirp(16000, true);
  const m = ci.length;
  return tIn.map((t) => {
    // Each window ends before the next marker could arrive (markers are 500 ms apart).
    const lo = Math.max(0, Math.floor(((t - base + 5) * 16000) / 1000));
    const hi = Math.min(n16 - m, Math.floor(((t - base + 480) * 16000) / 1000));
    if (hi <= lo) return null;
    const env = new Float64Array(hi - lo);
    let best = -1;
    let bestAt = 0;
    for (let p = lo; p < hi; p++) {
      let a = 0;
      let b = 0;
      for (let i = 0; i < m; i++) {
        const v = y[p + i]!;
        a += v * ci[i]!;
        b += v * cq[i]!;
      }
      const e = Math.sqrt(a * a + b * b);
      env[p - lo] = e;
      if (e > best) (best = e), (bestAt = p);
    }
    const sorted = [...env].sort((u, v) => u - v);
    const med = sorted[Math.floor(sorted.length / 2)]!;
    if (best < 4 * med || best === 0) return null;
    return base + (bestAt * 1000) / 16000;
  });
}

async function main() {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as ProbeConfig;
  const log = (...a: unknown[]) => process.stderr.write(`[probe] ${a.join(' ')}\n`);
  const audio = eventAudio();
  const ticks = audio.length / PKT;
  const silence = (ch: number) => Buffer.alloc(PKT * 2 * ch);
  const packetOf = (ch: number, k: number) => {
    const b = Buffer.alloc(PKT * 2 * ch);
    for (let i = 0; i < PKT; i++) for (let c = 0; c < ch; c++) b.writeInt16LE(audio[k * PKT + i]!, 2 * (i * ch + c));
    return b;
  };
  const packets = [1, 2].map((ch) => Array.from({ length: ticks }, (_, k) => packetOf(ch, k)));

  let tick = 0;
  const waiter: { fn: (() => void) | null } = { fn: null };
  const onPtt = (s: Sys, on: boolean, at: number) => {
    const ev = s.current;
    if (!ev) return;
    if (on && ev.tPttOn === null) ev.tPttOn = at;
    if (!on && ev.tPttOn !== null && ev.tPttOff === null && at >= ev.tClose && ev.tClose > 0) {
      ev.tPttOff = at;
      ev.cpu1 = s.cpu();
    }
  };
  const systems = cfg.systems.map((c) => new Sys(c, onPtt));
  const tx = dgram.createSocket('udp4');
  await Promise.all(
    systems.map(
      (s) =>
        new Promise<void>((res, rej) => {
          const rx = dgram.createSocket('udp4');
          rx.on('message', (d) => s.audio(d, now()));
          rx.once('error', rej);
          rx.bind(s.c.outPort, '127.0.0.1', () => res());
        }),
    ),
  );

  // The stream: every 5 ms, one packet to each system's receiver, on an absolute schedule.
  const t0 = now() + 20;
  let stop = false;
  const stream = (async () => {
    while (!stop) {
      const due = t0 + tick * PKT_MS;
      const wait = due - now();
      if (wait > 0) await sleep(Math.ceil(wait));
      for (const s of systems) {
        const ev = s.current;
        const k = ev ? tick - ev.openTick - 1 : -1;
        const audioTick = ev !== null && k >= 0 && k < ticks;
        tx.send(audioTick ? packets[s.c.inChannels - 1]![k]! : silence(s.c.inChannels), s.c.inPort, '127.0.0.1');
        if (!ev) continue;
        const t = now();
        if (audioTick) ev.sent.push(t);
        if (k === -1) {
          // Carrier opens as the first audio packet's first sample is captured.
          ev.cpu0 = s.cpu();
          ev.tOpen = now();
          s.carrier(true);
        }
        if (k === ticks - 1) {
          s.carrier(false);
          ev.tClose = now();
        }
      }
      tick++;
      waiter.fn?.();
    }
  })();
  const nextTick = () => new Promise<void>((r) => (waiter.fn = () => ((waiter.fn = null), r())));

  log(`streaming; settling ${cfg.settleS} s`);
  await sleep(cfg.settleS * 1000);

  const runEvent = async (s: Sys, warm: boolean) => {
    await nextTick();
    const ev: Event = { sys: s, warm, openTick: tick, tOpen: 0, tClose: 0, tPttOn: null, tPttOff: null, sent: [], out: [], cpu0: [], cpu1: null, done: null };
    s.current = ev;
    s.events.push(ev);
    // Audio, then the far transmitter's unkey (or a time-out), then a gap.
    while (ev.tClose === 0) await sleep(50);
    const until = ev.tClose + PTT_WAIT_MS;
    while (ev.tPttOff === null && now() < until) await sleep(20);
    if (ev.tPttOff === null) {
      ev.cpu1 = s.cpu();
      log(`${s.c.name}: no PTT off within ${PTT_WAIT_MS} ms of carrier close (PTT on: ${ev.tPttOn !== null})`);
    }
    await sleep(300); // trailing audio
    s.current = null;
    ev.done = now();
    await sleep(GAP_MS - 300);
  };

  for (let i = 0; i < cfg.warmup; i++) for (const s of systems) await runEvent(s, true);
  // Idle: every system's input stream running, carriers closed, nobody transmitting.
  await sleep(2000);
  const idle0 = systems.map((s) => s.cpu());
  const ti0 = now();
  log(`idle ${cfg.idleS} s`);
  await sleep(cfg.idleS * 1000);
  const idle1 = systems.map((s) => s.cpu());
  const idleS = (now() - ti0) / 1000;
  log(`${cfg.events} events per system, interleaved`);
  for (let i = 0; i < cfg.events; i++) {
    for (const s of systems) await runEvent(s, false);
    if (i % 4 === 3) log(`${i + 1} of ${cfg.events}`);
  }
  const rss = systems.map((s) => s.c.procs.map((p) => rssOf(p.pid)));
  stop = true;
  await stream;
  tx.close();

  const results: ProbeResult[] = systems.map((s, si) => {
    const evs = s.events.filter((e) => !e.warm);
    const latency: number[] = [];
    let markers = 0;
    const eventCpu: Record<string, number> = {};
    let windowMs = 0;
    let failed = 0;
    for (const ev of evs) {
      // Input time of each marker: its packet's send time, less the packet (it was captured over
      // the 5 ms before it was sent), plus its place in the packet.
      const tIn = MARKERS_S.map((m) => {
        const idx = Math.round(m * RATE);
        return ev.sent[Math.floor(idx / PKT)]! - PKT_MS + ((idx % PKT) * 1000) / RATE;
      });
      const found = findMarkers(ev, tIn);
      markers += tIn.length;
      found.forEach((t, i) => t !== null && latency.push(t - tIn[i]!));
      if (ev.tPttOff === null) failed++;
      windowMs += (ev.tPttOff ?? ev.tClose + PTT_WAIT_MS) - ev.tOpen;
      s.c.procs.forEach((p, i) => (eventCpu[p.label] = (eventCpu[p.label] ?? 0) + ev.cpu1![i]! - ev.cpu0[i]!));
    }
    return {
      name: s.c.name,
      markers,
      markersFound: latency.length,
      latency,
      pttOn: evs.filter((e) => e.tPttOn !== null).map((e) => e.tPttOn! - e.tOpen),
      pttOff: evs.filter((e) => e.tPttOff !== null).map((e) => e.tPttOff! - e.tClose),
      eventCpu,
      eventWindowS: windowMs / 1000,
      audioS: evs.length * EVENT_S,
      idleCpu: Object.fromEntries(s.c.procs.map((p, i) => [p.label, idle1[si]![i]! - idle0[si]![i]!])),
      idleS,
      rssMB: Object.fromEntries(s.c.procs.map((p, i) => [p.label, rss[si]![i]!])),
      failed,
    };
  });
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`[probe] ${e?.stack ?? e}\n`);
  process.exit(1);
});
