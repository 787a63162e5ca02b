/**
 * The small codec interface every pipeline stage and the browser client code against.
 * PCM is always 16-bit signed mono at the codec's sample rate, one frame per call.
 */
export interface FrameEncoder {
  readonly sampleRate: number;
  readonly frameSamples: number;
  /** Encoder look-ahead in samples (delay the codec adds). */
  readonly lookahead: number;
  /** Which implementation is in use, for logs and benchmarks. */
  readonly backend: string;
  encode(pcm: Int16Array): Uint8Array;
  close(): void;
}

export interface FrameDecoder {
  readonly sampleRate: number;
  readonly frameSamples: number;
  readonly backend: string;
  /** Decodes one Opus frame; throws on a corrupt frame (the caller conceals instead). */
  decode(frame: Uint8Array): Int16Array;
  /** Packet-loss concealment for one missing frame. */
  conceal(): Int16Array;
  close(): void;
}

export interface OpusSettings {
  sampleRate: 8000 | 12000 | 16000 | 24000 | 48000;
  frameMs: 2.5 | 5 | 10 | 20 | 40 | 60;
  bitrate: number;
  complexity: number;
}

/** The largest Opus packet either decoder accepts (one MTU); larger ones are refused before decoding. */
export const MAX_PACKET = 1500;

export const OPUS_DEFAULTS: OpusSettings = { sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 };

export function frameSamples(s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>): number {
  return (s.sampleRate * s.frameMs) / 1000;
}

/** Samples per frame that an Opus packet's TOC byte announces (RFC 6716 §3.1). */
export function tocFrameSamples(toc: number, sampleRate: number): number {
  const config = toc >> 3;
  if (config >= 16) return (sampleRate << (config & 3)) / 400; // CELT: 2.5, 5, 10, 20 ms
  if (config >= 12) return config & 1 ? sampleRate / 50 : sampleRate / 100; // hybrid: 10, 20 ms
  const d = config & 3; // SILK: 10, 20, 40, 60 ms
  return d === 3 ? (sampleRate * 60) / 1000 : (sampleRate << d) / 100;
}

/**
 * Why an Opus packet cannot be one frame of a stream of `samples`-sample frames, or null when it can.
 * Everything libopus's packet parser refuses is refused here first (RFC 6716 §3.2: the frame count
 * code, the length fields, padding, at most 120 ms), and so is a frame with no data: libopus would
 * "decode" it as a lost frame, so a sender could hold a transmitter open with nothing but
 * concealment. A sender that declared 20 ms frames and sends 60 ms ones would otherwise stretch the
 * over on the air and push the playout behind. Runs per frame on arrival: no allocation.
 */
export function frameProblem(p: Uint8Array, sampleRate: number, samples: number): string | null {
  const n = p.length;
  if (n < 2) return n === 0 ? 'empty opus frame' : 'opus frame without data (concealment only)';
  if (n > MAX_PACKET) return `opus frame of ${n} bytes`;
  const per = tocFrameSamples(p[0]!, sampleRate);
  const code = p[0]! & 3;
  let count: number;
  if (code === 0) {
    if (n - 1 > MAX_FRAME) return `opus frame of ${n - 1} bytes`;
    count = 1;
  } else if (code === 1) {
    if ((n - 1) % 2 !== 0 || (n - 1) / 2 > MAX_FRAME) return 'opus code 1 packet with unequal frames';
    count = 2;
  } else if (code === 2) {
    const first = lengthField(p, 1);
    if (first === null) return 'opus code 2 packet truncated';
    const rest = n - 1 - first.bytes - first.len;
    if (first.len === 0 || rest <= 0 || first.len > MAX_FRAME || rest > MAX_FRAME) return 'opus code 2 packet with bad frame lengths';
    count = 2;
  } else {
    const problem = code3Problem(p, per, sampleRate);
    if (problem) return problem;
    count = p[1]! & 0x3f;
  }
  if (count * per !== samples) return `opus packet of ${(count * per * 1000) / sampleRate} ms in a stream of ${(samples * 1000) / sampleRate} ms frames`;
  return null;
}

/** The largest Opus frame (RFC 6716 §3.2.1). */
const MAX_FRAME = 1275;

/** A frame length field (RFC 6716 §3.2.1): one byte below 252, else two. */
function lengthField(p: Uint8Array, o: number): { len: number; bytes: number } | null {
  if (o >= p.length) return null;
  const b = p[o]!;
  if (b < 252) return { len: b, bytes: 1 };
  if (o + 1 >= p.length) return null;
  return { len: b + 4 * p[o + 1]!, bytes: 2 };
}

function code3Problem(p: Uint8Array, per: number, sampleRate: number): string | null {
  if (p.length < 2) return 'opus code 3 packet truncated';
  const vbr = (p[1]! & 0x80) !== 0;
  const padded = (p[1]! & 0x40) !== 0;
  const m = p[1]! & 0x3f;
  if (m === 0 || m * per > (sampleRate * 120) / 1000) return `opus code 3 packet of ${m} frames`;
  let o = 2;
  let padding = 0;
  if (padded) {
    for (;;) {
      if (o >= p.length) return 'opus padding truncated';
      const b = p[o++]!;
      padding += b === 255 ? 254 : b;
      if (b !== 255) break;
    }
  }
  let left = p.length - o - padding;
  if (left < 0) return 'opus padding longer than the packet';
  if (!vbr) {
    if (left % m !== 0 || left / m > MAX_FRAME || left === 0) return 'opus code 3 CBR packet with bad frame lengths';
    return null;
  }
  for (let i = 0; i < m - 1; i++) {
    const f = lengthField(p, o);
    if (f === null || f.len === 0) return 'opus code 3 VBR packet with bad frame lengths';
    o += f.bytes;
    left -= f.bytes + f.len;
    if (f.len > MAX_FRAME || left < 0) return 'opus code 3 VBR packet with bad frame lengths';
  }
  if (left <= 0 || left > MAX_FRAME) return 'opus code 3 VBR packet with bad last frame';
  return null;
}

/** Throws (RangeError) what frameProblem() finds; the decoders call it before decoding. */
export function checkFrame(p: Uint8Array, sampleRate: number, samples: number): void {
  const problem = frameProblem(p, sampleRate, samples);
  if (problem) throw new RangeError(problem);
}

/**
 * A one-byte packet (a TOC and no frame data) for `frameMs`: libopus treats it as a lost frame of
 * exactly the TOC's length, the same as opus_decode(NULL, 0, that length). This is how a binding
 * that takes only packets does single-frame packet-loss concealment.
 */
export function concealmentToc(frameMs: OpusSettings['frameMs']): number {
  // Mono, one frame (code 0); SILK wideband where it has the length, else CELT fullband. Only the
  // length matters: libopus conceals in the mode of the last real packet, whatever these bits say
  // (test/unit/codec.test.ts compares the samples with opus_decode(NULL) through speech and losses).
  const config = { 2.5: 28, 5: 29, 10: 8, 20: 9, 40: 10, 60: 11 }[frameMs];
  return config << 3;
}

// libopus CTL request numbers (opus_defines.h); the same for every backend.
export const CTL = {
  SET_BITRATE: 4002,
  SET_VBR: 4006,
  SET_COMPLEXITY: 4010,
  SET_SIGNAL: 4024,
  GET_LOOKAHEAD: 4027,
  SIGNAL_VOICE: 3001,
  APPLICATION_VOIP: 2048,
} as const;
