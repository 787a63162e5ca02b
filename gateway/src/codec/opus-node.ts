/**
 * Codec factory for the gateway (Node). Encoding uses the native libopus of @evan/opus
 * (N-API, prebuilt for x64 and arm64 — no compiler needed on a Pi) and falls back to WASM where
 * that binary cannot load (32-bit Pi OS, old glibc). Decoding always uses the WASM build: it is
 * the only path with single-frame packet-loss concealment (see opus-wasm.ts), and decoding is
 * cheap (~0.1 % of a core per stream here).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CTL, type FrameDecoder, type FrameEncoder, type OpusSettings, frameSamples } from './codec.js';
import { OpusWasm } from './opus-wasm.js';

const require = createRequire(import.meta.url);

let wasmPromise: Promise<OpusWasm> | undefined;

export function opusWasmPath(simd = true): string {
  const pkg = path.dirname(require.resolve('@evan/opus/package.json'));
  return path.join(pkg, 'wasm', simd ? 'simd.wasm' : 'opus.wasm');
}

export function loadOpusWasm(): Promise<OpusWasm> {
  wasmPromise ??= (async () => {
    const bytes = await readFile(opusWasmPath(simdSupported()));
    return OpusWasm.load(await WebAssembly.compile(bytes));
  })();
  return wasmPromise;
}

function simdSupported(): boolean {
  // The smallest module using a v128 instruction.
  return WebAssembly.validate(Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11));
}

interface NativeEncoder {
  ctl(cmd: number, value?: number): number;
  encode(buf: ArrayBufferView): Uint8Array;
}
type NativeCtor = new (o: { channels: 1; sample_rate: number; application: 'voip' }) => NativeEncoder;

function loadNative(): NativeCtor | null {
  if (process.env.TALKBRIDGE_OPUS === 'wasm') return null;
  try {
    const mod = require(`@evan/opus/node/${process.arch}-${process.platform}.node`) as { Encoder: NativeCtor };
    return mod.Encoder;
  } catch {
    return null;
  }
}

let nativeCtor: NativeCtor | null | undefined;

class NativeOpusEncoder implements FrameEncoder {
  readonly backend = 'native';
  readonly sampleRate: number;
  readonly frameSamples: number;
  readonly lookahead: number;
  private readonly enc: NativeEncoder;
  private readonly buf: Uint8Array;

  constructor(Ctor: NativeCtor, s: OpusSettings) {
    this.sampleRate = s.sampleRate;
    this.frameSamples = frameSamples(s);
    this.enc = new Ctor({ channels: 1, sample_rate: s.sampleRate, application: 'voip' });
    this.enc.ctl(CTL.SET_BITRATE, s.bitrate);
    this.enc.ctl(CTL.SET_COMPLEXITY, s.complexity);
    this.enc.ctl(CTL.SET_SIGNAL, CTL.SIGNAL_VOICE);
    this.lookahead = this.enc.ctl(CTL.GET_LOOKAHEAD);
    // The raw addon writes into one shared output buffer and returns the length.
    this.buf = (require(`@evan/opus/node/${process.arch}-${process.platform}.node`) as { buffers: { encoder(): Uint8Array } }).buffers.encoder();
  }

  encode(pcm: Int16Array): Uint8Array {
    if (pcm.length !== this.frameSamples) throw new RangeError(`encoder needs ${this.frameSamples} samples, got ${pcm.length}`);
    const n = this.enc.encode(pcm) as unknown as number;
    return this.buf.slice(0, n);
  }

  close(): void {}
}

export async function createEncoder(s: OpusSettings): Promise<FrameEncoder> {
  nativeCtor ??= loadNative();
  if (nativeCtor) return new NativeOpusEncoder(nativeCtor, s);
  return (await loadOpusWasm()).createEncoder(s);
}

export async function createDecoder(s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>): Promise<FrameDecoder> {
  return (await loadOpusWasm()).createDecoder(s);
}
