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
import { type AudioPacket, HEADER_BYTES, type PacketHeader, encodeFrames, encodeHeader, decodeFrames, PacketError, Flag, MAX_PACKET_BYTES, streamIdToBytes } from '../channel/packet.js';
import { type ChannelKey, KeyError, keyFromPassphrase, parseKey, webcrypto } from './keys.js';
import { ReplayGuard } from './replay.js';

export const ENVELOPE_V1 = 0xe1;
const ENVELOPE_HEAD = 15;
const TAG_BYTES = 16;
const SENDER_TAG_BYTES = 4;
const AUDIO_LABEL = 'talkbridge/v1 audio';
const MESSAGE_LABEL = 'talkbridge/v1 message';

export const CRYPTO_DEFAULTS = {
  /** Captures further than this from our clock are refused as stale; 0 switches the check off. */
  maxSkewMs: 300_000,
  /** After a newer key epoch is first seen in use, the older ones stay valid this long. */
  overlapMs: 600_000,
};

export interface CryptoOptions {
  channel: string;
  /** Every key this participant holds; the highest epoch is used for sending. */
  keys: readonly ChannelKey[];
  maxSkewMs?: number;
  overlapMs?: number;
}

/** Why authenticated input was refused; counted by reason like any malformed input. */
export type CryptoDrop = 'unencrypted' | 'unknown-epoch' | 'old-epoch' | 'auth' | 'sender-mismatch' | 'replay' | 'stale' | 'envelope';

export type Opened<T> = { ok: true; value: T } | { ok: false; reason: CryptoDrop; detail: string };

const enc = new TextEncoder();

export class ChannelCrypto {
  readonly sendEpoch: number;
  readonly replay: ReplayGuard;
  private readonly roots = new Map<number, Promise<CryptoKey>>();
  private readonly streamKeys = new Map<string, Promise<CryptoKey>>();
  private readonly messageKeys = new Map<number, Promise<CryptoKey>>();
  private readonly senderTags = new Map<string, Promise<Uint8Array>>();
  private readonly overlapMs: number;
  /** Newest epoch seen in authenticated use, and when it was first seen. */
  private newest = -1;
  private newestAt = 0;

  constructor(private readonly o: CryptoOptions) {
    if (!o.keys.length) throw new KeyError('an encrypted channel needs at least one key');
    const raw = new Map<number, Uint8Array>();
    for (const k of o.keys) {
      if (raw.has(k.epoch)) throw new KeyError(`two keys for epoch ${k.epoch} on channel ${o.channel}`);
      raw.set(k.epoch, k.raw);
    }
    this.sendEpoch = Math.max(...raw.keys());
    for (const [epoch, r] of raw) this.roots.set(epoch, webcrypto().importKey('raw', r as BufferSource, 'HKDF', false, ['deriveKey']));
    this.overlapMs = o.overlapMs ?? CRYPTO_DEFAULTS.overlapMs;
    this.replay = new ReplayGuard({ maxSkewMs: o.maxSkewMs ?? CRYPTO_DEFAULTS.maxSkewMs });
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

  private streamKey(epoch: number, stream: string, sender: string): Promise<CryptoKey> {
    const id = `${epoch}/${stream}/${sender}`;
    let k = this.streamKeys.get(id);
    if (!k) {
      const salt = new Uint8Array(8);
      streamIdToBytes(stream, salt, 0);
      k = this.derive(epoch, salt, `${AUDIO_LABEL}\0${this.o.channel}\0${sender}`);
      this.streamKeys.set(id, k);
      // A few overs' keys: a receiver hears one over at a time, plus stragglers of the last.
      if (this.streamKeys.size > 64) this.streamKeys.delete(this.streamKeys.keys().next().value as string);
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
      t = webcrypto().digest('SHA-256', enc.encode(sender)).then((d) => new Uint8Array(d, 0, SENDER_TAG_BYTES));
      this.senderTags.set(sender, t);
      if (this.senderTags.size > 1024) this.senderTags.delete(this.senderTags.keys().next().value as string);
    }
    return t;
  }

  /** Epoch policy: unknown epochs are unreadable; older ones expire overlapMs after a newer one is in use. */
  private epochProblem(epoch: number, now: number): Opened<never> | null {
    if (!this.roots.has(epoch)) return { ok: false, reason: 'unknown-epoch', detail: `no key for epoch ${epoch}` };
    if (epoch < this.newest && now - this.newestAt > this.overlapMs) return { ok: false, reason: 'old-epoch', detail: `epoch ${epoch} retired (epoch ${this.newest} in use)` };
    return null;
  }

  private sawEpoch(epoch: number, now: number): void {
    if (epoch > this.newest) {
      this.newest = epoch;
      this.newestAt = now;
    }
  }

  // ---- audio ----------------------------------------------------------------------------------

  /** Builds an encrypted packet; `header.keyEpoch` and the ENCRYPTED flag are set here. */
  async sealAudio(sender: string, header: Omit<PacketHeader, 'version' | 'frameCount' | 'keyEpoch'>, frames: readonly Uint8Array[], now = Date.now()): Promise<Uint8Array> {
    const body = encodeFrames(frames);
    const epoch = this.sendEpoch;
    this.sawEpoch(epoch, now);
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
   * Authenticates and decrypts a packet whose header already parsed; returns its frames, or why it
   * was refused. `now` is our wall clock.
   */
  async openAudio(sender: string, p: AudioPacket, now = Date.now()): Promise<Opened<Uint8Array[]>> {
    if (!(p.flags & Flag.ENCRYPTED)) return { ok: false, reason: 'unencrypted', detail: 'clear audio on an encrypted channel' };
    const bad = this.epochProblem(p.keyEpoch, now);
    if (bad) return bad;
    if (p.body.length < SENDER_TAG_BYTES + TAG_BYTES) return { ok: false, reason: 'auth', detail: 'body shorter than the tag' };
    let plain: Uint8Array;
    try {
      const key = await this.streamKey(p.keyEpoch, p.streamId, sender);
      plain = new Uint8Array(await webcrypto().decrypt({ name: 'AES-GCM', iv: audioNonce(p.seq) as BufferSource, additionalData: p.headerBytes as BufferSource }, key, p.body as BufferSource));
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
    this.sawEpoch(p.keyEpoch, now);
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
    out[0] = ENVELOPE_V1;
    out[1] = epoch >> 8;
    out[2] = epoch & 0xff;
    out.set(globalThis.crypto.getRandomValues(new Uint8Array(12)), 3);
    const ct = await webcrypto().encrypt({ name: 'AES-GCM', iv: out.subarray(3, 15) as BufferSource, additionalData: messageAad(out, kind, this.o.channel) as BufferSource }, await this.messageKey(epoch), plain as BufferSource);
    out.set(new Uint8Array(ct), ENVELOPE_HEAD);
    return out;
  }

  /**
   * Opens a control or presence envelope and returns the clear JSON bytes. Control messages are
   * checked for replay; presence is retained by the broker and legitimately re-delivered, so it is not.
   */
  async openMessage(kind: 'control' | 'presence', sender: string, payload: Uint8Array, now = Date.now()): Promise<Opened<Uint8Array>> {
    if (payload.length === 0 || payload[0] !== ENVELOPE_V1) return { ok: false, reason: 'unencrypted', detail: `clear ${kind} on an encrypted channel` };
    if (payload.length < ENVELOPE_HEAD + TAG_BYTES + 8) return { ok: false, reason: 'envelope', detail: `${kind} envelope of ${payload.length} bytes` };
    const epoch = (payload[1]! << 8) | payload[2]!;
    const bad = this.epochProblem(epoch, now);
    if (bad) return bad;
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(
        await webcrypto().decrypt({ name: 'AES-GCM', iv: payload.subarray(3, 15) as BufferSource, additionalData: messageAad(payload, kind, this.o.channel) as BufferSource }, await this.messageKey(epoch), payload.subarray(ENVELOPE_HEAD) as BufferSource),
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
    this.sawEpoch(epoch, now);
    return { ok: true, value: plain.subarray(1 + n + 6) };
  }
}

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
