/**
 * Sends PCM as one over: resample to the codec rate, cut into frames, encode, pack N frames per
 * packet and publish — paced in real time (each packet leaves when its audio would have finished
 * being captured) or as fast as possible.
 */
import { resampleAll } from '../../shared/audio/resample.js';
import type { FrameEncoder } from '../../shared/codec/codec.js';
import type { ChannelSession, TalkerInfo } from '../../shared/channel/session.js';
import type { Pcm } from '../audio/wav.js';

export interface SendOptions {
  framesPerPacket: number;
  frameMs: number;
  fast: boolean;
  priority?: number;
  /** Called for every packet sent (benchmarks). */
  onPacket?: (seq: number, bytes: number) => void;
}

export type SendResult = { status: 'done'; packets: number; seconds: number } | { status: 'busy'; holder: TalkerInfo; packets: number } | { status: 'aborted'; packets: number };

/** Frames of exactly `frameSamples`, the last packet padded with silence to a whole packet. */
export function toFrames(samples: Int16Array, frameSamples: number, framesPerPacket: number): Int16Array[] {
  const perPacket = frameSamples * framesPerPacket;
  const packets = Math.max(1, Math.ceil(samples.length / perPacket));
  const padded = new Int16Array(packets * perPacket);
  padded.set(samples);
  const frames: Int16Array[] = [];
  for (let o = 0; o < padded.length; o += frameSamples) frames.push(padded.subarray(o, o + frameSamples));
  return frames;
}

export async function sendPcm(session: ChannelSession, encoder: FrameEncoder, pcm: Pcm, o: SendOptions, signal?: AbortSignal): Promise<SendResult> {
  const samples = resampleAll(pcm.samples, pcm.sampleRate, encoder.sampleRate);
  const frames = toFrames(samples, encoder.frameSamples, o.framesPerPacket);
  const over = session.talk({ sampleRate: encoder.sampleRate, frameMs: o.frameMs, framesPerPacket: o.framesPerPacket, priority: o.priority });
  if ('busy' in over) return { status: 'busy', holder: over.busy, packets: 0 };

  let lostTo: TalkerInfo | null = null;
  over.once('busy', (w) => (lostTo = w));
  const packets = frames.length / o.framesPerPacket;
  const packetMs = o.frameMs * o.framesPerPacket;
  const startMono = performance.now();
  for (let seq = 0; seq < packets; seq++) {
    if (signal?.aborted) {
      over.end('aborted');
      return { status: 'aborted', packets: seq };
    }
    const enc: Uint8Array[] = [];
    for (let i = 0; i < o.framesPerPacket; i++) enc.push(encoder.encode(frames[seq * o.framesPerPacket + i]!));
    if (!o.fast) {
      // Packet seq holds audio captured over [seq, seq+1)·packetMs; it cannot leave earlier.
      const wait = startMono + (seq + 1) * packetMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    } else if (seq % 16 === 15) {
      await new Promise((r) => setImmediate(r)); // let the socket drain and floor messages arrive
    }
    if (lostTo) return { status: 'busy', holder: lostTo, packets: seq };
    const sent = over.send(enc, seq === packets - 1);
    if (!sent) return lostTo ? { status: 'busy', holder: lostTo, packets: seq } : { status: 'aborted', packets: seq };
    o.onPacket?.(
      seq,
      enc.reduce((n, f) => n + f.length, 0),
    );
  }
  return { status: 'done', packets, seconds: (packets * packetMs) / 1000 };
}
