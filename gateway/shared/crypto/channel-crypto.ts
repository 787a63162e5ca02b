/**
 * End-to-end encryption of one talk channel ("talkbridge AEAD v1", docs/security.md). Isomorphic:
 * WebCrypto only, so the gateway (Node's globalThis.crypto) and the browser run this same code and
 * interoperate by construction.
 *
 * Audio packets: the 26-byte clear header is the associated data; the body is AES-256-GCM under a key
 * derived per over with HKDF-SHA256(channel key, salt = stream id, info = label ‖ channel ‖ sender), and
 * the nonce is the packet's sequence number. A sender draws a fresh random stream id for every over,
 * so a (key, nonce) pair never repeats — across restarts too — without any stored counter.
 * Plaintext: a 4-byte tag of the sender id (the identity inside the envelope) then the clear body.
 *
 * Control and presence messages: an envelope [0xE1][epoch u16][random 96-bit nonce][ciphertext] under a
 * per-channel message key; plaintext [sender length][sender][send time u48][the clear JSON].
 */
import {
  type AudioPacket,
  HEADER_BYTES,
  type PacketHeader,
  encodeFrames,
  encodeHeader,
  decodeFrames,
  PacketError,
  Flag,
  MAX_PACKET_BYTES,
  MAX_OPUS_FRAME_BYTES,
  streamIdToBytes,
} from '../channel/packet.js';
import { type ChannelKey, KeyError, keyFromPassphrase, parseKey, webcrypto } from './keys.js';
import { ReplayGuard } from './replay.js';
import { DerivationBudget, remember } from './budget.js';
import { EpochPolicy } from './epochs.js';
import { ENVELOPE_V1, type Opened, type Refusal, type Sealer } from '../channel/sealer.js';
const ENVELOPE_HEAD = 15;
const TAG_BYTES = 16;
const SENDER_TAG_BYTES = 4;
/** Smallest sealed message: a 1-byte sender id and the send time, no JSON. */
const MIN_MESSAGE_BYTES = ENVELOPE_HEAD + 1 + 1 + 6 + TAG_BYTES;
/**
 * Largest sealed control or presence message accepted. The clear JSON is at most 2048 bytes
 * (MAX_JSON, channel/control.ts) and the sender id at most 255 (its length is one byte; topics allow
 * 64), so a legitimate envelope is at most 15 + 1 + 255 + 6 + 2048 + 16 = 2341 bytes; 4 KiB leaves
 * room to grow without a protocol change and refuses everything bigger before any WebCrypto work.
 */
export const MAX_SEALED_MESSAGE_BYTES = 4096;
const AUDIO_LABEL = 'talkbridge/v1 audio';
const MESSAGE_LABEL = 'talkbridge/v1 message';

export { DERIVATION_BUDGET } from './budget.js';

export const CRYPTO_DEFAULTS = {
  /** Captures further than this from our clock are refused as stale; 0 switches the check off. */
  maxSkewMs: 300_000,
  /** After a newer key epoch is first seen in use, the older ones stay valid this long. */
  overlapMs: 600_000,
};

/** Keys of overs with an accepted packet: a receiver hears one over at a time, plus stragglers. */
const MAX_STREAM_KEYS = 64;
/** Keys derived but not (yet) proven by an accepted packet: garbage churns only these. */
const MAX_CANDIDATE_KEYS = 16;

export interface CryptoOptions {
  channel: string;
  /** Every key this participant holds; the highest epoch is used for sending. */
  keys: readonly ChannelKey[];
  maxSkewMs?: number;
  overlapMs?: number;
}

const enc = new TextEncoder();

export class ChannelCrypto implements Sealer {
  readonly sendEpoch: number;
  readonly replay: ReplayGuard;
  private readonly roots = new Map<number, Promise<CryptoKey>>();
  /** Keys of overs that had a packet accepted (or that we send): only key holders add to it. */
  private readonly streamKeys = new Map<string, Promise<CryptoKey>>();
  /** Keys derived for packets not yet accepted, so that garbage repeating one stream id costs one derivation. */
  private readonly candidateKeys = new Map<string, Promise<CryptoKey>>();
  private readonly budget = new DerivationBudget();
  private readonly epochPolicy: EpochPolicy;
  /** Counters for metrics and tests: per-over key derivations made, and refused for budget. */
  readonly stats = { derivations: 0, budgetRefused: 0 };
  private readonly messageKeys = new Map<number, Promise<CryptoKey>>();
  private readonly senderTags = new Map<string, Promise<Uint8Array>>();

  constructor(private readonly o: CryptoOptions) {
    if (!o.keys.length) throw new KeyError('an encrypted channel needs at least one key');
    const raw = new Map<number, Uint8Array>();
    for (const k of o.keys) {
      if (raw.has(k.epoch)) throw new KeyError(`two keys for epoch ${k.epoch} on channel ${o.channel}`);
      raw.set(k.epoch, k.raw);
    }
    this.sendEpoch = Math.max(...raw.keys());
    for (const [epoch, r] of raw) this.roots.set(epoch, webcrypto().importKey('raw', r as BufferSource, 'HKDF', false, ['deriveKey']));
    this.epochPolicy = new EpochPolicy(new Set(raw.keys()), this.sendEpoch, o.overlapMs ?? CRYPTO_DEFAULTS.overlapMs, (epoch, since) => this.onEpochInUse?.(epoch, since));
    this.replay = new ReplayGuard({ maxSkewMs: o.maxSkewMs ?? CRYPTO_DEFAULTS.maxSkewMs });
  }

  /** Whether input from `sender` has been accepted before (bounded memory). */
  isTrusted(sender: string): boolean {
    return this.budget.isTrusted(sender);
  }

  /**
   * Called when the newest epoch in use advances (authenticated input, or our own sending), so that
   * it can be saved at once rather than at the next periodic save. One listener: keepReplayState.
   */
  onEpochInUse: ((epoch: number, since: number) => void) | null = null;

  /** EpochPolicy.inUse: kept across restarts with the replay state. */
  epochInUse(): { epoch: number; since: number } | null {
    return this.epochPolicy.inUse();
  }

  /** EpochPolicy.restore. */
  restoreEpochInUse(saved: unknown, now: number): boolean {
    return this.epochPolicy.restore(saved, now);
  }

  get channel(): string {
    return this.o.channel;
  }

  /** Epochs this participant can read. */
  get epochs(): number[] {
    return [...this.roots.keys()].sort((a, b) => a - b);
  }

  // ---- keys -----------------------------------------------------------------------------------

  private derive(epoch: number, salt: Uint8Array, info: string): Promise<CryptoKey> {
    const root = this.roots.get(epoch)!;
    return root.then((r) =>
      webcrypto().deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: salt as BufferSource, info: enc.encode(info) as BufferSource }, r, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']),
    );
  }

  private streamId(epoch: number, stream: string, sender: string): string {
    return `${epoch}/${stream}/${sender}`;
  }

  private deriveStreamKey(epoch: number, stream: string, sender: string): Promise<CryptoKey> {
    this.stats.derivations++;
    const salt = new Uint8Array(8);
    streamIdToBytes(stream, salt, 0);
    return this.derive(epoch, salt, `${AUDIO_LABEL}\0${this.o.channel}\0${sender}`);
  }

  /** The key of an over we send (ours, so it is kept like one that authenticated). */
  private streamKey(epoch: number, stream: string, sender: string): Promise<CryptoKey> {
    const id = this.streamId(epoch, stream, sender);
    let k = this.streamKeys.get(id);
    if (!k) {
      k = this.deriveStreamKey(epoch, stream, sender);
      remember(this.streamKeys, id, k, MAX_STREAM_KEYS);
    }
    return k;
  }

  private messageKey(epoch: number): Promise<CryptoKey> {
    let k = this.messageKeys.get(epoch);
    if (!k) {
      k = this.derive(epoch, new Uint8Array(0), `${MESSAGE_LABEL}\0${this.o.channel}`);
      this.messageKeys.set(epoch, k);
    }
    return k;
  }

  private senderTag(sender: string): Promise<Uint8Array> {
    let t = this.senderTags.get(sender);
    if (!t) {
      t = webcrypto()
        .digest('SHA-256', enc.encode(sender))
        .then((d) => new Uint8Array(d, 0, SENDER_TAG_BYTES));
      this.senderTags.set(sender, t);
      if (this.senderTags.size > 1024) this.senderTags.delete(this.senderTags.keys().next().value as string);
    }
    return t;
  }

  // ---- audio ----------------------------------------------------------------------------------

  /** Builds an encrypted packet; `header.keyEpoch` and the ENCRYPTED flag are set here. */
  async sealAudio(sender: string, header: Omit<PacketHeader, 'version' | 'frameCount' | 'keyEpoch'>, frames: readonly Uint8Array[], now = Date.now()): Promise<Uint8Array> {
    const body = encodeFrames(frames);
    const epoch = this.sendEpoch;
    this.epochPolicy.saw(epoch, now);
    const out = new Uint8Array(HEADER_BYTES + SENDER_TAG_BYTES + body.length + TAG_BYTES);
    if (out.length > MAX_PACKET_BYTES) throw new PacketError('oversize', `packet of ${out.length} bytes exceeds ${MAX_PACKET_BYTES}`);
    encodeHeader({ ...header, flags: header.flags | Flag.ENCRYPTED, keyEpoch: epoch, frameCount: frames.length }, out);
    const plain = new Uint8Array(SENDER_TAG_BYTES + body.length);
    plain.set(await this.senderTag(sender), 0);
    plain.set(body, SENDER_TAG_BYTES);
    const key = await this.streamKey(epoch, header.streamId, sender);
    const ct = await webcrypto().encrypt({ name: 'AES-GCM', iv: audioNonce(header.seq) as BufferSource, additionalData: out.subarray(0, HEADER_BYTES) as BufferSource }, key, plain as BufferSource);
    out.set(new Uint8Array(ct), HEADER_BYTES);
    return out;
  }

  /**
   * The checks on an audio packet that need no WebCrypto: synchronous, allocation-free unless it
   * refuses, and free of side effects — for the caller to run on arrival, before queueing the packet
   * for openAudio (which runs it again, since the epoch may retire while the packet waits). `p` is
   * the packet as decodePacket parsed it (so the header is valid and it fits MAX_PACKET_BYTES).
   * Refuses: no ENCRYPTED flag (`unencrypted`); a body too short for the sender tag, the frames'
   * length prefixes and a byte per frame, and the AEAD tag (`envelope`); longer than its frames
   * could be (`oversize`); an epoch we hold no key for (`unknown-epoch`) or one retired
   * (`old-epoch`). The derivation budget is not checked here: it depends on the input queued
   * before this packet (an authenticated START exempts its over), so openAudio applies it.
   */
  precheckAudio(p: AudioPacket, now: number): Refusal | null {
    if (!(p.flags & Flag.ENCRYPTED)) return { reason: 'unencrypted', detail: 'clear audio on an encrypted channel' };
    const n = p.body.length;
    if (n < SENDER_TAG_BYTES + 3 * p.frameCount + TAG_BYTES) return { reason: 'envelope', detail: `encrypted body of ${n} bytes cannot hold ${p.frameCount} frames` };
    if (n > Math.min(MAX_PACKET_BYTES - HEADER_BYTES, SENDER_TAG_BYTES + p.frameCount * (2 + MAX_OPUS_FRAME_BYTES) + TAG_BYTES)) {
      return { reason: 'oversize', detail: `encrypted body of ${n} bytes is longer than ${p.frameCount} frames can be` };
    }
    return this.epochPolicy.problem(p.keyEpoch, now);
  }

  /**
   * Authenticates and decrypts a packet whose header already parsed; returns its frames, or why it
   * was refused. `now` is our wall clock. Runs precheckAudio first; a new over's key costs
   * derivation budget (`budget` when there is none, see DERIVATION_BUDGET).
   */
  async openAudio(sender: string, p: AudioPacket, now = Date.now()): Promise<Opened<Uint8Array[]>> {
    const bad = this.precheckAudio(p, now);
    if (bad) return { ok: false, ...bad };
    const id = this.streamId(p.keyEpoch, p.streamId, sender);
    let key = this.streamKeys.get(id);
    const known = key !== undefined;
    if (!key) key = this.candidateKeys.get(id);
    if (!key) {
      if (!this.budget.admit(sender, this.replay.announced(sender, p.streamId), now)) {
        this.stats.budgetRefused++;
        return { ok: false, reason: 'budget', detail: `too many new overs from ${sender} (or from unknown senders)` };
      }
      key = this.deriveStreamKey(p.keyEpoch, p.streamId, sender);
      remember(this.candidateKeys, id, key, MAX_CANDIDATE_KEYS);
    }
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(await webcrypto().decrypt({ name: 'AES-GCM', iv: audioNonce(p.seq) as BufferSource, additionalData: p.headerBytes as BufferSource }, await key, p.body as BufferSource));
    } catch {
      return { ok: false, reason: 'auth', detail: `packet ${p.streamId}/${p.seq} from ${sender} failed authentication (wrong key, or altered)` };
    }
    const tag = await this.senderTag(sender);
    for (let i = 0; i < SENDER_TAG_BYTES; i++) if (plain[i] !== tag[i]) return { ok: false, reason: 'sender-mismatch', detail: `packet on ${sender}'s topic was sent by someone else` };
    let frames: Uint8Array[];
    try {
      frames = decodeFrames(plain.subarray(SENDER_TAG_BYTES), p.frameCount);
    } catch (err) {
      return { ok: false, reason: 'envelope', detail: (err as Error).message };
    }
    const start = p.timestamp - Math.round(p.seq * p.frameMs * p.frameCount);
    const r = this.replay.packet(sender, p.streamId, start, p.seq, p.timestamp, now);
    if (r === 'stale') return { ok: false, reason: r, detail: `${sender}'s audio was captured ${((now - p.timestamp) / 1000).toFixed(0)} s from our clock: is one clock wrong?` };
    if (r) return { ok: false, reason: r, detail: `${p.streamId}/${p.seq} from ${sender}` };
    // Accepted: only now is the key kept (replayed or forged packets never churn the cache).
    if (!known) {
      this.candidateKeys.delete(id);
      remember(this.streamKeys, id, key, MAX_STREAM_KEYS);
    }
    this.budget.trust(sender);
    this.epochPolicy.saw(p.keyEpoch, now);
    return { ok: true, value: frames };
  }

  // ---- control and presence -------------------------------------------------------------------

  async sealMessage(kind: 'control' | 'presence', sender: string, json: Uint8Array, now = Date.now()): Promise<Uint8Array> {
    const epoch = this.sendEpoch;
    const s = enc.encode(sender);
    const plain = new Uint8Array(1 + s.length + 6 + json.length);
    plain[0] = s.length;
    plain.set(s, 1);
    writeU48(plain, 1 + s.length, now);
    plain.set(json, 1 + s.length + 6);
    const out = new Uint8Array(ENVELOPE_HEAD + plain.length + TAG_BYTES);
    if (s.length > 255 || out.length > MAX_SEALED_MESSAGE_BYTES) throw new PacketError('oversize', `${kind} of ${out.length} bytes (sender id ${s.length}) exceeds ${MAX_SEALED_MESSAGE_BYTES}`);
    this.epochPolicy.saw(epoch, now);
    out[0] = ENVELOPE_V1;
    out[1] = epoch >> 8;
    out[2] = epoch & 0xff;
    out.set(globalThis.crypto.getRandomValues(new Uint8Array(12)), 3);
    const ct = await webcrypto().encrypt(
      { name: 'AES-GCM', iv: out.subarray(3, 15) as BufferSource, additionalData: messageAad(out, kind, this.o.channel) as BufferSource },
      await this.messageKey(epoch),
      plain as BufferSource,
    );
    out.set(new Uint8Array(ct), ENVELOPE_HEAD);
    return out;
  }

  /**
   * The checks on a control or presence envelope that need no WebCrypto, like precheckAudio
   * (synchronous, no side effects, for the caller to run before queueing; openMessage runs it
   * again). Refuses: anything but a v1 envelope (`unencrypted`), shorter than the smallest one
   * (`envelope`), longer than MAX_SEALED_MESSAGE_BYTES (`oversize`), and unknown or retired epochs.
   * An empty presence passes: it is how a Last Will clears presence, and carries nothing to open.
   */
  precheckMessage(kind: 'control' | 'presence', payload: Uint8Array, now: number): Refusal | null {
    const n = payload.length;
    if (n === 0 && kind === 'presence') return null;
    if (n === 0 || payload[0] !== ENVELOPE_V1) return { reason: 'unencrypted', detail: `clear ${kind} on an encrypted channel` };
    if (n < MIN_MESSAGE_BYTES) return { reason: 'envelope', detail: `${kind} envelope of ${n} bytes` };
    if (n > MAX_SEALED_MESSAGE_BYTES) return { reason: 'oversize', detail: `${kind} envelope of ${n} bytes exceeds ${MAX_SEALED_MESSAGE_BYTES}` };
    return this.epochPolicy.problem((payload[1]! << 8) | payload[2]!, now);
  }

  /**
   * Opens a control or presence envelope and returns the clear JSON bytes. Control messages are
   * checked for replay; presence is retained by the broker and legitimately re-delivered, so it is not.
   */
  async openMessage(kind: 'control' | 'presence', sender: string, payload: Uint8Array, now = Date.now()): Promise<Opened<Uint8Array>> {
    if (payload.length === 0) return { ok: false, reason: 'unencrypted', detail: `clear ${kind} on an encrypted channel` };
    const bad = this.precheckMessage(kind, payload, now);
    if (bad) return { ok: false, ...bad };
    const epoch = (payload[1]! << 8) | payload[2]!;
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(
        await webcrypto().decrypt(
          { name: 'AES-GCM', iv: payload.subarray(3, 15) as BufferSource, additionalData: messageAad(payload, kind, this.o.channel) as BufferSource },
          await this.messageKey(epoch),
          payload.subarray(ENVELOPE_HEAD) as BufferSource,
        ),
      );
    } catch {
      return { ok: false, reason: 'auth', detail: `${kind} from ${sender} failed authentication (wrong key, or altered)` };
    }
    const n = plain[0]!;
    if (1 + n + 6 > plain.length) return { ok: false, reason: 'envelope', detail: `${kind} plaintext too short` };
    const inner = new TextDecoder().decode(plain.subarray(1, 1 + n));
    if (inner !== sender) return { ok: false, reason: 'sender-mismatch', detail: `${kind} on ${sender}'s topic was sent by ${inner}` };
    if (kind === 'control') {
      const r = this.replay.control(sender, hex(payload.subarray(3, 15)), readU48(plain, 1 + n), now);
      if (r) return { ok: false, reason: r, detail: `${kind} from ${sender}` };
    }
    this.budget.trust(sender);
    this.epochPolicy.saw(epoch, now);
    return { ok: true, value: plain.subarray(1 + n + 6) };
  }
}

/** Adds to a bounded map, dropping the oldest entry when full. */
function audioNonce(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(8, seq);
  return n;
}

function messageAad(envelope: Uint8Array, kind: string, channel: string): Uint8Array {
  const label = enc.encode(`${MESSAGE_LABEL}\0${kind}\0${channel}`);
  const aad = new Uint8Array(ENVELOPE_HEAD + label.length);
  aad.set(envelope.subarray(0, ENVELOPE_HEAD), 0);
  aad.set(label, ENVELOPE_HEAD);
  return aad;
}

function writeU48(b: Uint8Array, o: number, v: number): void {
  const hi = Math.floor(v / 2 ** 32);
  const lo = v % 2 ** 32;
  new DataView(b.buffer, b.byteOffset).setUint16(o, hi);
  new DataView(b.buffer, b.byteOffset).setUint32(o + 2, lo);
}

function readU48(b: Uint8Array, o: number): number {
  const v = new DataView(b.buffer, b.byteOffset);
  return v.getUint16(o) * 2 ** 32 + v.getUint32(o + 2);
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** Keys as configuration and invites carry them: key texts and/or a passphrase. */
export interface KeyMaterial {
  channel: string;
  /** `<epoch>.<base64url>` texts. */
  keys?: readonly string[];
  passphrase?: string | null;
  /** Epoch of the passphrase-derived key. */
  epoch?: number;
  maxSkewMs?: number;
  overlapMs?: number;
}

/** The channel's crypto, or null when it has no key (a clear channel). Passphrases take a moment (PBKDF2). */
export async function createChannelCrypto(m: KeyMaterial): Promise<ChannelCrypto | null> {
  const keys = (m.keys ?? []).map(parseKey);
  if (m.passphrase) keys.unshift(await keyFromPassphrase(m.channel, m.passphrase, m.epoch ?? 1));
  if (!keys.length) return null;
  return new ChannelCrypto({ channel: m.channel, keys, maxSkewMs: m.maxSkewMs, overlapMs: m.overlapMs });
}
