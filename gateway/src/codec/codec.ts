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
 * Refuses, before decoding, a packet that is empty, too long or does not hold exactly one frame of
 * the stream's length: a sender that declared 20 ms frames and sends 60 ms ones would otherwise
 * stretch the over on the air and push the playout behind.
 */
export function checkFrame(p: Uint8Array, sampleRate: number, samples: number): void {
  if (p.length === 0 || p.length > MAX_PACKET) throw new RangeError(`opus frame of ${p.length} bytes`);
  const code = p[0]! & 3; // frames in the packet: 1, 2, 2 or counted in the next byte
  const frames = code === 0 ? 1 : code !== 3 ? 2 : p.length > 1 ? p[1]! & 0x3f : 0;
  const got = frames * tocFrameSamples(p[0]!, sampleRate);
  if (got !== samples) throw new RangeError(`opus packet of ${(got * 1000) / sampleRate} ms in a stream of ${(samples * 1000) / sampleRate} ms frames`);
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
