/**
 * Codec factory for the gateway (Node). Both directions use the native libopus of @evan/opus
 * (N-API, prebuilt for x64 and arm64 — no compiler needed on a Pi) and fall back to the WASM
 * build where that binary cannot load (32-bit Pi OS, old glibc) or TALKBRIDGE_OPUS=wasm.
 *
 * The native decoder takes whole packets only, so a lost frame is concealed by decoding a
 * one-byte packet (see concealmentToc): bit-for-bit what the WASM path's opus_decode(NULL) gives,
 * tested in test/unit/codec.test.ts. A gateway that loads no WASM saves the module's memory and,
 * in its first over after a start, V8's optimizing compile of the decoder.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CTL, checkFrame, type FrameDecoder, type FrameEncoder, type OpusSettings, concealmentToc, frameSamples } from '../../shared/codec/codec.js';
import { OpusWasm } from '../../shared/codec/opus-wasm.js';

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
  /** Returns the packet's length; the packet is in the addon's shared encoder buffer. */
  encode(buf: ArrayBufferView): number;
}
interface NativeDecoder {
  /** Returns the PCM's length in bytes; the PCM is in the addon's shared decoder buffer. */
  decode(buf: Uint8Array): number;
}
// The raw addon, not its JavaScript wrapper (which copies every result once more).
interface NativeAddon {
  Encoder: new (o: { channels: 1; sample_rate: number; application: 'voip' }) => NativeEncoder;
  Decoder: new (o: { channels: 1; sample_rate: number }) => NativeDecoder;
  buffers: { encoder(): Uint8Array; decoder(): Uint8Array };
}

function loadNative(): NativeAddon | null {
  if (process.env.TALKBRIDGE_OPUS === 'wasm') return null;
  try {
    return require(`@evan/opus/node/${process.arch}-${process.platform}.node`) as NativeAddon;
  } catch {
    return null;
  }
}

let nativeAddon: NativeAddon | null | undefined;
const native = (): NativeAddon | null => (nativeAddon ??= loadNative());

/** Which Opus this process uses: the native libopus, or the WASM build where it did not load. */
export function opusBackend(): 'native' | 'wasm' {
  return native() ? 'native' : 'wasm';
}

class NativeOpusEncoder implements FrameEncoder {
  readonly backend = 'native';
  readonly sampleRate: number;
  readonly frameSamples: number;
  readonly lookahead: number;
  private readonly enc: NativeEncoder;
  private readonly buf: Uint8Array;

  constructor(addon: NativeAddon, s: OpusSettings) {
    this.sampleRate = s.sampleRate;
    this.frameSamples = frameSamples(s);
    this.enc = new addon.Encoder({ channels: 1, sample_rate: s.sampleRate, application: 'voip' });
    this.enc.ctl(CTL.SET_BITRATE, s.bitrate);
    this.enc.ctl(CTL.SET_COMPLEXITY, s.complexity);
    this.enc.ctl(CTL.SET_SIGNAL, CTL.SIGNAL_VOICE);
    this.lookahead = this.enc.ctl(CTL.GET_LOOKAHEAD);
    this.buf = addon.buffers.encoder();
  }

  encode(pcm: Int16Array): Uint8Array {
    if (pcm.length !== this.frameSamples) throw new RangeError(`encoder needs ${this.frameSamples} samples, got ${pcm.length}`);
    return this.buf.slice(0, this.enc.encode(pcm));
  }

  close(): void {}
}

class NativeOpusDecoder implements FrameDecoder {
  readonly backend = 'native';
  readonly sampleRate: number;
  readonly frameSamples: number;
  private readonly dec: NativeDecoder;
  private readonly buf: Uint8Array;
  /** The one-byte packet that conceals one frame. */
  private readonly lost: Uint8Array;

  constructor(addon: NativeAddon, s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>) {
    this.sampleRate = s.sampleRate;
    this.frameSamples = frameSamples(s);
    this.dec = new addon.Decoder({ channels: 1, sample_rate: s.sampleRate });
    this.buf = addon.buffers.decoder();
    this.lost = Uint8Array.of(concealmentToc(s.frameMs));
  }

  decode(frame: Uint8Array): Int16Array {
    checkFrame(frame, this.sampleRate, this.frameSamples);
    return this.run(frame);
  }

  conceal(): Int16Array {
    return this.run(this.lost);
  }

  private run(packet: Uint8Array): Int16Array {
    let n: number;
    try {
      n = this.dec.decode(packet);
    } catch (err) {
      throw new Error(`opus: ${(err as Error).message}`);
    }
    const b = this.buf;
    return new Int16Array(b.buffer, b.byteOffset, n >> 1).slice();
  }

  close(): void {}
}

export async function createEncoder(s: OpusSettings): Promise<FrameEncoder> {
  const addon = native();
  if (addon) return new NativeOpusEncoder(addon, s);
  return (await loadOpusWasm()).createEncoder(s);
}

export type DecoderFactory = (s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>) => FrameDecoder;

/** Makes decoders synchronously (a session creates one when a stream starts); WASM only as the fallback. */
export async function decoderFactory(): Promise<DecoderFactory> {
  const addon = native();
  if (addon) return (s) => new NativeOpusDecoder(addon, s);
  const wasm = await loadOpusWasm();
  return (s) => wasm.createDecoder(s);
}

export async function createDecoder(s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>): Promise<FrameDecoder> {
  return (await decoderFactory())(s);
}
