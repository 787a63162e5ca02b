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

export const OPUS_DEFAULTS: OpusSettings = { sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 };

export function frameSamples(s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>): number {
  return (s.sampleRate * s.frameMs) / 1000;
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
