/**
 * The flooding side of the attack suite, in a process of its own (forked by run.ts): it can then
 * saturate its socket without delaying the harness's genuine talker, its PTT and RSS readings or
 * its clocks. Takes one job at a time over IPC, answers with what it sent.
 *
 * Every loop is bounded by a message count and a time cap; a job that hits the cap reports how far
 * it got.
 */
import { Codec, Flag, encodeHeader, HEADER_BYTES } from '../../gateway/shared/channel/packet.js';
import { type ChannelCrypto, createChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { type ConnectSpec, type RawConnection, publishFrame, rawConnect } from './mqtt-raw.js';
import { type Corpus, Rng, buildCorpus, controlGarbage, mutateClear, mutateEnc, presenceGarbage } from './mutate.js';

export type Gen =
  | 'mutate-clear'
  | 'mutate-enc'
  | 'control-garbage'
  | 'presence-garbage'
  | 'flood-control'
  | 'flood-presence'
  | 'flood-start'
  | 'flood-audio'
  | 'member-start'
  | 'login-guess'
  | 'take-client-id'
  | 'retained-presence';

export interface Job {
  id: number;
  gen: Gen;
  conn: ConnectSpec;
  /** Messages (or login attempts) to send. */
  count: number;
  /** Messages per second; 0 = as fast as the socket takes them. */
  rate: number;
  capMs: number;
  prefix: string;
  /** Clear channel and encrypted channel names. */
  clear: string;
  secure: string;
  key: string;
  /** Topic senders to publish as (a broker with ACLs allows only the login's own). */
  senders: string[];
  seed: number;
  /** Extra parameters of some generators. */
  extra?: Record<string, unknown>;
}

export interface JobResult {
  id: number;
  sent: number;
  ms: number;
  kinds: Record<string, number>;
  /** Clear mutants that came out valid and were replaced (mutate.ts). */
  skippedValid: number;
  capped: boolean;
  /** login attempts: CONNACK codes seen, and connections the broker closed. */
  codes?: Record<string, number>;
  error?: string;
}

let corpus: Corpus | null = null;
const cryptos = new Map<string, Promise<ChannelCrypto>>();

function cryptoFor(channel: string, key: string): Promise<ChannelCrypto> {
  let c = cryptos.get(channel);
  if (!c) {
    c = createChannelCrypto({ channel, keys: [key] }) as Promise<ChannelCrypto>;
    cryptos.set(channel, c);
  }
  return c;
}

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Make = (i: number) => { topic: string; payload: Uint8Array; retain?: boolean; kind: string };

/** A generator for the job: a function from message index to message, after any async preparation. */
async function prepare(job: Job, rng: Rng, stats: { skippedValid: number }): Promise<Make> {
  const t = (channel: string, kind: string, sender: string) => `${job.prefix}/${channel}/${kind}/${sender}`;
  const sender = () => rng.pick(job.senders);
  switch (job.gen) {
    case 'mutate-clear':
      return () => {
        const m = mutateClear(rng, corpus!);
        stats.skippedValid += m.skippedValid;
        return { topic: t(job.clear, 'audio', sender()), payload: m.payload, kind: m.kind };
      };
    case 'mutate-enc':
      return () => {
        const m = mutateEnc(rng, corpus!);
        // The sealed corpus was made for the pool's first senders; an ACL'd login has one topic.
        const s = job.senders.includes(m.sender) ? m.sender : sender();
        return { topic: t(job.secure, 'audio', s), payload: m.payload, kind: m.kind };
      };
    case 'control-garbage':
      return () => {
        const secure = rng.chance(0.5);
        return { topic: t(secure ? job.secure : job.clear, 'control', sender()), payload: controlGarbage(rng, secure), kind: secure ? 'secure' : 'clear' };
      };
    case 'presence-garbage': {
      // Retained on a bounded set of topics, so the broker's retained store stays bounded too.
      return () => {
        const secure = rng.chance(0.5);
        return { topic: t(secure ? job.secure : job.clear, 'presence', sender()), payload: presenceGarbage(rng, secure), retain: rng.chance(0.2), kind: secure ? 'secure' : 'clear' };
      };
    }
    case 'flood-control':
      // Well-formed control nobody needs: ENDs of overs that never were, notices.
      return () => {
        const m = rng.chance(0.7)
          ? { v: 1, type: 'end', stream: rng.hex(16), reason: rng.pick(['done', 'busy', 'timeout', 'preempted', 'error', 'aborted']), packets: rng.int(0, 5000) }
          : { v: 1, type: 'notice', code: rng.pick(['timeout', 'lockout', 'x']), text: 'flood '.repeat(rng.int(1, 30)) };
        return { topic: t(job.clear, 'control', sender()), payload: enc.encode(JSON.stringify(m)), kind: m.type };
      };
    case 'flood-presence': {
      // Valid retained presence from a crowd that never talks: thousands of sender ids.
      const crowd = Number(job.extra?.crowd ?? 2000);
      const own = job.senders.length === 1; // an ACL'd login can only write its own
      return (i) => {
        const s = own ? job.senders[0]! : `crowd-${(i % crowd).toString(36)}`;
        const p = { v: 1, name: `Member ${i % crowd}`, source: rng.pick(['radio', 'web', 'cli']), since: Date.now(), software: 'talkbridge/0.1' };
        return { topic: t(job.clear, 'presence', s), payload: enc.encode(JSON.stringify(p)), retain: true, kind: 'presence' };
      };
    }
    case 'flood-start':
      // START after START, each with a fresh stream id, no audio ever.
      return () => {
        const m = {
          v: 1,
          type: 'start',
          stream: rng.hex(16),
          t: Date.now() - rng.int(0, 200),
          name: 'Flood',
          source: rng.pick(['radio', 'web', 'cli']),
          priority: rng.int(0, 255),
          sampleRate: 16000,
          frameMs: 20,
          framesPerPacket: 2,
        };
        return { topic: t(job.clear, 'control', sender()), payload: enc.encode(JSON.stringify(m)), kind: 'start' };
      };
    case 'flood-audio': {
      // Coherent hostile overs at flood rate: valid headers and framing, START/END where they
      // belong, seq in order — and frames that are not Opus of the declared duration.
      const live = Array.from({ length: 8 }, () => ({ stream: rng.hex(16), seq: 0, len: rng.int(50, 250), t0: Date.now(), sender: sender() }));
      return () => {
        const k = rng.int(0, live.length - 1);
        const s = live[k]!;
        const last = s.seq === s.len - 1;
        const h = new Uint8Array(HEADER_BYTES);
        encodeHeader(
          {
            flags: (s.seq === 0 ? Flag.START : 0) | (last ? Flag.END : 0),
            codec: Codec.OPUS,
            sampleRate: 16000,
            frameMs: 20,
            frameCount: 2,
            keyEpoch: 0,
            streamId: s.stream,
            seq: s.seq,
            timestamp: s.t0 + s.seq * 40,
          },
          h,
        );
        const f1 = corpus!.frames60[rng.int(0, corpus!.frames60.length - 1)]!;
        const f2 = rng.bytes(rng.int(1, 80));
        f2[0] = (11 << 3) | 0; // SILK 60 ms TOC: never one 20 ms frame
        const body = new Uint8Array(4 + f1.length + f2.length);
        body[0] = f1.length >> 8;
        body[1] = f1.length & 0xff;
        body.set(f1, 2);
        body[2 + f1.length] = f2.length >> 8;
        body[3 + f1.length] = f2.length & 0xff;
        body.set(f2, 4 + f1.length);
        const payload = new Uint8Array(HEADER_BYTES + body.length);
        payload.set(h);
        payload.set(body, HEADER_BYTES);
        s.seq++;
        if (last) live[k] = { stream: rng.hex(16), seq: 0, len: rng.int(50, 250), t0: Date.now(), sender: sender() };
        return { topic: t(job.clear, 'audio', s.sender), payload, kind: 'audio' };
      };
    }
    case 'member-start': {
      // A member (holds the key) floods sealed STARTs with fresh stream ids, top priority. Sealed
      // up front: every one carries its own random nonce and send time, as a real one would.
      const c = await cryptoFor(job.secure, job.key);
      const sealed: Array<{ topic: string; payload: Uint8Array }> = [];
      for (let i = 0; i < job.count; i++) {
        const s = sender();
        const m = { v: 1, type: 'start', stream: rng.hex(16), t: Date.now(), name: 'Member flood', source: 'web', priority: 255, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 };
        sealed.push({ topic: t(job.secure, 'control', s), payload: await c.sealMessage('control', s, enc.encode(JSON.stringify(m))) });
      }
      return (i) => ({ ...sealed[i]!, kind: 'sealed-start' });
    }
    case 'retained-presence': {
      // Oversized retained presence on the login's own topic(s).
      const size = Number(job.extra?.bytes ?? 1 << 20);
      return (i) => {
        const body = rng.bytes(size);
        return { topic: t(i % 2 ? job.secure : job.clear, 'presence', job.senders[0]!), payload: body, retain: true, kind: `${size >> 10} KiB` };
      };
    }
    default:
      throw new Error(`generator ${job.gen} has no messages`);
  }
}

async function publishJob(job: Job): Promise<JobResult> {
  const rng = new Rng(job.seed);
  const stats = { skippedValid: 0 };
  if ((job.gen === 'mutate-clear' || job.gen === 'mutate-enc' || job.gen === 'flood-audio') && !corpus) {
    corpus = await buildCorpus({ channel: job.secure, key: job.key, senders: job.senders, seed: job.seed });
  }
  const make = await prepare(job, rng, stats);
  let conn = await rawConnect(job.conn);
  if (conn.code !== 0) throw new Error(`broker refused the attacker's login (CONNACK ${conn.code})`);
  /** A broker that closes the connection (a bound it enforces) is noted; some jobs come back. */
  let reconnects = Number(job.extra?.reconnects ?? 0);
  const codes: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  const start = performance.now();
  let sent = 0;
  let capped = false;
  try {
    while (sent < job.count) {
      const elapsed = performance.now() - start;
      if (elapsed > job.capMs) {
        capped = true;
        break;
      }
      if (conn.closed) {
        codes['closed by the broker'] = (codes['closed by the broker'] ?? 0) + 1;
        if (reconnects-- <= 0) throw new Error(`the broker closed the attacker's connection after ${sent} messages`);
        conn = await rawConnect(job.conn);
        if (conn.code !== 0) throw new Error(`broker refused the attacker's login again (CONNACK ${conn.code})`);
      }
      const due = job.rate > 0 ? Math.min(job.count, Math.floor((elapsed / 1000) * job.rate) + 1) : job.count;
      const n = Math.min(due - sent, 500);
      if (n <= 0) {
        await sleep(5);
        continue;
      }
      const frames: Buffer[] = [];
      for (let k = 0; k < n; k++) {
        const m = make(sent + k);
        kinds[m.kind] = (kinds[m.kind] ?? 0) + 1;
        frames.push(publishFrame(m.topic, m.payload, m.retain ?? false));
      }
      // A broker that stops reading must not hold the job past its cap.
      const left = job.capMs - (performance.now() - start);
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([conn.write(Buffer.concat(frames)).then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, left))))]);
      clearTimeout(timer);
      sent += n;
      if (!drained) {
        capped = true;
        break;
      }
      if (job.rate === 0) await new Promise((r) => setImmediate(r));
    }
    // Everything written has left this process before the job reports done.
    await Promise.race([new Promise<void>((r) => (conn.socket.writableLength === 0 ? r() : conn.socket.once('drain', () => r()))), sleep(5000)]);
  } catch (err) {
    conn.close();
    throw err;
  }
  // A last close (the broker refusing the last message) counts too.
  await sleep(200);
  if (conn.closed && job.extra?.reconnects !== undefined) codes['closed by the broker'] = (codes['closed by the broker'] ?? 0) + 1;
  conn.close();
  return { id: job.id, sent, ms: Math.round(performance.now() - start), kinds, skippedValid: stats.skippedValid, capped, ...(Object.keys(codes).length ? { codes } : {}) };
}

/**
 * Logins: wrong passwords (guessing), or a given client id with given credentials held for a
 * moment (taking over the daemon's own connection). `concurrency` attempts are in flight at once.
 */
async function loginJob(job: Job): Promise<JobResult> {
  const rng = new Rng(job.seed);
  const codes: Record<string, number> = {};
  const start = performance.now();
  const concurrency = Number(job.extra?.concurrency ?? 8);
  const holdMs = Number(job.extra?.holdMs ?? 0);
  const ids = (job.extra?.clientIds as string[] | undefined) ?? [];
  let next = 0;
  let capped = false;
  const one = async (i: number) => {
    const spec: ConnectSpec = { ...job.conn, timeoutMs: 3000 };
    if (job.gen === 'login-guess') {
      spec.clientId = `guess-${i}`;
      spec.password = rng.pick(['password', '12345678', 'talkbridge', 'correct horse battery', rng.hex(rng.int(8, 40)), '']);
      if (rng.chance(0.1)) spec.username = rng.pick([job.conn.username ?? 'gw-fuzz', 'admin', 'root', 'x'.repeat(200)]);
    } else {
      spec.clientId = ids.length ? ids[i % ids.length]! : spec.clientId;
    }
    let conn: RawConnection | null = null;
    try {
      conn = await rawConnect(spec);
      codes[`connack ${conn.code}`] = (codes[`connack ${conn.code}`] ?? 0) + 1;
      if (conn.code === 0 && holdMs) await sleep(holdMs);
    } catch (err) {
      const k = /closed before CONNACK/.test((err as Error).message) ? 'closed by broker' : (err as Error).message.slice(0, 40);
      codes[k] = (codes[k] ?? 0) + 1;
    } finally {
      conn?.close();
    }
  };
  const workers = Array.from({ length: concurrency }, async () => {
    while (next < job.count) {
      if (performance.now() - start > job.capMs) {
        capped = true;
        return;
      }
      const i = next++;
      await one(i);
      if (job.rate > 0) await sleep((1000 * concurrency) / job.rate);
    }
  });
  await Promise.all(workers);
  return { id: job.id, sent: Math.min(next, job.count), ms: Math.round(performance.now() - start), kinds: { [job.gen]: next }, skippedValid: 0, capped, codes };
}

process.on('message', (job: Job) => {
  const run = job.gen === 'login-guess' || job.gen === 'take-client-id' ? loginJob(job) : publishJob(job);
  run.then(
    (r) => process.send!(r),
    (err: Error) => process.send!({ id: job.id, sent: 0, ms: 0, kinds: {}, skippedValid: 0, capped: false, error: err.message } satisfies JobResult),
  );
});
// The harness going away takes us with it.
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
