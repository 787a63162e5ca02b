/**
 * Chromium's fake microphone plays its WAV in a loop from the moment the page opens the
 * microphone, so an over recorded from it starts somewhere inside the file. This finds where (by
 * energy envelopes, against the file twice over) and returns exactly the stretch of the looping
 * file the microphone was playing, to be compared with envelopeCorrelation like any other over.
 */
import { envelope } from '../helpers/audio.js';

const HOP_MS = 5;

function pearsonAt(a: Float64Array, off: number, b: Float64Array): number {
  const n = b.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) (ma += a[off + i]!), (mb += b[i]!);
  ma /= n;
  mb /= n;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < n; i++) {
    const x = a[off + i]! - ma;
    const y = b[i]! - mb;
    num += x * y;
    da += x * x;
    db += y * y;
  }
  return da && db ? num / Math.sqrt(da * db) : -1;
}

/** The stretch of `ref` (looping) that best matches `test`, as long as test, at ref's rate. */
export function loopedReference(ref: Int16Array, refRate: number, test: Int16Array, testRate: number): { samples: Int16Array; offsetMs: number } {
  const twice = new Int16Array(ref.length * 3);
  twice.set(ref);
  twice.set(ref, ref.length);
  twice.set(ref, ref.length * 2);
  const a = envelope(twice, refRate);
  const b = envelope(test, testRate);
  const period = Math.floor(ref.length / ((refRate * HOP_MS) / 1000));
  if (b.length + period > a.length) throw new Error('over longer than twice the reference');
  let best = { r: -1, off: 0 };
  for (let off = 0; off < period; off++) {
    const r = pearsonAt(a, off, b);
    if (r > best.r) best = { r, off };
  }
  const start = Math.round((best.off * HOP_MS * refRate) / 1000);
  const len = Math.round((test.length * refRate) / testRate);
  return { samples: twice.slice(start, start + len), offsetMs: best.off * HOP_MS };
}
