/**
 * `npm run fuzz`: the standing attack suite (issue #16). Drives a real `talkbridge run` on a real
 * Mosquitto and then on its own embedded broker, attack after attack, each while a genuine over
 * is sent, and prints per attack and in total: messages sent, crashes, keyings not caused by a
 * genuine over, keyed time from hostile input, RSS, the worst event-loop stall and when the PTT
 * keyed for the genuine over. Exits 1 when a target is missed, 2 when the harness itself failed.
 *
 *   node --import tsx test/fuzz/run.ts [--quick] [--seed N] [--only a,b] [--bin path/to/talkbridge.js]
 *
 * How a keying is judged (see judge()): the PTT reports on the FIFO are the ground truth for when
 * the transmitter keyed and unkeyed; the daemon's own "PTT on" log line next to each key-up names
 * the over it keyed for. A key-up is genuine only if it names the stream of a genuine over while
 * that over was being sent; everything else is hostile. Keyed time counts as hostile outside the
 * windows genuine overs may hold the transmitter: from their START to their last packet plus
 * GENUINE_TAIL_MS (jitter buffer, TX delay and hang time).
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { readWav, type Pcm } from '../../gateway/src/audio/wav.js';
import { Codec, Flag, HEADER_BYTES } from '../../gateway/shared/channel/packet.js';
import { createChannelCrypto, type ChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { formatKey, generateKey } from '../../gateway/shared/crypto/keys.js';
import { freePort, startMosquitto, type TestBroker } from '../helpers/brokers.js';
import { FIXTURES, ROOT } from '../helpers/cli.js';
import type { Gen, Job, JobResult } from './attacker.js';
import { type DaemonEvent, WatchedDaemon, killGroup } from './daemon.js';
import { type GenuineOver, GenuineTalker } from './genuine.js';
import { Rng, buildCorpus, type Corpus } from './mutate.js';

// ---- settings -----------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const opt = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = flag('--quick');
const SEED = Number(opt('--seed') ?? Date.now() % 1e9);
const ONLY = opt('--only')?.split(',');
const KEEP = flag('--keep');
const BIN = path.resolve(opt('--bin') ?? process.env.TB_FUZZ_BIN ?? path.join(ROOT, 'gateway/bin/talkbridge.js'));

/** Targets (issue #16). */
const TARGET = { crashes: 0, hostileKeys: 0, hostileKeyedS: 1, rssGrowthMB: 64, genuineKeyMs: 1500 };
/** How long after its last packet a genuine over may still hold the transmitter. */
const GENUINE_TAIL_MS = 1500;
const PREFIX = 'talkbridge/v1';
const HOLD_PREFIX = 'hold/v1';

/** Counts and rates: the full run (≤ ~6 min here) and --quick (≤ 60 s). */
const P = QUICK
  ? {
      mutClearM: 30_000,
      mutEncM: 30_000,
      mutClearE: 20_000,
      mutEncE: 20_000,
      mutRateM: 15_000,
      mutRateE: 8_000,
      garbage: 4_000,
      garbageRate: 2_000,
      flood: 4_000,
      floodRate: 2_000,
      startRate: 300,
      memberStartRate: 100,
      guesses: 300,
      holdMs: 8_000,
      settleCapMs: 5_000,
      capMs: 10_000,
      retained: { n: 4, bytes: 2 << 20 },
      speech: 'speech-short-16k.wav',
    }
  : {
      mutClearM: 320_000,
      mutEncM: 320_000,
      mutClearE: 200_000,
      mutEncE: 200_000,
      mutRateM: 25_000,
      mutRateE: 12_000,
      garbage: 30_000,
      garbageRate: 5_000,
      flood: 30_000,
      floodRate: 5_000,
      startRate: 500,
      memberStartRate: 200,
      guesses: 3_000,
      holdMs: 45_000,
      settleCapMs: 20_000,
      capMs: 30_000,
      retained: { n: 16, bytes: 8 << 20 },
      speech: 'speech-16k.wav',
    };
/** --quick runs these (--only picks others). */
const QUICK_STEPS: Record<string, Set<string>> = {
  mosquitto: new Set(['baseline', 'mutate-clear', 'mutate-enc', 'hostile-broker', 'withhold-release', 'member-cut']),
  embedded: new Set(['mutate-enc', 'login-abuse']),
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.error(`[fuzz ${new Date().toISOString().slice(11, 19)}]`, ...a);

// ---- cleanup: every process started here ends with us -------------------------------------------

const cleanups: Array<() => unknown> = [];
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      /* keep going */
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- the attacker process -----------------------------------------------------------------------

let attacker: ChildProcess | null = null;
let jobIds = 0;
const pending = new Map<number, (r: JobResult) => void>();

async function startAttacker(): Promise<void> {
  attacker = fork(path.join(ROOT, 'test/fuzz/attacker.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
  cleanups.push(() => attacker?.pid && killGroup(attacker.pid));
  await new Promise<void>((resolve, reject) => {
    attacker!.once('exit', (c) => reject(new Error(`attacker process exited (${c})`)));
    attacker!.on('message', (m: JobResult | { ready: true }) => {
      if ('ready' in m) return resolve();
      pending.get(m.id)?.(m);
      pending.delete(m.id);
    });
  });
}

function runJob(j: Omit<Job, 'id' | 'prefix' | 'clear' | 'secure' | 'key' | 'seed'> & { seed?: number }): Promise<JobResult> {
  const id = ++jobIds;
  const job: Job = { prefix: PREFIX, clear: 'clr', secure: 'sec', key: KEY, seed: SEED + id * 7919, ...j, id };
  return new Promise((resolve) => {
    pending.set(id, resolve);
    attacker!.send(job);
  });
}

// ---- steps and what they measured ---------------------------------------------------------------

interface Step {
  phase: string;
  name: string;
  what: string;
  t0: number;
  t1: number;
  sent: number;
  notes: string[];
  genuine: GenuineOver[];
  rssBeforeKB: number | null;
  rssAfterKB: number | null;
  dropped0: number;
  mutated: number;
}

interface Phase {
  name: string;
  daemon: WatchedDaemon;
  steps: Step[];
  talkers: Record<string, GenuineTalker>;
  url: string;
  port: number;
  /** Credentials and topic senders for attackers on this broker. */
  attackerLogin: { username?: string; password?: string };
  senders: string[];
}

const KEY = formatKey(generateKey(1));
let speech: Pcm;
let corpus: Corpus;

function wanted(name: string, phase = 'mosquitto'): boolean {
  if (ONLY) return ONLY.includes(name);
  return !QUICK || QUICK_STEPS[phase]!.has(name);
}

/** Waits until the daemon has worked through its backlog and the PTT is down (bounded). */
async function settle(ph: Phase): Promise<void> {
  const d = ph.daemon;
  const until = Date.now() + P.settleCapMs;
  await sleep(QUICK ? 1000 : 1500);
  let prev = (await d.scrape())?.dropped;
  while (Date.now() < until && d.alive) {
    await sleep(1000);
    const s = await d.scrape();
    if (!d.keyed && s?.ok && s.dropped === prev) return;
    prev = s?.dropped;
  }
}

async function step(
  ph: Phase,
  name: string,
  what: string,
  body: (s: Step) => Promise<void>,
  genuine?: { talker: string; delayMs?: number; onStart?: (o: GenuineOver) => void } | null,
): Promise<Step | null> {
  if (!wanted(name, ph.name)) return null;
  const d = ph.daemon;
  if (!d.alive) {
    log(`${ph.name}: the daemon is down; restarting it before ${name}`);
    await d.start();
  }
  const s0 = await d.scrape();
  const s: Step = { phase: ph.name, name, what, t0: Date.now(), t1: 0, sent: 0, notes: [], genuine: [], rssBeforeKB: d.rssKB(), rssAfterKB: null, dropped0: s0?.dropped ?? 0, mutated: 0 };
  ph.steps.push(s);
  log(`${ph.name}: ${name} — ${what}`);
  const attack = body(s).catch((err: Error) => void s.notes.push(`harness: ${err.message}`));
  const talk = genuine
    ? sleep(genuine.delayMs ?? (QUICK ? 500 : 1000)).then(() => ph.talkers[genuine.talker]!.talk(`G-${ph.name.slice(0, 1)}-${name}`, speech, genuine.onStart))
    : Promise.resolve(null);
  const [, g] = await Promise.all([attack, talk]);
  if (g) s.genuine.push(g);
  await settle(ph);
  s.t1 = Date.now();
  s.rssAfterKB = d.rssKB();
  const crashes = d.crashes.filter((c) => c.at >= s.t0 && c.at <= s.t1);
  for (const c of crashes) s.notes.push(`CRASH (${c.signal ?? `exit ${c.code}`}): ${c.tail.split('\n').slice(-2).join(' | ').slice(0, 300)}`);
  return s;
}

function addJob(s: Step, r: JobResult, mutated = false, label = ''): void {
  s.sent += r.sent;
  if (mutated) s.mutated += r.sent;
  const l = label && label !== s.name ? `${label}: ` : '';
  if (r.error) s.notes.push(`${l}attacker failed: ${r.error}`);
  if (r.capped) s.notes.push(`${l}attacker stopped at its ${((r.ms || 0) / 1000).toFixed(0)} s cap after ${r.sent} messages`);
  if (r.skippedValid) s.notes.push(`${l}${r.skippedValid} mutants came out valid and were replaced`);
  const logins = 'login-guess' in r.kinds || 'take-client-id' in r.kinds;
  if (r.codes)
    s.notes.push(
      `${l}${logins ? `${r.sent} attempts — ` : ''}${Object.entries(r.codes)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')}`,
    );
}

// ---- the hostile broker (Mosquitto phase) -------------------------------------------------------

interface Recorded {
  topic: string;
  payload: Buffer;
  at: number;
}

/** What a broker sees of the encrypted channel: every genuine message, recorded with its time. */
class HostileBroker {
  client!: mqtt.MqttClient;
  readonly log: Recorded[] = [];
  /** While set, every live genuine audio packet is also sent again at once and 300 ms later. */
  duplicateLive = false;
  dupSent = 0;
  constructor(private readonly url: string) {}
  async open(): Promise<void> {
    // MQTT 5 "no local": what this client publishes is not delivered back to it.
    this.client = await mqtt.connectAsync(this.url, { clientId: `fz-hostile-${process.pid}`, protocolVersion: 5, reconnectPeriod: 500, queueQoSZero: false });
    await this.client.subscribeAsync([`${PREFIX}/sec/+/+`, `${HOLD_PREFIX}/sec/+/+`], { qos: 1, nl: true });
    this.client.on('message', (topic, payload) => {
      const sender = topic.split('/').at(-1)!;
      if (!/^(genuine|held)/.test(sender)) return;
      if (this.log.length < 20_000) this.log.push({ topic, payload: Buffer.from(payload), at: Date.now() });
      if (this.duplicateLive && topic.startsWith(`${PREFIX}/`) && topic.includes('/audio/')) {
        this.publish(topic, payload);
        setTimeout(() => this.publish(topic, payload), 300);
        this.dupSent += 2;
      }
    });
  }
  publish(topic: string, payload: Uint8Array): void {
    this.client.publish(topic, Buffer.from(payload), { qos: 0 });
  }
  /** The recorded messages of one over (its audio by stream id, its control by time around it). */
  over(stream: string): Recorded[] {
    const audio = this.log.filter((r) => r.topic.includes('/audio/') && r.payload.length >= HEADER_BYTES && r.payload.subarray(8, 16).toString('hex') === stream);
    if (!audio.length) return [];
    const from = audio[0]!.at - 500;
    const to = audio.at(-1)!.at + 500;
    const sender = audio[0]!.topic.split('/').at(-1);
    return this.log.filter((r) => r.at >= from && r.at <= to && r.topic.endsWith(`/${sender}`) && !r.topic.includes('/presence/'));
  }
  close(): Promise<void> {
    return this.client.endAsync(true).catch(() => undefined);
  }
}

const retopic = (topic: string, prefix: string, sender?: string) => {
  const parts = topic.split('/');
  const tail = parts.slice(-3); // channel, kind, sender
  if (sender) tail[2] = sender;
  return `${prefix}/${tail.join('/')}`;
};

/** Sends recorded messages with their original spacing (compressed by `speed`), bounded in count. */
async function paced(rec: Recorded[], send: (r: Recorded) => void, speed = 1): Promise<number> {
  if (!rec.length) return 0;
  const t0 = rec[0]!.at;
  const start = Date.now();
  let n = 0;
  for (const r of rec.slice(0, 2000)) {
    const wait = (r.at - t0) / speed - (Date.now() - start);
    if (wait > 0) await sleep(wait);
    send(r);
    n++;
  }
  return n;
}

// ---- hostile members (they hold the key) ---------------------------------------------------------

async function sealedControl(c: ChannelCrypto, sender: string, m: Record<string, unknown>): Promise<Uint8Array> {
  return c.sealMessage('control', sender, new TextEncoder().encode(JSON.stringify(m)));
}

/** A member's over of `packets` sealed packets whose frames are valid framing but not 20 ms Opus. */
async function garbageOver(c: ChannelCrypto, send: (topic: string, p: Uint8Array) => void, sender: string, packets: number, rng: Rng): Promise<number> {
  const stream = rng.hex(16);
  const t0 = Date.now();
  send(
    `${PREFIX}/sec/control/${sender}`,
    await sealedControl(c, sender, { v: 1, type: 'start', stream, t: t0, name: `Member ${sender}`, source: 'web', priority: 255, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 }),
  );
  let n = 1;
  for (let seq = 0; seq < packets; seq++) {
    const frames = [corpus.frames60[rng.int(0, corpus.frames60.length - 1)]!, corpus.frames60[rng.int(0, corpus.frames60.length - 1)]!];
    const flags = (seq === 0 ? Flag.START : 0) | (seq === packets - 1 ? Flag.END : 0);
    send(`${PREFIX}/sec/audio/${sender}`, await c.sealAudio(sender, { flags, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId: stream, seq, timestamp: t0 + seq * 40 }, frames));
    n++;
    await sleep(40);
  }
  return n;
}

// ---- the phases ---------------------------------------------------------------------------------

function radioConfig(fifo: string): string {
  return `radios:
  - name: fuzz
    interface: aioc
    ptt: { device: ${fifo} }
    cos: { type: none }
    audio: { sampleRate: 48000, input: { type: alsa, device: "plughw:CARD=Fuzz,DEV=0" }, output: { type: alsa, device: "plughw:CARD=Fuzz,DEV=0" } }
bridge:
  links: [{ radio: fuzz, transmit: clr, monitor: [clr, sec] }]
`;
}

const channelsConfig = () => `channels:
  - name: clr
  - name: sec
    key: "${KEY}"
`;

async function mosquittoPhase(dir: string): Promise<Phase> {
  // As the tests run it (test/helpers/brokers.ts): anonymous, no persistence, Mosquitto's queue limits.
  const broker: TestBroker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const httpPort = await freePort();
  const daemon = new WatchedDaemon({
    name: 'mosquitto',
    bin: BIN,
    dir: path.join(dir, 'mosquitto'),
    httpPort,
    config: ({ fifo, httpPort }) => `gateway: { id: gw-fuzz, name: Fuzz gateway }
broker: { url: "${broker.url}" }
embeddedBroker: { enabled: false }
http: { enabled: true, host: 127.0.0.1, port: ${httpPort} }
${channelsConfig()}${radioConfig(fifo)}`,
  });
  cleanups.push(() => daemon.kill());
  await daemon.start();
  const ph: Phase = {
    name: 'mosquitto',
    daemon,
    steps: [],
    talkers: {},
    url: broker.url,
    port: broker.port,
    attackerLogin: {},
    senders: Array.from({ length: 32 }, (_, i) => `fz${String(i).padStart(2, '0')}`),
  };
  ph.talkers.clr = new GenuineTalker({ url: broker.url, prefix: PREFIX, channel: 'clr', sender: 'genuine-c' });
  ph.talkers.sec = new GenuineTalker({ url: broker.url, prefix: PREFIX, channel: 'sec', key: KEY, sender: 'genuine-e' });
  ph.talkers.held = new GenuineTalker({ url: broker.url, prefix: HOLD_PREFIX, channel: 'sec', key: KEY, sender: 'held-1' });
  for (const t of Object.values(ph.talkers)) {
    await t.open();
    cleanups.push(() => t.close());
  }
  const hostile = new HostileBroker(broker.url);
  await hostile.open();
  cleanups.push(() => hostile.close());
  const member = (await createChannelCrypto({ channel: 'sec', keys: [KEY] }))!;
  const conn = (clientId: string) => ({ port: broker.port, clientId, localAddress: '127.0.0.2', ...ph.attackerLogin });
  const flood = (s: Step, gen: Gen, count: number, rate: number, mutated = false, extra?: Record<string, unknown>) =>
    // A broker that closes the connection on what it refuses (an oversized packet) is reconnected to, and counted.
    runJob({ gen, conn: conn(`fz-${gen}`), count, rate, capMs: P.capMs, senders: ph.senders, extra: { reconnects: 5000, ...extra } }).then((r) => addJob(s, r, mutated, gen));
  await sleep(QUICK ? 1000 : 2000); // the daemon settles (as after a boot) before the baseline is read

  let baselineSec: GenuineOver | null = null;
  await step(ph, 'baseline', `no attack: one genuine over on ${QUICK ? 'the encrypted channel' : 'each channel'}`, async (s) => {
    if (!QUICK) {
      s.genuine.push(await ph.talkers.clr!.talk('G-m-baseline-clr', speech));
      await sleep(1500);
    }
    baselineSec = await ph.talkers.sec!.talk('G-m-baseline-sec', speech);
    s.genuine.push(baselineSec);
  });

  // The over a hostile broker will hold back: sent now on a prefix the daemon does not hear.
  let held: GenuineOver | null = null;
  const capture = wanted('withhold-release')
    ? ph.talkers.held!.talk('G-m-withheld', speech).then((o) => {
        held = { ...o, withheld: true };
      })
    : Promise.resolve();

  // Released at its hold time, between two attacks: before the first attack that would start
  // within 15 s (half the hold, if shorter) of it — the release step waits out the rest — or at the end.
  let released = false;
  const maybeRelease = async (force = false) => {
    const h = held as GenuineOver | null;
    if (released || !wanted('withhold-release') || (!force && (!h || Date.now() < h.firstPacketAt + P.holdMs - Math.min(15_000, P.holdMs / 2)))) return;
    released = true;
    await step(ph, 'withhold-release', `a hostile broker held a genuine over back ${(P.holdMs / 1000).toFixed(0)} s, then releases it at once`, async (s) => {
      await capture;
      const h = held as GenuineOver | null;
      if (!h?.stream) return void s.notes.push('no withheld over was captured');
      const wait = h.firstPacketAt + P.holdMs - Date.now();
      if (wait > 0) await sleep(wait);
      const rec = hostile.over(h.stream).filter((r) => r.topic.startsWith(`${HOLD_PREFIX}/`));
      for (const r of rec) hostile.publish(retopic(r.topic, PREFIX), r.payload);
      s.sent += rec.length;
      s.notes.push(`released ${rec.length} messages ${((Date.now() - h.firstPacketAt) / 1000).toFixed(1)} s after its first packet`);
      s.genuine.push(h);
      await sleep((speech.samples.length / speech.sampleRate) * 1000 + 1000);
    });
  };

  let mutEncGenuine: GenuineOver | null = null;
  await step(
    ph,
    'mutate-clear',
    'mutated audio packets on the clear channel (random, truncated, bit-flipped, oversized, garbage Opus, TOC ≠ header, header fields)',
    (s) => flood(s, 'mutate-clear', P.mutClearM, P.mutRateM, true),
    { talker: 'clr' },
  );
  await capture;
  await maybeRelease();
  const mutEnc = await step(
    ph,
    'mutate-enc',
    'mutated sealed audio on the encrypted channel (random, truncated, bit-flipped, oversized, header and epoch edits, clear packets, forged envelopes)',
    (s) => flood(s, 'mutate-enc', P.mutEncM, P.mutRateM, true),
    { talker: 'sec' },
  );
  mutEncGenuine = mutEnc?.genuine[0] ?? null;
  await maybeRelease();
  await step(
    ph,
    'control-garbage',
    'malformed control on both channels: not JSON, wrong types, huge strings, unknown versions, bad envelopes',
    (s) => flood(s, 'control-garbage', P.garbage, P.garbageRate),
    { talker: 'clr' },
  );
  await maybeRelease();
  await step(ph, 'presence-garbage', 'malformed presence on both channels, some retained', (s) => flood(s, 'presence-garbage', P.garbage, P.garbageRate), { talker: 'sec' });
  await maybeRelease();
  await step(ph, 'flood-control', 'valid-looking control flood: ENDs of overs that never were, notices', (s) => flood(s, 'flood-control', P.flood, P.floodRate), { talker: 'clr' });
  await maybeRelease();
  await step(ph, 'flood-presence', 'presence flood: retained presence of 2,000 members who never talk', (s) => flood(s, 'flood-presence', P.flood, P.floodRate, false, { crowd: 2000 }), {
    talker: 'clr',
  });
  await maybeRelease();
  await step(
    ph,
    'flood-start',
    'START flood: a START with a fresh stream id, no audio, every 2 ms',
    (s) => flood(s, 'flood-start', Math.round((P.startRate * speech.samples.length) / speech.sampleRate + P.startRate * 2), P.startRate),
    { talker: 'clr' },
  );
  await maybeRelease();
  await step(ph, 'flood-audio', 'audio flood: eight hostile overs at a time, valid framing, undecodable frames, at flood rate', (s) => flood(s, 'flood-audio', P.flood, P.floodRate), {
    talker: 'clr',
  });

  await maybeRelease();
  await step(
    ph,
    'hostile-broker',
    'a hostile broker on the encrypted channel: replays recorded overs, splices two overs, re-labels packets to other senders, edits epochs, duplicates the live over',
    async (s) => {
      const a = baselineSec?.stream ? hostile.over(baselineSec.stream) : [];
      const b = mutEncGenuine?.stream ? hostile.over(mutEncGenuine.stream) : [];
      if (!a.length || !b.length) s.notes.push(`recorded overs missing (A ${a.length}, B ${b.length} messages)`);
      hostile.duplicateLive = true;
      hostile.dupSent = 0;
      const audioOf = (r: Recorded[]) => r.filter((x) => x.topic.includes('/audio/'));
      const jobs: Array<Promise<number>> = [
        // Replay: over A exactly as recorded, in real time.
        paced(a, (r) => hostile.publish(r.topic, r.payload)),
        // Splice: A's START and END around B's audio; A's and B's audio interleaved; A's header on B's bodies.
        (async () => {
          await sleep(300);
          const ctlA = a.filter((x) => x.topic.includes('/control/'));
          const mixed = [ctlA[0], ...audioOf(b), ctlA.at(-1)].filter((x): x is Recorded => !!x);
          let n = await paced(mixed, (r) => hostile.publish(r.topic, r.payload), 4);
          const aa = audioOf(a);
          const bb = audioOf(b);
          for (let i = 0; i < Math.min(aa.length, bb.length, 60); i++) {
            hostile.publish(aa[i]!.topic, aa[i]!.payload);
            hostile.publish(bb[i]!.topic, bb[i]!.payload);
            const frank = Buffer.concat([aa[i]!.payload.subarray(0, HEADER_BYTES), bb[i]!.payload.subarray(HEADER_BYTES)]);
            hostile.publish(aa[i]!.topic, frank);
            n += 3;
            await sleep(20);
          }
          return n;
        })(),
        // Re-label: A's messages on other senders' topics (a stranger, another member, the daemon itself).
        (async () => {
          await sleep(600);
          let n = 0;
          for (const who of ['genuine-x', 'held-1', 'gw-fuzz']) n += await paced(a, (r) => hostile.publish(retopic(r.topic, PREFIX, who), r.payload), 8);
          return n;
        })(),
        // Epoch edits: A's packets and envelopes under other epochs.
        (async () => {
          await sleep(900);
          let n = 0;
          for (const epoch of [0, 2, 65535]) {
            n += await paced(
              a,
              (r) => {
                const p = Buffer.from(r.payload);
                if (r.topic.includes('/audio/')) p.writeUInt16BE(epoch, 6);
                else if (p[0] === 0xe1) p.writeUInt16BE(epoch, 1);
                hostile.publish(r.topic, p);
              },
              8,
            );
          }
          return n;
        })(),
      ];
      for (const n of await Promise.all(jobs)) s.sent += n;
      hostile.duplicateLive = false;
      s.sent += hostile.dupSent;
      s.notes.push(`${hostile.dupSent} duplicates of the live over`);
    },
    { talker: 'sec', delayMs: 500 },
  );

  await maybeRelease();
  await step(ph, 'member-cut', "hostile members (key holders) cut and rename another member's over: END and START for its stream id from their own topics", async () => undefined, {
    talker: 'sec',
    onStart: (g) => {
      const rng = new Rng(SEED + 11);
      const at = (ms: number, fn: () => Promise<void>) => sleep(ms).then(fn);
      void at(1000, async () => hostile.publish(`${PREFIX}/sec/control/mallory`, await sealedControl(member, 'mallory', { v: 1, type: 'end', stream: g.stream, reason: 'done', packets: 0 })));
      void at(1600, async () =>
        hostile.publish(
          `${PREFIX}/sec/control/mallory`,
          await sealedControl(member, 'mallory', {
            v: 1,
            type: 'start',
            stream: g.stream,
            t: g.startAt - 500,
            name: 'Mallory',
            source: 'radio',
            priority: 255,
            sampleRate: 16000,
            frameMs: 20,
            framesPerPacket: 2,
          }),
        ),
      );
      void at(2200, async () =>
        hostile.publish(`${PREFIX}/sec/control/trudy`, await sealedControl(member, 'trudy', { v: 1, type: 'end', stream: g.stream, reason: rng.pick(['busy', 'preempted', 'aborted']), packets: 1 })),
      );
      void at(2800, async () =>
        hostile.publish(
          `${PREFIX}/sec/control/trudy`,
          await sealedControl(member, 'trudy', { v: 1, type: 'start', stream: g.stream, t: g.startAt, name: 'Trudy', source: 'web', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 }),
        ),
      );
    },
  }).then((s) => s && (s.sent += 4));

  await maybeRelease();
  await step(
    ph,
    'member-compete',
    'hostile members flood sealed top-priority STARTs and run competing overs of undecodable audio',
    async (s) => {
      const secs = speech.samples.length / speech.sampleRate + 2;
      const rng = new Rng(SEED + 13);
      const starts = runJob({
        gen: 'member-start',
        conn: conn('fz-member'),
        count: Math.round(P.memberStartRate * secs),
        rate: P.memberStartRate,
        capMs: P.capMs,
        senders: ['mallory', 'trudy', 'eve'],
      }).then((r) => addJob(s, r));
      const overs = (async () => {
        const until = Date.now() + secs * 1000;
        const lanes = ['mallory', 'trudy', 'eve', 'oscar'].map(async (who, i) => {
          await sleep(i * 300);
          let n = 0;
          while (Date.now() < until) n += await garbageOver(member, (t, p) => hostile.publish(t, p), who, rng.int(10, 40), rng);
          return n;
        });
        for (const n of await Promise.all(lanes)) s.sent += n;
      })();
      await Promise.all([starts, overs]);
    },
    { talker: 'sec' },
  );
  await maybeRelease(true);
  return ph;
}

async function embeddedPhase(dir: string): Promise<Phase> {
  const port = await freePort();
  const httpPort = await freePort();
  const pw = { genuine: `g-${new Rng(SEED).hex(24)}`, mallory: `m-${new Rng(SEED + 1).hex(24)}` };
  const daemon = new WatchedDaemon({
    name: 'embedded',
    bin: BIN,
    dir: path.join(dir, 'embedded'),
    httpPort,
    config: ({ fifo, httpPort }) => `gateway: { id: gw-fuzz, name: Fuzz gateway }
embeddedBroker:
  enabled: true
  host: 127.0.0.1
  port: ${port}
  auth:
    users:
      genuine: { role: talk, channels: [clr, sec], password: "${pw.genuine}" }
      mallory: { role: talk, channels: [clr, sec], password: "${pw.mallory}" }
http: { enabled: true, host: 127.0.0.1, port: ${httpPort} }
${channelsConfig()}${radioConfig(fifo)}`,
  });
  cleanups.push(() => daemon.kill());
  await daemon.start();
  const url = `mqtt://127.0.0.1:${port}`;
  const ph: Phase = { name: 'embedded', daemon, steps: [], talkers: {}, url, port, attackerLogin: { username: 'mallory', password: pw.mallory }, senders: ['mallory'] };
  ph.talkers.clr = new GenuineTalker({ url, prefix: PREFIX, channel: 'clr', sender: 'genuine', username: 'genuine', password: pw.genuine });
  ph.talkers.sec = new GenuineTalker({ url, prefix: PREFIX, channel: 'sec', key: KEY, sender: 'genuine', username: 'genuine', password: pw.genuine });
  for (const t of Object.values(ph.talkers)) {
    await t.open();
    cleanups.push(() => t.close());
  }
  const conn = (clientId: string) => ({ port, clientId, localAddress: '127.0.0.2', ...ph.attackerLogin });
  const flood = (s: Step, gen: Gen, count: number, rate: number, mutated = false, extra?: Record<string, unknown>) =>
    // A broker that closes the connection on what it refuses (an oversized packet) is reconnected to, and counted.
    runJob({ gen, conn: conn(`fz-${gen}`), count, rate, capMs: P.capMs, senders: ph.senders, extra: { reconnects: 5000, ...extra } }).then((r) => addJob(s, r, mutated, gen));
  await sleep(QUICK ? 1000 : 2000);

  await step(ph, 'baseline', 'no attack: one genuine over on each channel', async (s) => {
    s.genuine.push(await ph.talkers.clr!.talk('G-e-baseline-clr', speech));
    await sleep(1500);
    s.genuine.push(await ph.talkers.sec!.talk('G-e-baseline-sec', speech));
  });
  await step(ph, 'mutate-clear', 'mutated audio on the clear channel, through the embedded broker (a team member, mallory)', (s) => flood(s, 'mutate-clear', P.mutClearE, P.mutRateE, true), {
    talker: 'clr',
  });
  await step(ph, 'mutate-enc', 'mutated sealed audio on the encrypted channel, through the embedded broker', (s) => flood(s, 'mutate-enc', P.mutEncE, P.mutRateE, true), { talker: 'sec' });
  await step(
    ph,
    'control-garbage',
    'malformed control and presence on both channels',
    async (s) => {
      await Promise.all([flood(s, 'control-garbage', P.garbage / 2, P.garbageRate / 2), flood(s, 'presence-garbage', P.garbage / 2, P.garbageRate / 2)]);
    },
    { talker: 'clr' },
  );
  await step(
    ph,
    'flood-start',
    'START flood with fresh stream ids, and a control flood',
    async (s) => {
      const n = Math.round((P.startRate * speech.samples.length) / speech.sampleRate + P.startRate * 2);
      await Promise.all([flood(s, 'flood-start', n, P.startRate), flood(s, 'flood-control', P.flood / 2, P.floodRate / 2)]);
    },
    { talker: 'clr' },
  );
  await step(
    ph,
    'flood-audio',
    'audio and presence floods',
    async (s) => {
      await Promise.all([flood(s, 'flood-audio', P.flood, P.floodRate), flood(s, 'flood-presence', P.flood / 2, P.floodRate / 2)]);
    },
    { talker: 'clr' },
  );
  await step(
    ph,
    'login-abuse',
    "broker-login abuse: password guessing, taking the daemon's client ids (wrong and right logins), oversized retained presence",
    async (s) => {
      const ids = ['tb-gw-fuzz-clr', 'tb-gw-fuzz-sec', 'tb-gw-fuzz:status'];
      const jobs = [
        runJob({
          gen: 'login-guess',
          conn: { port, clientId: 'x', username: 'genuine', localAddress: '127.0.0.3' },
          count: P.guesses,
          rate: 0,
          capMs: P.capMs,
          senders: [],
          extra: { concurrency: 16 },
        }).then((r) => addJob(s, r, false, 'password guessing')),
        runJob({
          gen: 'take-client-id',
          conn: { port, clientId: 'x', username: 'gw-fuzz', password: 'not-the-password', localAddress: '127.0.0.4' },
          count: 60,
          rate: 20,
          capMs: P.capMs,
          senders: [],
          extra: { clientIds: ids, concurrency: 3 },
        }).then((r) => addJob(s, r, false, "the daemon's client ids, wrong password")),
        sleep(1500).then(() =>
          runJob({
            gen: 'take-client-id',
            conn: { port, clientId: 'x', localAddress: '127.0.0.5', ...ph.attackerLogin },
            count: QUICK ? 6 : 24,
            rate: 4,
            capMs: P.capMs,
            senders: [],
            extra: { clientIds: ids, concurrency: 1, holdMs: 200 },
          }).then((r) => addJob(s, r, false, "the daemon's client ids, a member's login")),
        ),
        runJob({
          gen: 'retained-presence',
          conn: conn('fz-retained'),
          count: P.retained.n,
          rate: 2,
          capMs: P.capMs,
          senders: ph.senders,
          extra: { bytes: P.retained.bytes, reconnects: P.retained.n },
        }).then((r) => addJob(s, r, false, `retained presence of ${P.retained.bytes >> 20} MB`)),
      ];
      await Promise.all(jobs);
    },
    { talker: 'clr' },
  );
  return ph;
}

// ---- judging ------------------------------------------------------------------------------------

interface Keying {
  at: number;
  until: number;
  stream: string | null;
  genuine: GenuineOver | null;
}

interface Verdict {
  over: GenuineOver;
  kind: 'keyed' | 'continued' | 'refused' | 'late' | 'not sent';
  latencyMs: number | null;
  keyedPct: number | null;
  text: string;
  why?: string;
}

interface Judged {
  keyings: Keying[];
  verdicts: Map<GenuineOver, Verdict>;
  /** Hostile keyed ms inside [a, b). */
  hostileMs(a: number, b: number): number;
  hostileKeys(a: number, b: number): Keying[];
}

function judge(ph: Phase): Judged {
  const d = ph.daemon;
  const end = Date.now();
  const overs = ph.steps.flatMap((s) => s.genuine);
  const pttOn = d.events.filter((e) => e.event === 'ptt' && e.on === true);
  const keyings: Keying[] = [];
  for (let i = 0; i < d.edges.length; i++) {
    const e = d.edges[i]!;
    if (!e.on) continue;
    const off = d.edges.slice(i + 1).find((x) => !x.on);
    // The daemon logs "PTT on (over <stream> …)" just before it writes the report.
    let best: DaemonEvent | null = null;
    for (const p of pttOn) if (Math.abs(p.at - e.at) <= 1500 && (!best || Math.abs(p.at - e.at) < Math.abs(best.at - e.at))) best = p;
    const stream = best ? (/over ([0-9a-f]{16})/.exec(String(best.reason ?? ''))?.[1] ?? null) : null;
    const g = overs.find((o) => !o.withheld && o.stream && o.stream === stream && e.at >= o.startAt - 200 && e.at <= o.lastPacketAt + 500) ?? null;
    keyings.push({ at: e.at, until: off?.at ?? end, stream, genuine: g });
  }
  const verdicts = new Map<GenuineOver, Verdict>();
  const windows: Array<[number, number]> = [];
  for (const o of overs) {
    if (!o.firstPacketAt) {
      verdicts.set(o, { over: o, kind: 'not sent', latencyMs: null, keyedPct: null, text: `not sent (${o.status})` });
      continue;
    }
    const ownKey = keyings.find((k) => (o.withheld ? k.stream === o.stream : k.genuine === o));
    const txEvent = d.events.find(
      (e) =>
        e.event === 'state' &&
        e.to === 'tx' &&
        String(e.reason ?? '').includes(`over from ${o.name} on`) &&
        e.at >= o.startAt - 200 &&
        e.at <= o.lastPacketAt + (o.withheld ? P.holdMs + 20_000 : 2000),
    );
    const skipped = d.events.find((e) => e.event === 'tx-skipped' && e.stream === o.stream);
    let v: Verdict;
    if (ownKey) {
      const lat = ownKey.at - o.firstPacketAt;
      v = { over: o, kind: lat <= TARGET.genuineKeyMs ? 'keyed' : 'late', latencyMs: lat, keyedPct: null, text: `${lat <= TARGET.genuineKeyMs ? '' : 'LATE '}${fmtS(lat)}` };
    } else if (txEvent) {
      const lat = Math.max(0, txEvent.at - o.firstPacketAt);
      v = { over: o, kind: lat <= TARGET.genuineKeyMs ? 'continued' : 'late', latencyMs: lat, keyedPct: null, text: `${lat <= TARGET.genuineKeyMs ? '' : 'LATE '}${fmtS(lat)} (already keyed)` };
    } else {
      v = { over: o, kind: 'refused', latencyMs: null, keyedPct: null, text: 'refused', why: skipped ? String(skipped.reason) : 'no tx-skipped line' };
    }
    // A late over is a failure of its own (below); its air time is still genuine audio.
    if ((v.kind === 'keyed' || v.kind === 'continued' || v.kind === 'late') && !o.withheld) {
      windows.push([o.startAt - 100, o.lastPacketAt + GENUINE_TAIL_MS]);
      // How much of the over the transmitter was actually up for.
      const len = o.lastPacketAt - o.firstPacketAt;
      const up = keyings.reduce((n, k) => n + overlap(k.at, k.until, o.firstPacketAt + (v.latencyMs ?? 0), o.lastPacketAt), 0);
      v.keyedPct = len > 0 ? Math.min(100, (100 * up) / Math.max(1, len - (v.latencyMs ?? 0))) : null;
      if (v.keyedPct !== null && v.keyedPct < 90) v.text += `, on air ${v.keyedPct.toFixed(0)} % of it`;
    }
    verdicts.set(o, v);
  }
  const hostile = keyings.filter((k) => !k.genuine);
  return {
    keyings,
    verdicts,
    hostileKeys: (a, b) => hostile.filter((k) => k.at >= a && k.at < b),
    hostileMs(a, b) {
      let ms = 0;
      for (const k of keyings) {
        // Keyed time in [a, b) outside every genuine window.
        const lo = Math.max(k.at, a);
        const hi = Math.min(k.until, b);
        if (hi <= lo) continue;
        ms += hi - lo - unionOverlap(windows, lo, hi);
      }
      return ms;
    },
  };
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}

function unionOverlap(ws: Array<[number, number]>, lo: number, hi: number): number {
  const parts = ws
    .map(([a, b]) => [Math.max(a, lo), Math.min(b, hi)] as [number, number])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cur: [number, number] | null = null;
  for (const p of parts) {
    if (cur && p[0] <= cur[1]) cur[1] = Math.max(cur[1], p[1]);
    else {
      if (cur) total += cur[1] - cur[0];
      cur = [p[0], p[1]];
    }
  }
  if (cur) total += cur[1] - cur[0];
  return total;
}

// ---- the report ---------------------------------------------------------------------------------

const fmtS = (ms: number) => `${ms >= 0 ? '+' : ''}${(ms / 1000).toFixed(2)} s`;
const mb = (kb: number | null | undefined) => (kb == null ? '—' : (kb / 1024).toFixed(0));
const int = (n: number) => n.toLocaleString('en-US');

interface Row {
  cells: string[];
}

function table(head: string[], rows: Row[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i <= 1 || i === cells.length - 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' │ ');
  return [line(head), w.map((x) => '─'.repeat(x)).join('─┼─'), ...rows.map((r) => line(r.cells))].join('\n');
}

interface PhaseFigures {
  growthMB: number;
  baselineKB: number | null;
  peakKB: number | null;
  finalKB: number | null;
}

function report(phases: Phase[], started: number): number {
  const head = [
    'phase',
    'attack',
    'sent',
    'crashes',
    'hostile keys',
    'hostile keyed',
    'RSS MB before/peak/after',
    'loop stall',
    '/metrics rtt',
    'dropped by daemon',
    'genuine over: PTT keyed after its 1st packet',
  ];
  const rows: Row[] = [];
  const notes: string[] = [];
  let totalSent = 0;
  let totalMutated = 0;
  let totalCrashes = 0;
  let totalKeys = 0;
  let totalKeyedMs = 0;
  const allVerdicts: Verdict[] = [];
  const figures = new Map<Phase, PhaseFigures>();
  let worstStall = 0;
  for (const ph of phases) {
    const d = ph.daemon;
    const j = judge(ph);
    const steps = ph.steps;
    const ends = steps.map((_s, i) => steps[i + 1]?.t0 ?? Date.now());
    let phSent = 0;
    let phKeys = 0;
    let phKeyedMs = 0;
    let phStall = 0;
    let phRtt = 0;
    let phDropped = 0;
    steps.forEach((s, i) => {
      const a = s.t0;
      const b = ends[i]!;
      const keys = j.hostileKeys(a, b);
      const keyedMs = j.hostileMs(a, b);
      const crashes = d.crashes.filter((c) => c.at >= a && c.at < b).length;
      const samples = d.samples.filter((x) => x.at >= a && x.at <= s.t1);
      const peak = samples.length ? Math.max(...samples.map((x) => x.rssKB)) : null;
      const scrapes = d.scrapes.filter((x) => x.at > a && x.at <= s.t1);
      const stall = Math.max(0, ...scrapes.map((x) => (x.ok ? (x.loopMaxMs ?? 0) : 10_000)));
      const rtt = Math.max(0, ...scrapes.map((x) => x.rttMs));
      const lastOk = [...scrapes].reverse().find((x) => x.ok);
      const dropped = lastOk && !crashes ? Math.max(0, lastOk.dropped - s.dropped0) : NaN;
      const verdicts = s.genuine.map((g) => j.verdicts.get(g)!).filter(Boolean);
      allVerdicts.push(...verdicts);
      for (const v of verdicts) if (v.why) s.notes.push(`${v.over.label} refused by the daemon: ${v.why}`);
      const brokerLost = d.events.filter((e) => e.event === 'broker' && e.state === 'offline' && e.at >= a && e.at < b).length;
      if (brokerLost) s.notes.push(`the daemon lost its broker connection ${brokerLost}×`);
      const streams = [...new Set(keys.map((k) => k.stream ?? 'no log line'))];
      if (keys.length) s.notes.push(`hostile keyings for ${streams.length} stream(s): ${streams.slice(0, 3).join(', ')}${streams.length > 3 ? ', …' : ''}`);
      const watchdog = d.events.filter((e) => e.event === 'ptt-fault' && /watchdog/i.test(String(e.err ?? '')) && e.at >= a && e.at < b).length;
      if (watchdog) s.notes.push(`PTT watchdog fired ${watchdog}× (event loop stalled while keyed)`);
      rows.push({
        cells: [
          ph.name,
          s.name,
          int(s.sent),
          String(crashes),
          String(keys.length),
          `${(keyedMs / 1000).toFixed(1)} s`,
          `${mb(s.rssBeforeKB)}/${mb(peak)}/${mb(s.rssAfterKB)}`,
          `${stall.toFixed(0)} ms`,
          `${rtt.toFixed(0)} ms`,
          Number.isNaN(dropped) ? '—' : int(dropped),
          verdicts.map((v) => v.text).join('; ') || '—',
        ],
      });
      for (const n of s.notes) notes.push(`${ph.name}/${s.name}: ${n}`);
      phSent += s.sent;
      totalMutated += s.mutated;
      phKeys += keys.length;
      phKeyedMs += keyedMs;
      phStall = Math.max(phStall, stall);
      phRtt = Math.max(phRtt, rtt);
      if (!Number.isNaN(dropped)) phDropped += dropped;
    });
    // RSS growth: peak over the run against the first reading (after start-up and one over each
    // way); a restarted daemon is measured against its own first reading.
    const baselineKB = steps[0]?.rssBeforeKB ?? d.samples[0]?.rssKB ?? null;
    let growthKB = 0;
    let peakKB: number | null = null;
    for (const x of d.samples) {
      if (x.at < (steps[0]?.t0 ?? 0)) continue;
      const restart = d.crashes.filter((c) => c.at <= x.at).at(-1);
      const base = restart ? (d.samples.find((y) => y.at > restart.at + 3000)?.rssKB ?? x.rssKB) : (baselineKB ?? x.rssKB);
      growthKB = Math.max(growthKB, x.rssKB - base);
      peakKB = Math.max(peakKB ?? 0, x.rssKB);
    }
    const finalKB = d.rssKB() ?? d.samples.at(-1)?.rssKB ?? null;
    figures.set(ph, { growthMB: growthKB / 1024, baselineKB, peakKB, finalKB });
    const phVerdicts = steps.flatMap((s) => s.genuine.map((g) => j.verdicts.get(g)!)).filter(Boolean);
    const ok = phVerdicts.filter((v) => v.kind === 'keyed' || v.kind === 'continued' || v.kind === 'refused').length;
    rows.push({
      cells: [
        ph.name,
        'TOTAL',
        int(phSent),
        String(d.crashes.length),
        String(phKeys),
        `${(phKeyedMs / 1000).toFixed(1)} s`,
        `${mb(baselineKB)}/${mb(peakKB)}/${mb(finalKB)}`,
        `${phStall.toFixed(0)} ms`,
        `${phRtt.toFixed(0)} ms`,
        int(phDropped),
        `${ok}/${phVerdicts.length} on time or refused`,
      ],
    });
    totalSent += phSent;
    totalCrashes += d.crashes.length;
    totalKeys += phKeys;
    totalKeyedMs += phKeyedMs;
    worstStall = Math.max(worstStall, phStall);
  }

  const out: string[] = [];
  out.push('');
  out.push(
    `talkbridge attack suite — ${QUICK ? 'QUICK' : 'full'} run, seed ${SEED}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  const git = (...a: string[]) => spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const dirty = git('status', '--porcelain', '--', 'gateway/src').split('\n').filter(Boolean).length;
  if (process.env.TB_FUZZ_BIN && BIN === path.resolve(process.env.TB_FUZZ_BIN))
    out.push(`code: this working tree, ${git('rev-parse', '--short', 'HEAD')}${dirty ? ` + ${dirty} uncommitted file(s) in gateway/src` : ''}`);
  out.push(`daemon: ${path.relative(ROOT, BIN)} run (radio: AIOC profile, CM108 PTT on a FIFO, fake arecord/aplay; channels clr (clear) and sec (encrypted))`);
  out.push('');
  out.push(table(head, rows));
  out.push('');
  out.push('  sent: messages (or login attempts) the attackers put on the wire; dropped by daemon: talkbridge_malformed_input_total over the attack.');
  out.push(
    `  hostile keyed: transmitter keyed outside genuine overs (START to last packet + ${GENUINE_TAIL_MS / 1000} s). loop stall: talkbridge_event_loop_delay_max_seconds, scraped every second (10 s when a scrape timed out).`,
  );
  out.push("  RSS before/peak/after: VmRSS at the attack's start, its highest, after the daemon settled; TOTAL: first reading / run peak / at the end.");
  if (notes.length) {
    out.push('');
    out.push('Notes:');
    for (const n of notes) out.push(`  ${n}`);
  }

  const late = allVerdicts.filter((v) => v.kind === 'late');
  const growth = [...figures.entries()].map(([ph, f]) => ({ ph, f }));
  const maxGrowth = Math.max(0, ...growth.map((g) => g.f.growthMB));
  const checks: Array<[string, string, boolean]> = [
    [`daemon crashes = ${TARGET.crashes}`, String(totalCrashes), totalCrashes <= TARGET.crashes],
    [`keyings not caused by a genuine over = ${TARGET.hostileKeys}`, String(totalKeys), totalKeys <= TARGET.hostileKeys],
    [`keyed time from hostile input ≤ ${TARGET.hostileKeyedS} s per run`, `${(totalKeyedMs / 1000).toFixed(1)} s`, totalKeyedMs <= TARGET.hostileKeyedS * 1000],
    [`RSS growth ≤ ${TARGET.rssGrowthMB} MB (peak − first reading, per daemon)`, growth.map((g) => `${g.ph.name} ${g.f.growthMB.toFixed(0)} MB`).join(', '), maxGrowth <= TARGET.rssGrowthMB],
    [
      `genuine over keyed ≤ ${TARGET.genuineKeyMs / 1000} s after its first packet, or refused`,
      `${allVerdicts.length - late.length}/${allVerdicts.length}${late.length ? `; late: ${late.map((v) => `${v.over.label} ${v.text}`).join(', ')}` : ''}`,
      late.length === 0,
    ],
  ];
  out.push('');
  out.push(
    table(
      ['target', 'measured', 'result'],
      checks.map(([t, m, ok]) => ({ cells: [t, '', m, ok ? 'PASS' : 'FAIL'] })).map((r) => ({ cells: [r.cells[0]!, r.cells[2]!, r.cells[3]!] })),
    ),
  );
  out.push('');
  const goal = 1_000_000;
  const reach = QUICK || ONLY ? ' (a partial run; the full run sends ≥ 1,000,000)' : totalMutated < goal ? ` — fewer than the suite's ${int(goal)}: an attacker hit its time cap` : '';
  out.push(`messages sent: ${int(totalSent)}; mutated audio packets: ${int(totalMutated)}${reach}; worst event-loop stall ${worstStall.toFixed(0)} ms`);
  const failed = checks.filter(([, , ok]) => !ok).length;
  out.push(failed ? `${failed} of ${checks.length} targets missed` : 'all targets met');
  console.log(out.join('\n'));
  return failed ? 1 : 0;
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = Date.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-fuzz-'));
  cleanups.push(() => (KEEP ? log(`kept ${dir} (daemon logs: */daemon.log)`) : rmSync(dir, { recursive: true, force: true })));
  speech = await readWav(path.join(FIXTURES, P.speech));
  corpus = await buildCorpus({ channel: 'sec', key: KEY, senders: ['x'], seed: SEED });
  await startAttacker();
  log(`seed ${SEED}; daemon ${path.relative(ROOT, BIN)}; work in ${dir}`);
  const phases: Phase[] = [];
  const wantEmbedded = !ONLY || ['baseline', 'mutate-clear', 'mutate-enc', 'control-garbage', 'flood-start', 'flood-audio', 'login-abuse'].some((n) => ONLY.includes(n));
  phases.push(await mosquittoPhase(dir));
  await phases[0]!.daemon.stop();
  if (wantEmbedded) {
    phases.push(await embeddedPhase(dir));
    await phases[1]!.daemon.stop();
  }
  return report(phases, started);
}

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err: Error) => {
    console.error(`fuzz: harness failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(2);
  },
);
