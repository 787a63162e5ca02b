/** Peak / RMS metering and gain for 16-bit PCM. */
import type { Levels } from '../types.js';

export const dbfs = (x: number): number => (x > 0 ? 20 * Math.log10(x / 32768) : -Infinity);

/** Accumulates samples between two reads of the meter. */
export class LevelMeter {
  private peak = 0;
  private sumSq = 0;
  private n = 0;
  private clipped = 0;

  add(s: Int16Array): void {
    let peak = this.peak;
    let sum = 0;
    let clipped = 0;
    for (let i = 0; i < s.length; i++) {
      const v = s[i]!;
      const a = v < 0 ? -v : v;
      if (a > peak) peak = a;
      if (v >= 32767 || v <= -32768) clipped++;
      sum += v * v;
    }
    this.peak = peak;
    this.sumSq += sum;
    this.n += s.length;
    this.clipped += clipped;
  }

  take(): Levels {
    const l: Levels = { peakDb: dbfs(this.peak), rmsDb: this.n ? dbfs(Math.sqrt(this.sumSq / this.n)) : -Infinity, clipped: this.clipped, samples: this.n };
    this.peak = this.sumSq = this.n = this.clipped = 0;
    return l;
  }
}

export function rmsDb(s: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < s.length; i++) sum += s[i]! * s[i]!;
  return s.length ? dbfs(Math.sqrt(sum / s.length)) : -Infinity;
}

/** Applies a gain in dB in place, saturating instead of wrapping. 0 dB leaves the samples alone. */
export function applyGain(s: Int16Array, gainDb: number): Int16Array {
  if (gainDb === 0) return s;
  const g = 10 ** (gainDb / 20);
  for (let i = 0; i < s.length; i++) {
    const v = Math.round(s[i]! * g);
    s[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return s;
}

// Every Pi (and x86) is little-endian, as the sound cards' S16_LE is: the bytes are the samples and
// one block copy converts a period, instead of a call per sample on the audio path.
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Little-endian bytes → samples, keeping an odd trailing byte for the next chunk. */
export class PcmAssembler {
  private carry: Buffer | null = null;

  push(d: Buffer): Int16Array {
    const buf = this.carry ? Buffer.concat([this.carry, d]) : d;
    const even = buf.length & ~1;
    this.carry = even < buf.length ? Buffer.from(buf.subarray(even)) : null;
    const out = new Int16Array(even / 2);
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(buf.subarray(0, even));
    else for (let i = 0; i < out.length; i++) out[i] = buf.readInt16LE(i * 2);
    return out;
  }

  reset(): void {
    this.carry = null;
  }
}

export function toBytes(s: Int16Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(new Uint8Array(s.buffer, s.byteOffset, s.length * 2));
  const b = Buffer.alloc(s.length * 2);
  for (let i = 0; i < s.length; i++) b.writeInt16LE(s[i]!, i * 2);
  return b;
}
