import t from 'tap';
import path from 'node:path';
import { createDecoder, createEncoder, loadOpusWasm } from '../../gateway/src/codec/opus-node.js';
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

t.test('native encoder → WASM decoder keeps the speech at ~16 kbit/s', async (t) => {
  const { enc, all, pcm, kbps } = await roundTrip('native');
  t.equal(enc.backend, 'native', 'the prebuilt native libopus loads on this platform');
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

t.test('a corrupt frame throws a plain error (the session conceals instead)', async (t) => {
  const dec = await createDecoder(settings);
  t.throws(() => dec.decode(Uint8Array.of(0xff, 0xff, 0xff, 0x03)), /opus/);
  t.throws(() => dec.decode(new Uint8Array(0)), RangeError);
  t.equal(dec.conceal().length, 320, 'still usable');
  const enc = await createEncoder(settings);
  t.throws(() => enc.encode(new Int16Array(100)), RangeError);
});
