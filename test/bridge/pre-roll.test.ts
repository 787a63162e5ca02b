/**
 * The start of an over from the radio is not lost to the carrier debounce: the bridge keeps the
 * idle capture, unprocessed, and sends from the carrier's edge once the debounce confirms it.
 * Real carrier-detect policy (CosBase, 40 ms debounce), a real bridge, a real Mosquitto and a real
 * listener decoding the over; the capture is paced like a sound card (20 ms blocks in real time).
 */
import t from 'tap';
import { pino } from 'pino';
import { startMosquitto } from '../helpers/brokers.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { Bridge } from '../../gateway/src/bridge/bridge.js';
import { BridgeSchema } from '../../gateway/src/bridge/schema.js';
import { CosBase } from '../../gateway/src/radio/cos/base.js';
import { NonePtt } from '../../gateway/src/radio/ptt/none.js';
import { Emitter } from '../../gateway/shared/core/emitter.js';
import type { AudioIn, AudioInEvents, AudioState } from '../../gateway/src/radio/types.js';
import { SimOut } from './ether.js';

const RATE = 48000;
const BLOCK = 960;

class Line extends CosBase {
  constructor() {
    super('test carrier line', { invert: false, debounceMs: 40 });
  }
  protected async startInput(): Promise<void> {}
  protected async closeInput(): Promise<void> {}
  level(level: boolean): void {
    this.input(level);
  }
}

class Card extends Emitter<AudioInEvents> implements AudioIn {
  readonly description = 'paced test capture';
  readonly sampleRate = RATE;
  state: AudioState = 'running';
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  levels() {
    return { peakDb: -Infinity, rmsDb: -Infinity, clipped: 0, samples: 0 };
  }
  push(b: Int16Array): void {
    this.emit('data', b);
  }
}

/** Magnitude of one frequency in a block (Goertzel), relative to full scale. */
function tone(pcm: Int16Array, rate: number, hz: number): number {
  const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const x of pcm) {
    const s = x / 32768 + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return Math.sqrt(s1 * s1 + s2 * s2 - k * s1 * s2) / (pcm.length / 2);
}

t.test('the first 30 ms of an over (before the 40 ms carrier debounce confirms it) reach the channel', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const open = (name: string) => openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'pre', name, sender: name, source: 'radio', silenceMs: 1000 });
  const gw = await open('gw');
  t.teardown(() => gw.close());
  const listener = await open('listener');
  t.teardown(() => listener.close());
  const heard: Int16Array[] = [];
  let rate = 0;
  listener.session.on('audio', (a) => {
    heard.push(a.pcm);
    rate = a.sampleRate;
  });
  const overEnded = new Promise<void>((r) => listener.session.on('overEnd', () => r()));

  const line = new Line();
  const card = new Card();
  const bridge = new Bridge({
    radio: { name: 'r', ptt: new NonePtt(), cos: line, input: card, output: new SimOut() },
    transmit: gw.session,
    monitor: [],
    encoder: await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 }),
    frameMs: 20,
    framesPerPacket: 2,
    config: BridgeSchema.parse({ rxAudio: { agc: false } }),
    log: pino({ level: 'silent' }),
  });
  await bridge.start();
  t.teardown(() => bridge.stop());

  // 600 ms of silence, then the marker: 30 ms at 500 Hz, then 970 ms at 2 kHz, then silence. The
  // carrier line rises with the marker's first sample and falls with its last.
  const lead = 30;
  const blocks = 40;
  const signal = new Int16Array(BLOCK * blocks);
  const on = 30 * BLOCK;
  for (let i = 0; i < 48 * 1000; i++) signal[on + i] = Math.round(12000 * Math.sin((2 * Math.PI * (i < 48 * lead ? 500 : 2000) * i) / RATE));
  const t0 = performance.now();
  for (let b = 0; b < blocks; b++) {
    // A card delivers a block once its last sample is in: block b at (b + 1) × 20 ms. The line is
    // a separate input and changes at the moment of the sample it marks.
    const due = t0 + (b + 1) * 20;
    while (performance.now() < due) await new Promise((r) => setTimeout(r, 1));
    if (b === on / BLOCK - 1) line.level(true);
    card.push(signal.slice(b * BLOCK, (b + 1) * BLOCK));
    if (b === (on + 48 * 1000) / BLOCK - 1) line.level(false);
  }
  await Promise.race([overEnded, new Promise((r) => setTimeout(r, 3000))]);
  t.ok(heard.length > 0, 'the over reached the listener');
  const all = new Int16Array(heard.reduce((n, p) => n + p.length, 0));
  heard.reduce((o, p) => (all.set(p, o), o + p.length), 0);
  // Where the marker starts in what was heard: the first 5 ms window with either tone in it.
  const win = rate / 200;
  let onset = -1;
  for (let i = 0; i + win <= all.length; i += win) {
    const w = all.subarray(i, i + win);
    if (tone(w, rate, 500) > 0.05 || tone(w, rate, 2000) > 0.05) {
      onset = i;
      break;
    }
  }
  t.ok(onset >= 0, 'the marker was heard');
  const first = all.subarray(onset, onset + (rate * 20) / 1000);
  const low = tone(first, rate, 500);
  const high = tone(first, rate, 2000);
  t.ok(low > 0.1 && low > 2 * high, `the over starts with the 500 Hz lead-in (500 Hz ${low.toFixed(3)}, 2 kHz ${high.toFixed(3)} of full scale)`);
  t.ok((onset * 1000) / rate <= 45, `and at most the margin before it (${((onset * 1000) / rate).toFixed(0)} ms of silence first)`);
});
