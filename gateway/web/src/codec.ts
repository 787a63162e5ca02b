/**
 * Opus in the browser. Encoding: WebCodecs' AudioEncoder where the browser has Opus in it (native
 * libopus, off the main thread), else libopus compiled to WASM. Decoding: always the WASM build,
 * through the shared FrameDecoder the session drives — it is synchronous, and its conceal() is a
 * real single-frame packet-loss concealment (opus_decode with no data), which WebCodecs'
 * AudioDecoder cannot do: it has no "decode nothing" call, and inventing one (silence, or repeating
 * the last frame) sounds worse than libopus' own concealment. Decoding costs ~0.1 % of a core.
 */
import { OpusWasm } from '../../shared/codec/opus-wasm.js';
import type { FrameEncoder } from '../../shared/codec/codec.js';
import { CODEC, type CodecChoice } from './config.js';

/** An encoder whose output may come later (WebCodecs is asynchronous); frames come out in order. */
export interface OutEncoder {
  readonly backend: string;
  onFrame: (frame: Uint8Array) => void;
  onError: (err: Error) => void;
  encode(pcm: Int16Array): void;
  /** Resolves when every frame given to encode() has come out. */
  flush(): Promise<void>;
  close(): void;
}

/** The smallest module that uses a v128 instruction: valid only where WASM SIMD is. */
export function simdSupported(): boolean {
  return WebAssembly.validate(Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11));
}

export async function loadWasm(base: URL): Promise<OpusWasm> {
  const url = new URL(simdSupported() ? 'opus-simd.wasm' : 'opus.wasm', base);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot load ${url.pathname}: HTTP ${res.status}`);
  // compileStreaming needs application/wasm; a static host that says otherwise still works this way.
  const mod = res.headers.get('content-type')?.startsWith('application/wasm') ? await WebAssembly.compileStreaming(res) : await WebAssembly.compile(await res.arrayBuffer());
  return OpusWasm.load(mod);
}

class WasmOutEncoder implements OutEncoder {
  readonly backend = 'wasm';
  onFrame: (frame: Uint8Array) => void = () => {};
  onError: (err: Error) => void = () => {};
  constructor(private readonly enc: FrameEncoder) {}
  encode(pcm: Int16Array): void {
    let f: Uint8Array;
    try {
      f = this.enc.encode(pcm);
    } catch (err) {
      this.onError(err as Error);
      return;
    }
    this.onFrame(f);
  }
  async flush(): Promise<void> {}
  close(): void {
    this.enc.close();
  }
}

const WEBCODECS_CONFIG: AudioEncoderConfig = {
  codec: 'opus',
  sampleRate: CODEC.sampleRate,
  numberOfChannels: 1,
  bitrate: CODEC.bitrate,
  bitrateMode: 'variable',
  opus: { frameDuration: CODEC.frameMs * 1000, application: 'voip', signal: 'voice', complexity: CODEC.complexity, format: 'opus' },
} as AudioEncoderConfig;

class WebCodecsOutEncoder implements OutEncoder {
  readonly backend = 'webcodecs';
  onFrame: (frame: Uint8Array) => void = () => {};
  onError: (err: Error) => void = () => {};
  private readonly enc: AudioEncoder;
  private ts = 0;
  private closed = false;

  constructor() {
    this.enc = new AudioEncoder({
      output: (chunk) => {
        const b = new Uint8Array(chunk.byteLength);
        chunk.copyTo(b);
        this.onFrame(b);
      },
      error: (e) => {
        this.closed = true;
        this.onError(e instanceof Error ? e : new Error(String(e)));
      },
    });
    this.enc.configure(WEBCODECS_CONFIG);
  }

  encode(pcm: Int16Array): void {
    if (this.closed) return;
    const data = new AudioData({ format: 's16', sampleRate: CODEC.sampleRate, numberOfFrames: pcm.length, numberOfChannels: 1, timestamp: this.ts, data: pcm as Int16Array<ArrayBuffer> });
    this.ts += (pcm.length * 1e6) / CODEC.sampleRate;
    try {
      this.enc.encode(data);
    } finally {
      data.close();
    }
  }

  async flush(): Promise<void> {
    if (this.closed) return;
    await this.enc.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.enc.close();
    } catch {
      /* already closed by an error */
    }
  }
}

export async function webCodecsOpus(): Promise<boolean> {
  if (typeof AudioEncoder === 'undefined' || typeof AudioData === 'undefined') return false;
  try {
    return (await AudioEncoder.isConfigSupported(WEBCODECS_CONFIG)).supported === true;
  } catch {
    return false;
  }
}

export interface Codecs {
  wasm: OpusWasm;
  encoderBackend: 'webcodecs' | 'wasm';
  createEncoder(): OutEncoder;
  /** One encoded 20 ms frame of silence, to pad the last packet of an over. */
  silence(): Uint8Array;
}

export async function loadCodecs(base: URL, choice: CodecChoice): Promise<Codecs> {
  const wasm = await loadWasm(base);
  const useWebCodecs = choice !== 'wasm' && (await webCodecsOpus());
  if (choice === 'webcodecs' && !useWebCodecs) throw new Error('this browser has no WebCodecs Opus encoder (codec=webcodecs was asked for)');
  const settings = { sampleRate: CODEC.sampleRate, frameMs: CODEC.frameMs, bitrate: CODEC.bitrate, complexity: CODEC.complexity };
  let silent: Uint8Array | null = null;
  return {
    wasm,
    encoderBackend: useWebCodecs ? 'webcodecs' : 'wasm',
    createEncoder: () => (useWebCodecs ? new WebCodecsOutEncoder() : new WasmOutEncoder(wasm.createEncoder(settings))),
    silence() {
      if (!silent) {
        const e = wasm.createEncoder(settings);
        silent = e.encode(new Int16Array((CODEC.sampleRate * CODEC.frameMs) / 1000));
        e.close();
      }
      return silent;
    },
  };
}
