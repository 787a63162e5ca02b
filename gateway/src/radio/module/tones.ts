/** CTCSS and DCS as SA818/DRA818 modules number them, plus the frequency rules they accept. */
import type { ModuleChannel, Tone } from '../types.js';

/** The standard 38 CTCSS tones; the module's code is the 1-based index (67.0 = 0001). */
export const CTCSS = [
  67.0, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8, 97.4, 100.0, 103.5, 107.2, 110.9, 114.8, 118.8, 123.0, 127.3, 131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 162.2, 167.9, 173.8, 179.9, 186.2,
  192.8, 203.5, 210.7, 218.1, 225.7, 233.6, 241.8, 250.3,
];

/** The 104 standard DCS codes (octal digits, written as decimal numbers). */
export const DCS = [
  23, 25, 26, 31, 32, 36, 43, 47, 51, 53, 54, 65, 71, 72, 73, 74, 114, 115, 116, 122, 125, 131, 132, 134, 143, 145, 152, 155, 156, 162, 165, 172, 174, 205, 212, 223, 225, 226, 243, 244, 245, 246, 251,
  252, 255, 261, 263, 265, 266, 271, 274, 306, 311, 315, 325, 331, 332, 343, 346, 351, 356, 364, 365, 371, 411, 412, 413, 423, 431, 432, 445, 446, 452, 454, 455, 462, 464, 465, 466, 503, 506, 516,
  523, 526, 532, 546, 565, 606, 612, 624, 627, 631, 632, 654, 662, 664, 703, 712, 723, 731, 732, 734, 743, 754,
];

export class ToneError extends Error {
  override name = 'ToneError';
}

export function ctcssCode(hz: number): string {
  const i = CTCSS.findIndex((t) => Math.abs(t - hz) < 0.05);
  if (i < 0) throw new ToneError(`${hz} Hz is not a standard CTCSS tone (67.0-250.3, e.g. 88.5, 100.0, 123.0)`);
  return String(i + 1).padStart(4, '0');
}

export function dcsCode(code: number, inverted: boolean): string {
  if (!DCS.includes(code)) throw new ToneError(`${String(code).padStart(3, '0')} is not a standard DCS code (e.g. 023, 754)`);
  return `${String(code).padStart(3, '0')}${inverted ? 'I' : 'N'}`;
}

export function toneCode(t: Tone): string {
  if (t === null) return '0000';
  return 'ctcss' in t ? ctcssCode(t.ctcss) : dcsCode(t.dcs, t.inverted);
}

/** The module's code back to a tone ("0000", "0008", "023N"). */
export function parseToneCode(code: string): Tone {
  const c = code.trim().toUpperCase();
  if (/^0+$/.test(c)) return null;
  const d = /^(\d{3})([NI])$/.exec(c);
  if (d) return { dcs: Number(d[1]), inverted: d[2] === 'I' };
  const n = Number(c);
  if (/^\d{1,4}$/.test(c) && n >= 1 && n <= CTCSS.length) return { ctcss: CTCSS[n - 1]! };
  throw new ToneError(`unknown tone code "${code}"`);
}

/** "88.5" → CTCSS; "023", "023N", "023I", "D023N" → DCS. */
export function parseDcs(s: string): Tone {
  const m = /^D?(\d{3})([NI])?$/i.exec(s.trim());
  if (!m) throw new ToneError(`DCS code must look like 023, 023N or 023I, got "${s}"`);
  const code = Number(m[1]);
  dcsCode(code, false);
  return { dcs: code, inverted: (m[2] ?? 'N').toUpperCase() === 'I' };
}

export function toneName(t: Tone): string {
  if (t === null) return 'none';
  return 'ctcss' in t ? `CTCSS ${t.ctcss.toFixed(1)} Hz` : `DCS ${String(t.dcs).padStart(3, '0')}${t.inverted ? 'I' : 'N'}`;
}

export const BANDS = [
  { name: 'VHF', lo: 134, hi: 174 },
  { name: 'UHF', lo: 400, hi: 480 },
];

/** Checks a frequency the module can tune and returns it formatted as the module wants (MHz, 4 decimals). */
export function moduleFreq(mhz: number, what: string): string {
  if (!Number.isFinite(mhz)) throw new ToneError(`${what} frequency is not a number`);
  const band = BANDS.find((b) => mhz >= b.lo && mhz <= b.hi);
  if (!band) throw new ToneError(`${what} frequency ${mhz} MHz is out of band: SA818/DRA818 modules cover ${BANDS.map((b) => `${b.lo}-${b.hi} MHz (${b.name})`).join(' or ')}`);
  const hz = Math.round(mhz * 1e6);
  if (hz % 5000 !== 0 && hz % 6250 !== 0) throw new ToneError(`${what} frequency ${mhz} MHz is not on a 5 kHz or 6.25 kHz channel step`);
  const units = Math.round(hz / 100);
  return `${Math.floor(units / 10000)}.${String(units % 10000).padStart(4, '0')}`;
}

export function bandOf(mhz: number): string | undefined {
  return BANDS.find((b) => mhz >= b.lo && mhz <= b.hi)?.name;
}

/** Validates a whole channel: both frequencies in one band (a module is VHF or UHF), tones known. */
export function checkChannel(c: ModuleChannel): void {
  moduleFreq(c.rxMHz, 'RX');
  moduleFreq(c.txMHz, 'TX');
  if (bandOf(c.rxMHz) !== bandOf(c.txMHz)) throw new ToneError(`RX ${c.rxMHz} MHz and TX ${c.txMHz} MHz are in different bands; a module covers one`);
  toneCode(c.rxTone);
  toneCode(c.txTone);
  if (!Number.isInteger(c.squelch) || c.squelch < 0 || c.squelch > 8) throw new ToneError(`squelch must be 0-8, got ${c.squelch}`);
}
