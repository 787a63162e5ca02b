/**
 * Chromium's fake microphone plays its WAV in a loop from the moment the page opens the
 * microphone, so an over recorded from it starts somewhere inside the file. This finds where (by
 * energy envelopes, against the file twice over) and returns exactly the stretch of the looping
 * file the microphone was playing, to be compared with envelopeCorrelation like any other over.
 */
import type { Test } from 'tap';
import { readWav } from '../../gateway/src/audio/wav.js';
import { envelope, envelopeCorrelation } from '../helpers/audio.js';

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

/**
 * For an over recorded from the looping fake microphone on a loaded machine: the capture and the
 * listener's jitter buffer can slip the timeline by tens of milliseconds mid-over, which a single
 * alignment scores as a mismatch although every second of speech arrived intact. Scores each 1 s
 * window at its own best alignment within ±150 ms of where the previous one was found (starting
 * from the best alignment of the whole over), and returns the mean and the
 * worst window; wrong or missing audio still scores low in the windows it spoils.
 */
export function windowedLoopCorrelation(ref: Int16Array, refRate: number, test: Int16Array, testRate: number): { mean: number; worst: number } {
  const thrice = new Int16Array(ref.length * 3);
  for (let i = 0; i < 3; i++) thrice.set(ref, ref.length * i);
  const a = envelope(thrice, refRate);
  const b = envelope(test, testRate);
  const W = 1000 / HOP_MS;
  const SLIP = 150 / HOP_MS;
  const period = Math.floor(ref.length / ((refRate * HOP_MS) / 1000));
  // Anchored where the whole over fits best (as loopedReference), then each window may slip a
  // little from where the previous one was found.
  let global = { r: -1, off: 0 };
  for (let o = 0; o < period && o + b.length <= a.length; o++) {
    const r = pearsonAt(a, o, b);
    if (r > global.r) global = { r, off: o };
  }
  const rs: number[] = [];
  let off = global.off;
  for (let s = 0; s + W <= b.length; s += W) {
    const win = b.subarray(s, s + W);
    let best = { r: -1, off: 0 };
    for (let o = Math.max(0, off - SLIP); o <= off + SLIP && o + W <= a.length; o++) {
      const r = pearsonAt(a, o, win);
      if (r > best.r) best = { r, off: o };
    }
    rs.push(best.r);
    off = best.off + W;
  }
  return { mean: rs.reduce((x, y) => x + y, 0) / Math.max(1, rs.length), worst: Math.min(...rs) };
}

/**
 * What a browser → `listen` test checks of the listener: a clean exit, the web talker named, every
 * packet arrived (on a loaded CI machine a few may come after their playout time), an over about as
 * long as the button was held, and the looping microphone file in it, scored per second (one
 * alignment over the whole over scored 0.73 for intact speech in a loaded CI run, where the fake
 * microphone's loop point shifted it).
 */
export async function checkHeardFromWeb(t: Test, r: { code: number | null; stdout: string; stderr: string }, recording: string, reference: string, heldS: [min: number, max: number]): Promise<void> {
  t.equal(r.code, 0, `listen exits 0 (${r.stderr.trim()})`);
  t.match(r.stdout, /over 1: Ann \(web\)/, 'listen names the web talker');
  const pk = /packets (\d+) received \/ (\d+) lost \/ (\d+) late/.exec(r.stdout);
  t.ok(pk && Number(pk[2]) === 0 && Number(pk[1]) >= 0.95 * (Number(pk[1]) + Number(pk[3])), `none lost, ≥ 95 % played in time (${pk?.[0]})`);
  const ref = await readWav(reference);
  const got = await readWav(recording);
  const secs = got.samples.length / got.sampleRate;
  t.ok(secs > heldS[0] && secs < heldS[1], `over lasts about as long as the button was held (${secs.toFixed(2)} s)`);
  const mic = loopedReference(ref.samples, ref.sampleRate, got.samples, got.sampleRate);
  const one = envelopeCorrelation(mic.samples, ref.sampleRate, got.samples, got.sampleRate);
  const w = windowedLoopCorrelation(ref.samples, ref.sampleRate, got.samples, got.sampleRate);
  t.ok(
    w.mean >= 0.85,
    `envelope correlation per second ${w.mean.toFixed(3)} ≥ 0.85, worst second ${w.worst.toFixed(3)} (${one.r.toFixed(3)} at one alignment; the microphone was ${mic.offsetMs} ms into its file)`,
  );
}
