/**
 * libopus compiled to WebAssembly, driven through its raw C API: the browser client's codec, and
 * the gateway's where the native library cannot load.
 *
 * Why our own glue instead of a binding's JavaScript API: none of the maintained bindings
 * (@evan/opus native or WASM, @discordjs/opus, opusscript) lets the caller choose frame_size on a
 * lost packet, so their "decode an empty packet" produces up to 120 ms of concealment and
 * desynchronises the decoder. Here concealment is opus_decode(NULL, 0, frame_size); the native
 * path gets the same samples from a one-byte packet (codec.ts, concealmentToc). The module is the
 * WASM build that ships inside @evan/opus (pinned version); this file runs unchanged in Node and
 * in browsers, so the browser client and the gateway share it.
 */
import { CTL, MAX_PACKET, checkFrame, type FrameDecoder, type FrameEncoder, type OpusSettings, frameSamples } from './codec.js';

interface OpusExports {
  memory: WebAssembly.Memory;
  malloc(n: number): number;
  free(p: number): void;
  opus_strerror(code: number): number;
  opus_decoder_get_size(ch: number): number;
  opus_decoder_init(p: number, rate: number, ch: number): number;
  opus_decode(p: number, data: number, len: number, pcm: number, frameSize: number, fec: number): number;
  opus_decoder_ctl_get(p: number, req: number): number;
  opus_encoder_get_size(ch: number): number;
  opus_encoder_init(p: number, rate: number, ch: number, app: number): number;
  opus_encode(p: number, pcm: number, frameSize: number, data: number, maxBytes: number): number;
  opus_encoder_ctl_set(p: number, req: number, v: number): number;
  opus_encoder_ctl_get(p: number, req: number): number;
}

const MAX_FRAME_SAMPLES = 5760;

export class OpusWasm {
  private constructor(private readonly x: OpusExports) {}

  static async load(module: WebAssembly.Module): Promise<OpusWasm> {
    // biome-ignore lint/style/useConst: the imports below read it; it is set once the module is instantiated
    let ex: OpusExports | undefined;
    const instance = await WebAssembly.instantiate(module, {
      wasi_snapshot_preview1: { fd_seek: () => 0, fd_write: () => 0, fd_close: () => 0, proc_exit: () => {} },
      // Views are re-created on every call, so growth needs no bookkeeping here.
      env: { emscripten_notify_memory_growth: () => {} },
    });
    ex = instance.exports as unknown as OpusExports;
    return new OpusWasm(ex);
  }

  error(code: number): Error {
    const u8 = new Uint8Array(this.x.memory.buffer);
    let p = this.x.opus_strerror(code);
    let s = '';
    while (u8[p]) s += String.fromCharCode(u8[p++]!);
    return new Error(`opus: ${s || code}`);
  }

  createEncoder(s: OpusSettings): FrameEncoder {
    return new WasmEncoder(this.x, this, s);
  }

  createDecoder(s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>): FrameDecoder {
    return new WasmDecoder(this.x, this, s);
  }
}

class WasmEncoder implements FrameEncoder {
  readonly backend = 'wasm';
  readonly sampleRate: number;
  readonly frameSamples: number;
  readonly lookahead: number;
  private st: number;
  private readonly pcm: number;
  private readonly out: number;

  constructor(
    private readonly x: OpusExports,
    private readonly lib: OpusWasm,
    s: OpusSettings,
  ) {
    this.sampleRate = s.sampleRate;
    this.frameSamples = frameSamples(s);
    this.st = x.malloc(x.opus_encoder_get_size(1));
    this.pcm = x.malloc(this.frameSamples * 2);
    this.out = x.malloc(MAX_PACKET);
    const rc = x.opus_encoder_init(this.st, s.sampleRate, 1, CTL.APPLICATION_VOIP);
    if (rc < 0) {
      this.close();
      throw lib.error(rc);
    }
    x.opus_encoder_ctl_set(this.st, CTL.SET_BITRATE, s.bitrate);
    x.opus_encoder_ctl_set(this.st, CTL.SET_COMPLEXITY, s.complexity);
    x.opus_encoder_ctl_set(this.st, CTL.SET_SIGNAL, CTL.SIGNAL_VOICE);
    this.lookahead = x.opus_encoder_ctl_get(this.st, CTL.GET_LOOKAHEAD);
  }

  encode(pcm: Int16Array): Uint8Array {
    if (pcm.length !== this.frameSamples) throw new RangeError(`encoder needs ${this.frameSamples} samples, got ${pcm.length}`);
    new Int16Array(this.x.memory.buffer, this.pcm, this.frameSamples).set(pcm);
    const n = this.x.opus_encode(this.st, this.pcm, this.frameSamples, this.out, MAX_PACKET);
    if (n < 0) throw this.lib.error(n);
    return new Uint8Array(this.x.memory.buffer, this.out, n).slice();
  }

  close(): void {
    if (!this.st) return;
    this.x.free(this.st);
    this.x.free(this.pcm);
    this.x.free(this.out);
    this.st = 0;
  }
}

class WasmDecoder implements FrameDecoder {
  readonly backend = 'wasm';
  readonly sampleRate: number;
  readonly frameSamples: number;
  private st: number;
  private readonly pkt: number;
  private readonly pcm: number;

  constructor(
    private readonly x: OpusExports,
    private readonly lib: OpusWasm,
    s: Pick<OpusSettings, 'sampleRate' | 'frameMs'>,
  ) {
    this.sampleRate = s.sampleRate;
    this.frameSamples = frameSamples(s);
    this.st = x.malloc(x.opus_decoder_get_size(1));
    this.pkt = x.malloc(MAX_PACKET);
    this.pcm = x.malloc(MAX_FRAME_SAMPLES * 2);
    const rc = x.opus_decoder_init(this.st, s.sampleRate, 1);
    if (rc < 0) {
      this.close();
      throw lib.error(rc);
    }
  }

  decode(frame: Uint8Array): Int16Array {
    checkFrame(frame, this.sampleRate, this.frameSamples);
    new Uint8Array(this.x.memory.buffer, this.pkt, frame.length).set(frame);
    return this.run(this.pkt, frame.length, MAX_FRAME_SAMPLES);
  }

  conceal(): Int16Array {
    return this.run(0, 0, this.frameSamples);
  }

  private run(data: number, len: number, max: number): Int16Array {
    const n = this.x.opus_decode(this.st, data, len, this.pcm, max, 0);
    if (n < 0) throw this.lib.error(n);
    return new Int16Array(this.x.memory.buffer, this.pcm, n).slice();
  }

  close(): void {
    if (!this.st) return;
    this.x.free(this.st);
    this.x.free(this.pkt);
    this.x.free(this.pcm);
    this.st = 0;
  }
}
