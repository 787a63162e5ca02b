/**
 * Opus frames as an Ogg Opus file (RFC 7845 on RFC 3533 pages), so a recorded over plays in any
 * ordinary player, and a reader that checks such a file page by page.
 */
import { randomBytes } from 'node:crypto';
import { frameProblem } from '../../shared/codec/codec.js';

export interface OggOpusOptions {
  /** The original PCM rate: players only report it, Opus always decodes at 48 kHz. */
  inputSampleRate: number;
  frameMs: number;
  channels?: 1;
  /** At 48 kHz: the encoder's look-ahead, which players drop from the start. */
  preSkip?: number;
  vendor?: string;
  comments?: Record<string, string>;
  serial?: number;
  /** A valid Opus packet of frameMs of silence, used to fill gaps; gap() needs it. */
  silenceFrame?: Uint8Array;
}

export interface OggPage {
  /** -1 on a page where no packet ends (RFC 3533). */
  granule: bigint;
  serial: number;
  seq: number;
  flags: number;
  packets: Buffer[];
}

const CONTINUED = 1;
const BOS = 2;
const EOS = 4;
/** The largest Opus packet of one frame (RFC 6716 §3.2.1). */
const MAX_FRAME = 1275;
/** Far beyond a title and an artist, yet small enough that a hostile caller cannot make us build megabytes. */
const MAX_TAGS = 256 * 1024;
/** A page per ~1 s or ~4 KB keeps Ogg's 27-byte overhead near 1 % without making seeking coarse. */
const PAGE_MS = 1000;
const PAGE_BYTES = 4096;

const CRC_TABLE = new Uint32Array(256).map((_, i) => {
  let r = i << 24;
  for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
  return r >>> 0;
});

function crc32(buf: Uint8Array): number {
  let c = 0;
  for (const b of buf) c = ((c << 8) ^ CRC_TABLE[((c >>> 24) ^ b) & 0xff]!) >>> 0;
  return c;
}

function lacing(len: number): number[] {
  // A final value below 255 is what marks a packet's end, hence the 0 after an exact multiple of 255.
  return [...Array<number>(Math.floor(len / 255)).fill(255), len % 255];
}

function page(flags: number, granule: bigint, serial: number, seq: number, segments: number[], body: Buffer): Buffer {
  const p = Buffer.alloc(27 + segments.length + body.length);
  p.write('OggS', 0, 'latin1');
  p[5] = flags;
  p.writeBigInt64LE(granule, 6);
  p.writeUInt32LE(serial, 14);
  p.writeUInt32LE(seq, 18);
  p[26] = segments.length;
  p.set(segments, 27);
  body.copy(p, 27 + segments.length);
  p.writeUInt32LE(crc32(p), 22);
  return p;
}

function tagsPacket(vendor: string, comments: Record<string, string>): Buffer {
  const parts = [Buffer.from(vendor, 'utf8')];
  for (const [key, value] of Object.entries(comments)) {
    // Vorbis comment field names: printable ASCII without '=', which separates name from value.
    if (!/^[\x20-\x3c\x3e-\x7d]+$/.test(key)) throw new RangeError(`bad Ogg comment name ${JSON.stringify(key.slice(0, 40))}`);
    parts.push(Buffer.from(`${key}=${value}`, 'utf8'));
  }
  const size = 8 + 4 + parts.reduce((n, b) => n + 4 + b.length, 0);
  if (size > MAX_TAGS) throw new RangeError(`Ogg comments of ${size} bytes (at most ${MAX_TAGS})`);
  const out = Buffer.alloc(size);
  out.write('OpusTags', 0, 'latin1');
  let o = 8;
  for (const [i, b] of parts.entries()) {
    out.writeUInt32LE(b.length, o);
    o += 4 + b.copy(out, o + 4);
    if (i === 0) o = out.writeUInt32LE(parts.length - 1, o); // the comment count follows the vendor
  }
  return out;
}

export class OggOpusWriter {
  private readonly serial: number;
  private readonly frameSamples: number;
  private readonly o: OggOpusOptions;
  private seq = 0;
  private granule = 0n;
  private packets: Uint8Array[] = [];
  private state: 'new' | 'audio' | 'ended' = 'new';

  constructor(o: OggOpusOptions) {
    // Opus frames are whole multiples of 2.5 ms (120 samples at 48 kHz), at most 120 ms per packet.
    const samples = 48 * o.frameMs;
    if (!Number.isInteger(samples / 120) || samples <= 0 || samples > 5760) throw new RangeError(`Opus cannot have ${o.frameMs} ms frames`);
    if (!Number.isInteger(o.inputSampleRate) || o.inputSampleRate <= 0 || o.inputSampleRate > 0xffffffff) throw new RangeError(`bad input sample rate ${o.inputSampleRate}`);
    const preSkip = o.preSkip ?? 312;
    if (!Number.isInteger(preSkip) || preSkip < 0 || preSkip > 0xffff) throw new RangeError(`bad pre-skip ${preSkip}`);
    if ((o.channels ?? 1) !== 1) throw new RangeError('only mono is supported');
    if (o.silenceFrame) {
      const problem = o.silenceFrame.length > MAX_FRAME ? 'too long' : frameProblem(o.silenceFrame, 48000, samples);
      if (problem) throw new RangeError(`silence frame: ${problem}`);
    }
    this.o = { ...o, preSkip };
    this.frameSamples = samples;
    this.serial = o.serial === undefined ? randomBytes(4).readUInt32LE() : o.serial >>> 0;
  }

  header(): Buffer {
    if (this.state !== 'new' || this.seq !== 0) throw new Error('the Ogg Opus header is written once, first');
    const tags = tagsPacket(this.o.vendor ?? 'talkbridge', this.o.comments ?? {});
    const head = Buffer.alloc(19);
    head.write('OpusHead', 0, 'latin1');
    head[8] = 1; // version
    head[9] = 1; // channels
    head.writeUInt16LE(this.o.preSkip!, 10);
    head.writeUInt32LE(this.o.inputSampleRate, 12);
    // Output gain 0 and mapping family 0 (mono/stereo, no table) are left as zeros.
    const out = [page(BOS, 0n, this.serial, this.seq++, [head.length], head)];
    // RFC 7845 §5.2: the tags may span pages; only the page where they end carries granule 0.
    const segs = lacing(tags.length);
    for (let s = 0, off = 0; s < segs.length; s += 255) {
      const mine = segs.slice(s, s + 255);
      const len = mine.reduce((a, b) => a + b, 0);
      const last = s + 255 >= segs.length;
      out.push(page(s ? CONTINUED : 0, last ? 0n : -1n, this.serial, this.seq++, mine, tags.subarray(off, off + len)));
      off += len;
    }
    return Buffer.concat(out);
  }

  frame(opus: Uint8Array): Buffer {
    if (this.state === 'ended') throw new Error('Ogg Opus stream already ended');
    if (this.seq === 0) throw new Error('write the Ogg Opus header first');
    if (opus.length < 1 || opus.length > MAX_FRAME) throw new RangeError(`Opus frame of ${opus.length} bytes (1..${MAX_FRAME})`);
    this.state = 'audio';
    // Flushing before adding, not after, keeps a packet in hand so end() can put EOS on a real page.
    const segs = this.packets.reduce((n, p) => n + lacing(p.length).length, 0) + lacing(opus.length).length;
    const bytes = this.packets.reduce((n, p) => n + p.length, 0) + opus.length;
    const full = this.packets.length * this.frameSamples >= 48 * PAGE_MS || segs > 255 || bytes > PAGE_BYTES;
    const out = full ? this.flush(0, 0) : Buffer.alloc(0);
    this.packets.push(Uint8Array.from(opus));
    return out;
  }

  gap(frames: number): Buffer {
    if (!this.o.silenceFrame) throw new Error('gap() needs the silenceFrame option');
    if (!Number.isInteger(frames) || frames < 0) throw new RangeError(`bad gap of ${frames} frames`);
    const out: Buffer[] = [];
    for (let i = 0; i < frames; i++) out.push(this.frame(this.o.silenceFrame));
    return Buffer.concat(out);
  }

  /** The final page, with EOS; endTrimSamples (48 kHz) drops encoder padding from the last page's audio. */
  end(endTrimSamples = 0): Buffer {
    if (this.state === 'ended') throw new Error('Ogg Opus stream already ended');
    if (this.seq === 0) throw new Error('write the Ogg Opus header first');
    // RFC 7845 §4.5 only lets the last page end early, and not before the audio it starts with.
    const max = this.packets.length * this.frameSamples;
    if (!Number.isInteger(endTrimSamples) || endTrimSamples < 0 || endTrimSamples > max) throw new RangeError(`cannot trim ${endTrimSamples} samples from a last page of ${max}`);
    this.state = 'ended';
    return this.flush(EOS, endTrimSamples);
  }

  private flush(flags: number, trim: number): Buffer {
    this.granule += BigInt(this.packets.length * this.frameSamples);
    const segs = this.packets.flatMap((p) => lacing(p.length));
    const p = page(flags, this.granule - BigInt(trim), this.serial, this.seq++, segs, Buffer.concat(this.packets));
    this.packets = [];
    return p;
  }
}

export function oggOpusFile(frames: Uint8Array[], opts: OggOpusOptions): Buffer {
  const w = new OggOpusWriter(opts);
  return Buffer.concat([w.header(), ...frames.map((f) => w.frame(f)), w.end()]);
}

/** Every page of a one-stream Ogg file with the packets that end on it; throws on a damaged page. */
export function readOggPages(buf: Buffer): OggPage[] {
  const pages: OggPage[] = [];
  let partial: Buffer[] = [];
  for (let o = 0; o < buf.length; ) {
    if (buf.length - o < 27 || buf.toString('latin1', o, o + 4) !== 'OggS' || buf[o + 4] !== 0) throw new Error(`no Ogg page at byte ${o}`);
    const n = buf[o + 26]!;
    const segs = buf.subarray(o + 27, o + 27 + n);
    const end = o + 27 + n + segs.reduce((a, b) => a + b, 0);
    if (segs.length < n || end > buf.length) throw new Error(`Ogg page at byte ${o} is truncated`);
    const raw = Buffer.from(buf.subarray(o, end));
    const crc = raw.readUInt32LE(22);
    raw.writeUInt32LE(0, 22);
    if (crc32(raw) !== crc) throw new Error(`Ogg page at byte ${o} has a bad CRC`);
    const flags = raw[5]!;
    // A continuation flag that disagrees with what came before means a lost or spliced page.
    if (Boolean(flags & CONTINUED) !== partial.length > 0) throw new Error(`Ogg page at byte ${o} breaks packet continuity`);
    const packets: Buffer[] = [];
    let b = 27 + n;
    for (const s of segs) {
      partial.push(raw.subarray(b, (b += s)));
      if (s < 255) packets.push(Buffer.concat(partial)), (partial = []);
    }
    pages.push({ granule: raw.readBigInt64LE(6), serial: raw.readUInt32LE(14), seq: raw.readUInt32LE(18), flags, packets });
    o = end;
  }
  return pages;
}
