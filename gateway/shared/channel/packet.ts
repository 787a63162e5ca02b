/**
 * Audio packet wire format, protocol version 1 (docs/protocol.md is the normative text).
 *
 * Runs unchanged in Node and in browsers: only Uint8Array/DataView, no Buffer.
 * Everything a receiver needs to place, decode and (later) authenticate a packet is in the
 * fixed 26-byte header; the header is the AEAD associated data, so encryption wraps only the
 * body and needs no new version.
 */

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 26;
/** Largest packet accepted: 6 frames of the largest legal Opus frame would be far larger, but voice at
 * ≤ 64 kbit/s never comes near this; anything bigger is hostile or broken. */
export const MAX_PACKET_BYTES = 4096;
export const MAX_FRAMES_PER_PACKET = 6;
export const MAX_OPUS_FRAME_BYTES = 1275;

export const Flag = {
  /** First packet of an over. */
  START: 0x01,
  /** Last packet of an over. */
  END: 0x02,
  /** Body is an AEAD envelope (see docs/security.md), not plain frames. */
  ENCRYPTED: 0x04,
} as const;
const KNOWN_FLAGS = Flag.START | Flag.END | Flag.ENCRYPTED;

export const Codec = { OPUS: 1 } as const;
export const SAMPLE_RATES_KHZ = [8, 12, 16, 24, 48] as const;
/** Opus frame durations, in the header's 2.5 ms units. */
export const FRAME_UNITS = [1, 2, 4, 8, 16, 24] as const;

export interface PacketHeader {
  version: number;
  flags: number;
  codec: number;
  sampleRate: number;
  /** Duration of each frame in ms (2.5, 5, 10, 20, 40, 60). */
  frameMs: number;
  frameCount: number;
  /** Key epoch for encrypted channels; 0 on a clear channel. */
  keyEpoch: number;
  /** Random per over, 16 lower-case hex digits. */
  streamId: string;
  /** Packet number within the over, from 0. */
  seq: number;
  /** Sender's wall clock (ms since the Unix epoch) when the first sample of this packet was captured. */
  timestamp: number;
}

export interface AudioPacket extends PacketHeader {
  /** Opus frames (clear channel). Empty when the body is encrypted. */
  frames: Uint8Array[];
  /** The raw header bytes (for AEAD associated data) and raw body. */
  headerBytes: Uint8Array;
  body: Uint8Array;
}

export class PacketError extends Error {
  constructor(
    readonly reason: 'short' | 'version' | 'oversize' | 'header' | 'body',
    message: string,
  ) {
    super(message);
    this.name = 'PacketError';
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Value of a lower-case hex digit's char code, -1 for anything else. */
function hexValue(c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
}

// Runs for every packet sent: digit by digit, without a regular expression and 8 substrings.
export function streamIdToBytes(id: string, out: Uint8Array, offset: number): void {
  if (id.length !== 16) throw new PacketError('header', `stream id must be 16 hex digits, got "${id}"`);
  for (let i = 0; i < 8; i++) {
    const hi = hexValue(id.charCodeAt(2 * i));
    const lo = hexValue(id.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new PacketError('header', `stream id must be 16 hex digits, got "${id}"`);
    out[offset + i] = (hi << 4) | lo;
  }
}

function bytesToStreamId(b: Uint8Array, offset: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += HEX[b[offset + i]!];
  return s;
}

export function newStreamId(random: (n: number) => Uint8Array = defaultRandom): string {
  return bytesToStreamId(random(8), 0);
}

function defaultRandom(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export function encodeHeader(h: Omit<PacketHeader, 'version'>, out: Uint8Array = new Uint8Array(HEADER_BYTES)): Uint8Array {
  const units = h.frameMs / 2.5;
  if (!(FRAME_UNITS as readonly number[]).includes(units)) throw new PacketError('header', `frame duration ${h.frameMs} ms is not an Opus frame size`);
  const khz = h.sampleRate / 1000;
  if (!(SAMPLE_RATES_KHZ as readonly number[]).includes(khz)) throw new PacketError('header', `sample rate ${h.sampleRate} is not an Opus rate`);
  if (!Number.isInteger(h.frameCount) || h.frameCount < 1 || h.frameCount > MAX_FRAMES_PER_PACKET) throw new PacketError('header', `frame count ${h.frameCount} out of 1..${MAX_FRAMES_PER_PACKET}`);
  if ((h.flags & ~KNOWN_FLAGS) !== 0) throw new PacketError('header', `unknown flags 0x${h.flags.toString(16)}`);
  if (!Number.isInteger(h.seq) || h.seq < 0 || h.seq > 0xffffffff) throw new PacketError('header', `seq ${h.seq} out of range`);
  if (!Number.isInteger(h.timestamp) || h.timestamp < 0 || h.timestamp > 0xffffffffffff) throw new PacketError('header', `timestamp ${h.timestamp} out of range`);
  if (!Number.isInteger(h.keyEpoch) || h.keyEpoch < 0 || h.keyEpoch > 0xffff) throw new PacketError('header', `key epoch ${h.keyEpoch} out of range`);
  const v = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  v.setUint8(0, PROTOCOL_VERSION);
  v.setUint8(1, h.flags);
  v.setUint8(2, h.codec);
  v.setUint8(3, khz);
  v.setUint8(4, units);
  v.setUint8(5, h.frameCount);
  v.setUint16(6, h.keyEpoch);
  streamIdToBytes(h.streamId, out, 8);
  v.setUint32(16, h.seq);
  v.setUint16(20, Math.floor(h.timestamp / 2 ** 32));
  v.setUint32(22, h.timestamp % 2 ** 32);
  return out;
}

/** Body of a clear packet: for each frame a 2-byte big-endian length, then the frame. */
export function encodeFrames(frames: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const f of frames) {
    if (f.length === 0 || f.length > MAX_OPUS_FRAME_BYTES) throw new PacketError('body', `frame of ${f.length} bytes`);
    size += 2 + f.length;
  }
  const body = new Uint8Array(size);
  let o = 0;
  for (const f of frames) {
    body[o] = f.length >> 8;
    body[o + 1] = f.length & 0xff;
    body.set(f, o + 2);
    o += 2 + f.length;
  }
  return body;
}

export function encodePacket(h: Omit<PacketHeader, 'version' | 'frameCount'>, frames: readonly Uint8Array[]): Uint8Array {
  const body = encodeFrames(frames);
  const out = new Uint8Array(HEADER_BYTES + body.length);
  if (out.length > MAX_PACKET_BYTES) throw new PacketError('oversize', `packet of ${out.length} bytes exceeds ${MAX_PACKET_BYTES}`);
  encodeHeader({ ...h, frameCount: frames.length }, out);
  out.set(body, HEADER_BYTES);
  return out;
}

/** Parses and validates the header only; throws PacketError on anything malformed. */
export function decodeHeader(b: Uint8Array): PacketHeader {
  if (b.length < HEADER_BYTES) throw new PacketError('short', `packet of ${b.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  if (b.length > MAX_PACKET_BYTES) throw new PacketError('oversize', `packet of ${b.length} bytes exceeds ${MAX_PACKET_BYTES}`);
  const v = new DataView(b.buffer, b.byteOffset, HEADER_BYTES);
  const version = v.getUint8(0);
  if (version !== PROTOCOL_VERSION) throw new PacketError('version', `unknown protocol version ${version}`);
  const flags = v.getUint8(1);
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new PacketError('header', `unknown flags 0x${flags.toString(16)}`);
  const codec = v.getUint8(2);
  if (codec !== Codec.OPUS) throw new PacketError('header', `unknown codec ${codec}`);
  const khz = v.getUint8(3);
  if (!(SAMPLE_RATES_KHZ as readonly number[]).includes(khz)) throw new PacketError('header', `bad sample rate code ${khz}`);
  const units = v.getUint8(4);
  if (!(FRAME_UNITS as readonly number[]).includes(units)) throw new PacketError('header', `bad frame duration code ${units}`);
  const frameCount = v.getUint8(5);
  if (frameCount < 1 || frameCount > MAX_FRAMES_PER_PACKET) throw new PacketError('header', `frame count ${frameCount} out of range`);
  return {
    version,
    flags,
    codec,
    sampleRate: khz * 1000,
    frameMs: units * 2.5,
    frameCount,
    keyEpoch: v.getUint16(6),
    streamId: bytesToStreamId(b, 8),
    seq: v.getUint32(16),
    timestamp: v.getUint16(20) * 2 ** 32 + v.getUint32(22),
  };
}

/** Splits a clear body into exactly `count` frames; throws PacketError if it does not add up. */
export function decodeFrames(body: Uint8Array, count: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let o = 0;
  for (let i = 0; i < count; i++) {
    if (o + 2 > body.length) throw new PacketError('body', `body ends inside frame ${i} length`);
    const len = (body[o]! << 8) | body[o + 1]!;
    o += 2;
    if (len === 0 || len > MAX_OPUS_FRAME_BYTES) throw new PacketError('body', `frame ${i} claims ${len} bytes`);
    if (o + len > body.length) throw new PacketError('body', `frame ${i} truncated`);
    frames.push(body.subarray(o, o + len));
    o += len;
  }
  if (o !== body.length) throw new PacketError('body', `${body.length - o} trailing bytes after ${count} frames`);
  return frames;
}

export function decodePacket(b: Uint8Array): AudioPacket {
  const h = decodeHeader(b);
  const headerBytes = b.subarray(0, HEADER_BYTES);
  const body = b.subarray(HEADER_BYTES);
  const frames = h.flags & Flag.ENCRYPTED ? [] : decodeFrames(body, h.frameCount);
  return { ...h, frames, headerBytes, body };
}

/** Audio duration one packet carries. */
export function packetMs(h: Pick<PacketHeader, 'frameMs' | 'frameCount'>): number {
  return h.frameMs * h.frameCount;
}
