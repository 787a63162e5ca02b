/**
 * What the attackers send: a corpus of genuine material (real speech through the project's Opus
 * encoder, packed and sealed by the project's own packet and crypto code) and the mutations made
 * from it. Everything is drawn from a seeded generator, so a run can be repeated (--seed).
 *
 * On the clear channel a mutant that is still a valid packet (a flip that only changed the
 * speech bits, the sequence number or the stream id) is not sent: a valid packet there is just a
 * talker, not an attack. Every clear mutant sent is invalid by docs/protocol.md §2 — the header,
 * the framing, or an Opus frame that does not add up to the declared frame duration. On the
 * encrypted channel any changed byte fails authentication, so every mutant is sent.
 */
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { frameProblem } from '../../gateway/shared/codec/codec.js';
import { Codec, Flag, HEADER_BYTES, MAX_PACKET_BYTES, decodePacket, encodeHeader, encodePacket } from '../../gateway/shared/channel/packet.js';
import { type ChannelCrypto, createChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { FIXTURES } from '../helpers/cli.js';

// ---- randomness ---------------------------------------------------------------------------------

/** xoshiro128** on 32-bit words: fast, seedable, good enough to fuzz with. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = (seed * 2654435761) | 0 || 2;
    this.c = (seed ^ 0xdeadbeef) | 0 || 3;
    this.d = (seed * 1597334677) | 0 || 4;
    for (let i = 0; i < 20; i++) this.u32();
  }
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 4294967296) * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = this.u32();
      out[i] = v;
      out[i + 1] = v >>> 8;
      out[i + 2] = v >>> 16;
      out[i + 3] = v >>> 24;
    }
    for (; i < n; i++) out[i] = this.u32();
    return out;
  }
  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += (this.u32() & 15).toString(16);
    return s;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---- corpus -------------------------------------------------------------------------------------

export interface Corpus {
  /** 20 ms speech frames at 16 kHz (the channel default). */
  frames20: Uint8Array[];
  /** 60 ms frames of the same speech: valid Opus, the wrong duration for a 20 ms stream. */
  frames60: Uint8Array[];
  /** Valid clear packets of a few overs, two 20 ms frames each. */
  clear: Uint8Array[];
  /** Valid sealed packets of a few overs on the encrypted channel, by topic sender. */
  sealed: Array<{ sender: string; packet: Uint8Array }>;
}

export async function buildCorpus(o: { channel: string; key: string; senders: readonly string[]; seed: number }): Promise<Corpus> {
  const sp = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const enc20 = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const enc60 = await createEncoder({ sampleRate: 16000, frameMs: 60, bitrate: 16000, complexity: 5 });
  const frames20: Uint8Array[] = [];
  const frames60: Uint8Array[] = [];
  for (let i = 0; i + 320 <= sp.samples.length; i += 320) frames20.push(enc20.encode(sp.samples.subarray(i, i + 320)).slice());
  for (let i = 0; i + 960 <= sp.samples.length; i += 960) frames60.push(enc60.encode(sp.samples.subarray(i, i + 960)).slice());
  enc20.close();
  enc60.close();
  const rng = new Rng(o.seed ^ 0x5eed);
  const now = Date.now();
  const clear: Uint8Array[] = [];
  for (let over = 0; over < 4; over++) {
    const streamId = rng.hex(16);
    const n = Math.floor(frames20.length / 2);
    for (let seq = 0; seq < n; seq++) {
      const flags = (seq === 0 ? Flag.START : 0) | (seq === n - 1 ? Flag.END : 0);
      clear.push(encodePacket({ flags, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, keyEpoch: 0, streamId, seq, timestamp: now + seq * 40 }, [frames20[2 * seq]!, frames20[2 * seq + 1]!]));
    }
  }
  const crypto = (await createChannelCrypto({ channel: o.channel, keys: [o.key] })) as ChannelCrypto;
  const sealed: Corpus['sealed'] = [];
  for (const sender of o.senders.slice(0, 4)) {
    const streamId = rng.hex(16);
    const n = 60;
    for (let seq = 0; seq < n; seq++) {
      const flags = (seq === 0 ? Flag.START : 0) | (seq === n - 1 ? Flag.END : 0);
      const packet = await crypto.sealAudio(
        sender,
        { flags, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId, seq, timestamp: now + seq * 40 },
        [frames20[2 * seq]!, frames20[2 * seq + 1]!],
        now,
      );
      sealed.push({ sender, packet });
    }
  }
  return { frames20, frames60, clear, sealed };
}

// ---- audio mutations ----------------------------------------------------------------------------

const RATES_KHZ = [8, 12, 16, 24, 48];
const UNITS = [1, 2, 4, 8, 16, 24];

/** A header that passes every header check, with random fields. */
function randomHeader(rng: Rng, encrypted: boolean): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES);
  encodeHeader(
    {
      flags: (rng.int(0, 3) & (Flag.START | Flag.END)) | (encrypted ? Flag.ENCRYPTED : 0),
      codec: Codec.OPUS,
      sampleRate: rng.pick(RATES_KHZ) * 1000,
      frameMs: rng.pick(UNITS) * 2.5,
      frameCount: rng.int(1, 6),
      keyEpoch: encrypted ? rng.pick([0, 1, 2, 65535]) : 0,
      streamId: rng.hex(16),
      seq: rng.chance(0.5) ? rng.int(0, 20) : rng.u32(),
      timestamp: rng.chance(0.7) ? Date.now() + rng.int(-2000, 2000) : rng.int(0, 2 ** 31) * rng.int(1, 65535),
    },
    h,
  );
  return h;
}

/** Frames as the body encodes them: a 2-byte length before each. */
function framed(frames: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const f of frames) n += 2 + f.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const f of frames) {
    out[o] = f.length >> 8;
    out[o + 1] = f.length & 0xff;
    out.set(f, o + 2);
    o += 2 + f.length;
  }
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function flipBits(rng: Rng, p: Uint8Array, n: number): Uint8Array {
  const out = p.slice();
  for (let i = 0; i < n; i++) out[rng.int(0, out.length - 1)]! ^= 1 << rng.int(0, 7);
  return out;
}

/** An Opus frame that cannot be one 20 ms frame: 60 ms speech, a rewritten TOC, no data, a bad code 3. */
function badOpusFrame(rng: Rng, c: Corpus): Uint8Array {
  switch (rng.int(0, 4)) {
    case 0:
      return c.frames60[rng.int(0, c.frames60.length - 1)]!;
    case 1: {
      // A real frame whose TOC claims another duration (SILK 60 ms, CELT 2.5 ms, code 1 doubling it).
      const f = c.frames20[rng.int(0, c.frames20.length - 1)]!.slice();
      f[0] = rng.pick([(11 << 3) | (f[0]! & 7), (16 << 3) | (f[0]! & 7), (f[0]! & 0xfc) | 1]);
      return f;
    }
    case 2:
      return Uint8Array.of(rng.int(0, 255)); // a TOC alone: concealment, not audio
    case 3: {
      // Code 3 with a frame count of 0 or far too many.
      const f = c.frames20[rng.int(0, c.frames20.length - 1)]!.slice();
      f[0] = (f[0]! & 0xfc) | 3;
      f[1] = rng.pick([0, 48, 63]);
      return f;
    }
    default: {
      // Random bytes behind a TOC of the wrong duration.
      const f = rng.bytes(rng.int(2, 200));
      f[0] = ((rng.pick([10, 11, 16, 17, 18]) << 3) | (f[0]! & 7)) & 0xfc;
      return f;
    }
  }
}

/** Whether a clear packet is valid by docs/protocol.md §2 (header, framing, every frame's duration). */
export function validClear(p: Uint8Array): boolean {
  let pkt: ReturnType<typeof decodePacket>;
  try {
    pkt = decodePacket(p);
  } catch {
    return false;
  }
  if (pkt.flags & Flag.ENCRYPTED) return false;
  const samples = (pkt.sampleRate * pkt.frameMs) / 1000;
  return pkt.frames.every((f) => frameProblem(f, pkt.sampleRate, samples) === null);
}

export const CLEAR_KINDS = ['random', 'truncated', 'bitflip', 'oversized', 'garbage-opus', 'toc-mismatch', 'header-fields'] as const;
export type MutationKind = (typeof CLEAR_KINDS)[number];

/** One mutant for the clear channel (always invalid; see the file comment). */
export function mutateClear(rng: Rng, c: Corpus): { kind: MutationKind; payload: Uint8Array; skippedValid: number } {
  let skippedValid = 0;
  for (;;) {
    const kind = rng.pick(CLEAR_KINDS);
    const payload = clearMutant(rng, c, kind);
    if (!validClear(payload)) return { kind, payload, skippedValid };
    skippedValid++;
  }
}

function clearMutant(rng: Rng, c: Corpus, kind: MutationKind): Uint8Array {
  const base = c.clear[rng.int(0, c.clear.length - 1)]!;
  switch (kind) {
    case 'random':
      return rng.bytes(rng.chance(0.05) ? rng.int(0, 6000) : rng.int(0, 700));
    case 'truncated':
      return base.subarray(0, rng.int(0, base.length - 1)).slice();
    case 'bitflip':
      return flipBits(rng, base, rng.int(1, 8));
    case 'oversized': {
      const out = rng.bytes(rng.int(MAX_PACKET_BYTES + 1, 20000));
      out.set(base.subarray(0, HEADER_BYTES));
      return out;
    }
    case 'garbage-opus': {
      // Valid header and framing; frames that are not Opus of the declared duration.
      const h = randomHeader(rng, false);
      const n = h[5]!;
      const frames = Array.from({ length: n }, () => badOpusFrame(rng, c));
      if (rng.chance(0.3)) frames[rng.int(0, n - 1)] = rng.bytes(rng.int(1, 300)); // and raw noise
      return concat(h, framed(frames));
    }
    case 'toc-mismatch': {
      // A header that says 20 ms, 16 kHz, 2 frames: real 60 ms speech frames behind it.
      const p = base.slice();
      const f1 = c.frames60[rng.int(0, c.frames60.length - 1)]!;
      const f2 = rng.chance(0.5) ? c.frames60[rng.int(0, c.frames60.length - 1)]! : c.frames20[rng.int(0, c.frames20.length - 1)]!;
      return concat(p.subarray(0, HEADER_BYTES), framed([f1, f2]));
    }
    case 'header-fields': {
      // The header of a real packet with fields edited: the frames then no longer fit it.
      const p = base.slice();
      const v = new DataView(p.buffer);
      switch (rng.int(0, 5)) {
        case 0:
          p[5] = rng.int(0, 9); // frame count
          break;
        case 1:
          p[4] = rng.pick([1, 2, 4, 16, 24, 3, 0, 255]); // frame duration
          break;
        case 2:
          p[3] = rng.pick([8, 12, 24, 48, 0, 44, 255]); // sample rate
          break;
        case 3:
          p[1] = rng.int(0, 255); // flags
          break;
        case 4:
          p[0] = rng.pick([0, 2, 255]); // version
          break;
        default:
          v.setUint16(6, rng.int(1, 65535)); // a key epoch on a clear packet, and frames cut short
          return p.subarray(0, rng.int(HEADER_BYTES, p.length - 1)).slice();
      }
      return p;
    }
  }
}

export const ENC_KINDS = ['random', 'truncated', 'bitflip', 'oversized', 'header-fields', 'epoch', 'clear-on-encrypted', 'forged'] as const;

/**
 * One mutant of a sealed packet, and the topic sender it goes out under. Never the packet itself:
 * an unchanged sealed packet of an over the daemon never heard is a valid over (the residual replay
 * window of docs/security.md), which the hostile-broker attacks test on purpose, not this one.
 */
export function mutateEnc(rng: Rng, c: Corpus): { kind: (typeof ENC_KINDS)[number]; sender: string; payload: Uint8Array } {
  for (;;) {
    const base = c.sealed[rng.int(0, c.sealed.length - 1)]!;
    const m = encMutant(rng, c, base);
    const p = base.packet;
    if (m.payload.length !== p.length || m.payload.some((b, i) => b !== p[i])) return m;
  }
}

function encMutant(rng: Rng, c: Corpus, base: Corpus['sealed'][number]): { kind: (typeof ENC_KINDS)[number]; sender: string; payload: Uint8Array } {
  const kind = rng.pick(ENC_KINDS);
  const sender = base.sender;
  const p = base.packet;
  switch (kind) {
    case 'random':
      return { kind, sender, payload: rng.bytes(rng.int(0, 700)) };
    case 'truncated':
      return { kind, sender, payload: p.subarray(0, rng.int(0, p.length - 1)).slice() };
    case 'bitflip':
      return { kind, sender, payload: flipBits(rng, p, rng.int(1, 8)) };
    case 'oversized': {
      const out = rng.bytes(rng.int(MAX_PACKET_BYTES + 1, 20000));
      out.set(p.subarray(0, HEADER_BYTES));
      return { kind, sender, payload: out };
    }
    case 'header-fields': {
      const q = p.slice();
      const at = rng.pick([1, 3, 4, 5, 8, 12, 16, 19, 20, 25]);
      q[at] = q[at]! ^ (1 << rng.int(0, 7));
      return { kind, sender, payload: q };
    }
    case 'epoch': {
      const q = p.slice();
      new DataView(q.buffer).setUint16(6, rng.pick([0, 2, 3, 65535, rng.int(0, 65535)]));
      if (q[6] === p[6] && q[7] === p[7]) q[7] = q[7]! ^ 1;
      return { kind, sender, payload: q };
    }
    case 'clear-on-encrypted': {
      const q = c.clear[rng.int(0, c.clear.length - 1)]!;
      return { kind, sender, payload: q };
    }
    case 'forged': {
      // A well-formed envelope nobody sealed: header of a real packet, random ciphertext and tag.
      const body = rng.bytes(rng.int(20, 200));
      return { kind, sender, payload: concat(p.subarray(0, HEADER_BYTES), body) };
    }
  }
}

// ---- control and presence -----------------------------------------------------------------------

const enc = new TextEncoder();

/** Malformed control: not JSON, wrong types, huge strings, unknown versions, bad envelopes. */
export function controlGarbage(rng: Rng, encrypted: boolean): Uint8Array {
  const stream = rng.hex(16);
  const now = Date.now();
  const choices: Array<() => Uint8Array | string> = [
    () => rng.bytes(rng.int(0, 400)),
    () => '{"v":1,"type":"start"',
    () => JSON.stringify({ v: 1, type: 'start', stream, t: now, name: 'x', source: 'cli', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 }).slice(0, rng.int(1, 120)),
    () => JSON.stringify({ v: 1, type: 'start', stream: rng.int(0, 1e9), t: String(now), name: 7, source: 'radio', priority: -1, sampleRate: 44100, frameMs: 21, framesPerPacket: 9 }),
    () => JSON.stringify({ v: 1, type: 'start', stream, t: now, name: 'x'.repeat(rng.int(65, 1900)), source: 'web', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 }),
    () => JSON.stringify({ v: 1, type: 'start', stream, t: 1e300, name: 'n', source: 'cli', priority: 1.5, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 }),
    () => JSON.stringify({ v: 1, type: 'start', stream: stream.toUpperCase(), t: now, name: 'n', source: 'alien', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 0 }),
    () => JSON.stringify({ v: 1, type: 'end', stream, reason: 'because', packets: -5 }),
    () => JSON.stringify({ v: 1, type: 'end', stream, reason: 'done', packets: '12' }),
    () => JSON.stringify({ v: 2, type: 'start', stream, t: now }),
    () => JSON.stringify({ v: '1', type: 'notice', code: 'timeout', text: 'x' }),
    () => JSON.stringify({ v: 1, type: 'notice', code: 'X'.repeat(40), text: 'y'.repeat(300) }),
    () => JSON.stringify({ v: 1, type: 'explode', stream }),
    () => `{"v":1,"__proto__":{"type":"start"},"constructor":{"prototype":{"x":1}},"stream":"${stream}"}`,
    () => '['.repeat(rng.int(100, 1000)) + ']'.repeat(rng.int(0, 1000)),
    () => JSON.stringify([1, 2, 3]),
    () => rng.pick(['null', 'true', '0', '""', '1e999', '-', '{}', '{"v":1}']),
    () => '{"v":1,"type":"start","name":"' + 'é'.repeat(rng.int(10, 900)) + '"}',
    () => Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d), // invalid UTF-8
    () => 'x'.repeat(rng.pick([2049, 65536, 262144])), // huge
  ];
  if (encrypted) {
    choices.push(
      () => concat(Uint8Array.of(0xe1, 0, 1), rng.bytes(rng.int(0, 120))), // an envelope nobody sealed
      () => concat(Uint8Array.of(0xe1, rng.int(0, 255), rng.int(0, 255)), rng.bytes(rng.int(30, 300))), // any epoch
      () => Uint8Array.of(0xe1),
    );
  }
  const v = rng.pick(choices)();
  return typeof v === 'string' ? enc.encode(v) : v;
}

/** Malformed presence (the same families, with presence's fields). */
export function presenceGarbage(rng: Rng, encrypted: boolean): Uint8Array {
  const now = Date.now();
  const choices: Array<() => Uint8Array | string> = [
    () => rng.bytes(rng.int(1, 400)),
    () => JSON.stringify({ v: 1, name: 5, source: 'radio', since: now, software: 'x' }),
    () => JSON.stringify({ v: 1, name: 'n'.repeat(rng.int(65, 1900)), source: 'radio', since: now, software: 'x' }),
    () => JSON.stringify({ v: 1, name: 'n', source: 'radio', since: -1, software: 's'.repeat(100) }),
    () => JSON.stringify({ v: 9, name: 'n', source: 'cli', since: now, software: 'x' }),
    () => JSON.stringify({ v: 1, name: 'n', source: 'pigeon', since: 'yesterday', software: null }),
    () => '{"v":1,"name":"' + 'ü'.repeat(rng.int(1, 800)),
    () => 'x'.repeat(rng.pick([2049, 65536])),
    () => '['.repeat(500),
  ];
  if (encrypted) choices.push(() => concat(Uint8Array.of(0xe1, 0, 1), rng.bytes(rng.int(0, 200))));
  const v = rng.pick(choices)();
  return typeof v === 'string' ? enc.encode(v) : v;
}
