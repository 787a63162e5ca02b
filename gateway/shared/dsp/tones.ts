/**
 * Generated audio for the transmitter: Morse (CW) station identification, which licensed services
 * require, and the courtesy tone that tells the far end an over has ended.
 */

const MORSE: Record<string, string> = {
  A: '.-',
  B: '-...',
  C: '-.-.',
  D: '-..',
  E: '.',
  F: '..-.',
  G: '--.',
  H: '....',
  I: '..',
  J: '.---',
  K: '-.-',
  L: '.-..',
  M: '--',
  N: '-.',
  O: '---',
  P: '.--.',
  Q: '--.-',
  R: '.-.',
  S: '...',
  T: '-',
  U: '..-',
  V: '...-',
  W: '.--',
  X: '-..-',
  Y: '-.--',
  Z: '--..',
  '0': '-----',
  '1': '.----',
  '2': '..---',
  '3': '...--',
  '4': '....-',
  '5': '.....',
  '6': '-....',
  '7': '--...',
  '8': '---..',
  '9': '----.',
  '/': '-..-.',
  '-': '-....-',
  '.': '.-.-.-',
  '?': '..--..',
};

export function morse(text: string): string {
  return text
    .toUpperCase()
    .split(/\s+/)
    .filter(Boolean)
    .map((w) =>
      [...w]
        .map((c) => MORSE[c] ?? '')
        .filter(Boolean)
        .join(' '),
    )
    .join(' / ');
}

/** A tone burst with 5 ms raised-cosine edges (no key clicks on the air). */
function burst(out: Float32Array, at: number, n: number, freq: number, amp: number, rate: number): void {
  const ramp = Math.min(Math.round(rate * 0.005), n >> 1);
  for (let i = 0; i < n && at + i < out.length; i++) {
    const edge = i < ramp ? 0.5 - 0.5 * Math.cos((Math.PI * i) / ramp) : i >= n - ramp ? 0.5 - 0.5 * Math.cos((Math.PI * (n - i)) / ramp) : 1;
    out[at + i] = amp * edge * Math.sin((2 * Math.PI * freq * i) / rate);
  }
}

/**
 * PCM for a CW message at `wpm` words per minute (PARIS timing: a dot is 1200/wpm ms).
 * Returns float samples (±1 full scale).
 */
export function cw(text: string, rate: number, o: { wpm?: number; freq?: number; amplitudeDb?: number } = {}): Float32Array {
  const dot = Math.round((rate * 1.2) / (o.wpm ?? 20));
  const amp = 10 ** ((o.amplitudeDb ?? -12) / 20);
  const code = morse(text);
  let units = 0;
  for (const c of code) units += c === '.' ? 2 : c === '-' ? 4 : c === ' ' ? 2 : c === '/' ? 2 : 0;
  const out = new Float32Array(units * dot + dot);
  let at = 0;
  for (const c of code) {
    if (c === '.' || c === '-') {
      const len = (c === '.' ? 1 : 3) * dot;
      burst(out, at, len, o.freq ?? 800, amp, rate);
      at += len + dot;
    } else {
      at += 2 * dot; // with the trailing gap: 3 units between letters, 7 between words
    }
  }
  return out.subarray(0, Math.max(at, 1));
}

/** A short two-note "roger" tone. */
export function courtesyTone(rate: number, o: { amplitudeDb?: number } = {}): Float32Array {
  const amp = 10 ** ((o.amplitudeDb ?? -14) / 20);
  const n = Math.round(rate * 0.08);
  const out = new Float32Array(n * 2);
  burst(out, 0, n, 1200, amp, rate);
  burst(out, n, n, 900, amp, rate);
  return out;
}
