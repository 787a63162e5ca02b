/**
 * WAV (RIFF) reading and writing for 16-bit PCM. The reader walks chunks defensively: a file that
 * lies about its sizes, is truncated, or holds another sample format gets a clear error, never a
 * crash or garbage audio.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { UserError } from '../core/errors.js';

export interface Pcm {
  sampleRate: number;
  /** Mono samples (multi-channel input is averaged). */
  samples: Int16Array;
}

export class WavError extends UserError {
  override name = 'WavError';
}

export function parseWav(buf: Uint8Array, name = 'WAV'): Pcm {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (o: number) => String.fromCharCode(buf[o]!, buf[o + 1]!, buf[o + 2]!, buf[o + 3]!);
  if (buf.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new WavError(`${name}: not a WAV file (no RIFF/WAVE header)`);
  let fmt: { format: number; channels: number; rate: number; bits: number } | null = null;
  let data: Uint8Array | null = null;
  let o = 12;
  while (o + 8 <= buf.length) {
    const id = tag(o);
    const size = v.getUint32(o + 4, true);
    const start = o + 8;
    // A streaming writer may leave the data size at 0 or 0xFFFFFFFF: take what is there.
    const end = Math.min(buf.length, start + size);
    if (id === 'fmt ') {
      if (size < 16 || start + 16 > buf.length) throw new WavError(`${name}: fmt chunk truncated`);
      let format = v.getUint16(start, true);
      if (format === 0xfffe && size >= 40 && start + 26 <= buf.length) format = v.getUint16(start + 24, true);
      fmt = { format, channels: v.getUint16(start + 2, true), rate: v.getUint32(start + 4, true), bits: v.getUint16(start + 14, true) };
    } else if (id === 'data') {
      data = buf.subarray(start, end);
      if (size === 0 || size === 0xffffffff) data = buf.subarray(start);
      break;
    }
    o = start + size + (size & 1);
  }
  if (!fmt) throw new WavError(`${name}: no fmt chunk`);
  if (!data) throw new WavError(`${name}: no data chunk`);
  if (fmt.format !== 1) throw new WavError(`${name}: sample format ${fmt.format} is not PCM; convert to 16-bit PCM (e.g. sox in.wav -b 16 out.wav)`);
  if (fmt.bits !== 16) throw new WavError(`${name}: ${fmt.bits}-bit samples; talkbridge reads 16-bit PCM (sox in.wav -b 16 out.wav)`);
  if (fmt.channels < 1 || fmt.channels > 8) throw new WavError(`${name}: ${fmt.channels} channels`);
  if (fmt.rate < 4000 || fmt.rate > 192000) throw new WavError(`${name}: sample rate ${fmt.rate} Hz out of range`);
  const frames = Math.floor(data.length / (2 * fmt.channels));
  if (frames === 0) throw new WavError(`${name}: no audio in data chunk`);
  const dv = new DataView(data.buffer, data.byteOffset, frames * 2 * fmt.channels);
  const samples = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    let acc = 0;
    for (let c = 0; c < fmt.channels; c++) acc += dv.getInt16((i * fmt.channels + c) * 2, true);
    samples[i] = Math.round(acc / fmt.channels);
  }
  return { sampleRate: fmt.rate, samples };
}

export async function readWav(path: string): Promise<Pcm> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WavError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? (err as Error).message)}`);
  }
  return parseWav(buf, path);
}

export function wavHeader(sampleRate: number, dataBytes: number): Uint8Array {
  const h = new Uint8Array(44);
  const v = new DataView(h.buffer);
  const put = (o: number, s: string) => [...s].forEach((c, i) => (h[o + i] = c.charCodeAt(0)));
  put(0, 'RIFF');
  v.setUint32(4, 36 + dataBytes, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, 1, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * 2, true);
  v.setUint16(32, 2, true);
  v.setUint16(34, 16, true);
  put(36, 'data');
  v.setUint32(40, dataBytes, true);
  return h;
}

export function encodeWav(p: Pcm): Uint8Array {
  const bytes = p.samples.length * 2;
  const out = new Uint8Array(44 + bytes);
  out.set(wavHeader(p.sampleRate, bytes));
  const v = new DataView(out.buffer, 44);
  for (let i = 0; i < p.samples.length; i++) v.setInt16(i * 2, p.samples[i]!, true);
  return out;
}

export async function writeWav(path: string, p: Pcm): Promise<void> {
  await writeFile(path, encodeWav(p));
}
