import t from 'tap';
import path from 'node:path';
import { createDecoder, createEncoder, loadOpusWasm } from '../../gateway/src/codec/opus-node.js';
import { concealmentToc, frameProblem, tocFrameSamples } from '../../gateway/shared/codec/codec.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { FIXTURES } from '../helpers/cli.js';
import { envelopeCorrelation, rms } from '../helpers/audio.js';

const settings = { sampleRate: 16000 as const, frameMs: 20 as const, bitrate: 16000, complexity: 9 };

async function roundTrip(encBackend: 'native' | 'wasm') {
  const pcm = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const enc = encBackend === 'native' ? await createEncoder(settings) : (await loadOpusWasm()).createEncoder(settings);
  const dec = await createDecoder(settings);
  const out: Int16Array[] = [];
  let bytes = 0;
  for (const f of toFrames(pcm.samples, 320, 1)) {
    const pkt = enc.encode(f);
    bytes += pkt.length;
    out.push(dec.decode(pkt));
  }
  const all = new Int16Array(out.length * 320);
  out.forEach((o, i) => all.set(o, i * 320));
  return { enc, all, pcm, kbps: (bytes * 8) / (out.length * 20) };
}

t.test('native encoder → native decoder keeps the speech at ~16 kbit/s', async (t) => {
  const { enc, all, pcm, kbps } = await roundTrip('native');
  t.equal(enc.backend, 'native', 'the prebuilt native libopus loads on this platform');
  t.equal((await createDecoder(settings)).backend, 'native', 'and decodes too');
  t.equal(enc.lookahead, 104, '6.5 ms look-ahead at 16 kHz (VOIP)');
  t.ok(kbps > 10 && kbps < 20, `bitrate ${kbps.toFixed(1)} kbit/s`);
  t.ok(envelopeCorrelation(pcm.samples, 16000, all, 16000).r > 0.95);
});

t.test('the WASM encoder is a working fallback and matches the native one', async (t) => {
  const native = await roundTrip('native');
  const wasm = await roundTrip('wasm');
  t.equal(wasm.enc.backend, 'wasm');
  t.ok(Math.abs(wasm.kbps - native.kbps) < 1, `same bitrate (${wasm.kbps.toFixed(2)} vs ${native.kbps.toFixed(2)})`);
  t.ok(envelopeCorrelation(native.all, 16000, wasm.all, 16000).r > 0.98);
});

t.test('concealment gives exactly one frame that continues the signal, then decoding resumes', async (t) => {
  const enc = await createEncoder(settings);
  const dec = await createDecoder(settings);
  const tone = new Int16Array(320 * 20).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)));
  const frames = toFrames(tone, 320, 1).map((f) => enc.encode(f));
  for (let i = 0; i < 10; i++) dec.decode(frames[i]!);
  const plc = dec.conceal();
  t.equal(plc.length, 320, 'one 20 ms frame, not the 120 ms a bare binding gives');
  t.ok(rms(plc) > 1000, `concealment carries the tone on (rms ${rms(plc).toFixed(0)})`);
  const next = dec.decode(frames[11]!);
  t.equal(next.length, 320);
  t.ok(rms(next) > 3000, 'decoding resumes');
});

t.test('a corrupt or mis-sized frame throws a plain error, before or in libopus (the session conceals instead)', async (t) => {
  const wasm = await loadOpusWasm();
  const enc = await createEncoder(settings);
  const good = enc.encode(new Int16Array(320).map((_, i) => Math.round(8000 * Math.sin(i / 5))));
  for (const dec of [await createDecoder(settings), wasm.createDecoder(settings)]) {
    const b = dec.backend;
    t.equal(dec.decode(good).length, 320, `${b}: a good frame decodes`);
    t.throws(() => dec.decode(new Uint8Array(0)), RangeError, `${b}: empty`);
    t.throws(() => dec.decode(new Uint8Array(1501).fill(0x48)), RangeError, `${b}: longer than any packet`);
    // One 60 ms SILK frame, and two 20 ms frames in one packet, where the stream declared 20 ms frames.
    t.throws(() => dec.decode(Uint8Array.of(11 << 3, 1, 2, 3)), /opus packet of 60 ms in a stream of 20 ms frames/, `${b}: 60 ms frame`);
    t.throws(() => dec.decode(Uint8Array.of((9 << 3) | 1, 1, 2)), /40 ms/, `${b}: two frames`);
    t.throws(() => dec.decode(Uint8Array.of((9 << 3) | 3)), /without data/, `${b}: code 3 without its count`);
    // A code 3 header whose padding runs past the end: refused before libopus sees it.
    t.throws(() => dec.decode(Uint8Array.of((9 << 3) | 3, 0x41, 0xff, 0xff)), /padding/, `${b}: padding past the end`);
    t.throws(() => dec.decode(Uint8Array.of(9 << 3)), /without data/, `${b}: a TOC alone (libopus would conceal)`);
    t.equal(dec.conceal().length, 320, `${b}: still usable`);
    t.equal(dec.decode(good).length, 320, `${b}: and decodes again`);
  }
  t.throws(() => enc.encode(new Int16Array(100)), RangeError);
});

t.test('the TOC byte gives the frame length libopus will decode, and a concealment TOC has the frame length asked for', async (t) => {
  // RFC 6716 table 2: one config per mode, bandwidth and frame size.
  const ms = (config: number) => (tocFrameSamples(config << 3, 48000) * 1000) / 48000;
  t.same([0, 1, 2, 3].map(ms), [10, 20, 40, 60], 'SILK');
  t.same([12, 13, 14, 15].map(ms), [10, 20, 10, 20], 'hybrid');
  t.same([16, 17, 18, 19, 31].map(ms), [2.5, 5, 10, 20, 20], 'CELT');
  t.equal(tocFrameSamples((9 << 3) | 3, 16000), 320, 'the frame-count code bits do not change the frame length');
  for (const f of [2.5, 5, 10, 20, 40, 60] as const) {
    const toc = concealmentToc(f);
    t.equal(toc & 7, 0, `${f} ms: mono, one frame`);
    t.equal(tocFrameSamples(toc, 8000), (8000 * f) / 1000, `${f} ms`);
  }
});

t.test('native and WASM decoders conceal lost frames identically, at the codec rate and at 48 kHz', async (t) => {
  // The native binding has no opus_decode(NULL, 0, n); it conceals by decoding a TOC-only packet.
  // Both must give the same samples, through loss runs and back, or a kit on the WASM fallback
  // would sound different from one on the native library.
  const pcm = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const enc = await createEncoder(settings);
  const frames = toFrames(pcm.samples, 320, 1).map((f) => enc.encode(f));
  const lost = (i: number) => i % 7 === 3 || (i % 50 > 20 && i % 50 < 25) || i < 2;
  const wasm = await loadOpusWasm();
  for (const sampleRate of [16000, 48000] as const) {
    const n = await createDecoder({ sampleRate, frameMs: 20 });
    const w = wasm.createDecoder({ sampleRate, frameMs: 20 });
    t.equal(n.backend, 'native');
    t.equal(w.backend, 'wasm');
    let concealed = 0;
    let differ = 0;
    let energy = 0;
    for (let i = 0; i < frames.length; i++) {
      const a = lost(i) ? n.conceal() : n.decode(frames[i]!);
      const b = lost(i) ? w.conceal() : w.decode(frames[i]!);
      if (a.length !== sampleRate / 50 || b.length !== a.length) throw new Error(`frame ${i}: ${a.length} / ${b.length} samples`);
      for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) differ++;
      if (lost(i)) {
        concealed++;
        if (i > 2) energy += rms(a);
      }
    }
    t.ok(concealed > 30, `${concealed} frames concealed at ${sampleRate} Hz`);
    t.ok(energy / concealed > 100, 'the concealment carries the speech on, not silence');
    t.equal(differ, 0, `same samples from both decoders at ${sampleRate} Hz`);
  }
});

t.test('concealment before any packet is silence of one frame', async (t) => {
  const dec = await createDecoder({ sampleRate: 48000, frameMs: 40 });
  const plc = dec.conceal();
  t.equal(plc.length, 1920);
  t.equal(rms(plc), 0);
});

t.test('frameProblem passes every frame a real encoder makes and nothing libopus refuses', async (t) => {
  const pcm = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const wasm = await loadOpusWasm();
  let refusedGenuine = 0;
  for (const frameMs of [10, 20, 40, 60] as const) {
    const s = { ...settings, frameMs };
    const n = (16000 * frameMs) / 1000;
    const enc = await createEncoder(s);
    const frames = toFrames(pcm.samples, n, 1).map((f) => enc.encode(f));
    for (const f of frames) if (frameProblem(f, 16000, n) !== null) refusedGenuine++;
    // Mutated frames: whatever frameProblem lets through, both libopus builds decode without error.
    const decoders = [await createDecoder(s), wasm.createDecoder(s)];
    let seed = 7;
    const rnd = (k: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % k;
    let passed = 0;
    let refused = 0;
    for (let i = 0; i < 4000; i++) {
      const base = frames[rnd(frames.length)]!;
      let m = base.slice(0, Math.max(1, base.length - rnd(3) * rnd(base.length)));
      if (rnd(2)) m[0] = (m[0]! & ~3) | rnd(4);
      if (rnd(2) && m.length > 1) m[1] = rnd(256);
      if (rnd(3) === 0) m = Uint8Array.from({ length: 1 + rnd(40) }, () => rnd(256));
      if (frameProblem(m, 16000, n) !== null) {
        refused++;
        continue;
      }
      passed++;
      for (const d of decoders) {
        try {
          d.decode(m);
        } catch (err) {
          t.fail(`${d.backend} refused a frame that passed: ${Buffer.from(m).toString('hex')} (${(err as Error).message})`);
        }
      }
    }
    t.ok(passed > 100 && refused > 100, `${frameMs} ms: ${passed} mutated frames passed and decoded, ${refused} refused`);
  }
  t.equal(refusedGenuine, 0, 'no frame a real encoder made is refused');
});
