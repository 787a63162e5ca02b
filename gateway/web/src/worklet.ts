/**
 * The audio thread. Two processors:
 *  - tb-capture: microphone → 16 kHz → 20 ms Int16 frames posted to the main thread while armed
 *    (push-to-talk held), plus the input level for the meter.
 *  - tb-playback: 16 kHz frames from the main thread → the context's rate → speakers, through the
 *    Playout queue; reports the output level, and, when the page runs under test, copies what it
 *    renders back so a test can compare what was really played.
 * Messages in: capture {type:'arm'} {type:'disarm'}; playback {type:'pcm', pcm} {type:'start'}
 * {type:'end'} {type:'clear'} {type:'tap', on}. Messages out: {type:'frame', pcm} {type:'flushed'}
 * {type:'level', rms, peak} {type:'tap', samples} {type:'stats', ...}.
 */
import { Framer, StreamResampler } from './resampler.js';
import { toFloat } from '../../shared/dsp/stage.js';
import { PLAYOUT_DEFAULTS, Playout } from './playout.js';

const CODEC_RATE = 16000;
const FRAME_SAMPLES = 320;
/** Level reports per second (the meter redraws at most this often). */
const LEVEL_HZ = 20;

class Level {
  private sum = 0;
  private peak = 0;
  private n = 0;
  private readonly every = Math.round(sampleRate / LEVEL_HZ);

  add(x: Float32Array, n: number, port: MessagePort): void {
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      this.sum += v * v;
      const a = v < 0 ? -v : v;
      if (a > this.peak) this.peak = a;
    }
    this.n += n;
    if (this.n >= this.every) {
      port.postMessage({ type: 'level', rms: Math.sqrt(this.sum / this.n), peak: this.peak });
      this.sum = this.peak = this.n = 0;
    }
  }
}

class CaptureProcessor extends AudioWorkletProcessor {
  private armed = false;
  private readonly rs = new StreamResampler(sampleRate, CODEC_RATE, 1024);
  private readonly framer = new Framer(FRAME_SAMPLES);
  private readonly mono = new Float32Array(1024);
  private readonly out = new Float32Array(this.rs.maxOut(1024));
  private readonly level = new Level();

  constructor() {
    super();
    this.port.onmessage = (e: MessageEvent<{ type: string }>) => {
      if (e.data.type === 'arm') {
        this.rs.reset();
        this.framer.reset();
        this.armed = true;
      } else if (e.data.type === 'disarm') {
        if (this.armed) {
          const last = this.framer.flush();
          if (last) this.port.postMessage({ type: 'frame', pcm: last }, [last.buffer]);
        }
        this.armed = false;
        this.port.postMessage({ type: 'flushed' });
      }
    };
  }

  process(inputs: Float32Array[][]): boolean {
    const chans = inputs[0];
    if (!this.armed || !chans || chans.length === 0) return true;
    const n = Math.min(chans[0]!.length, this.mono.length);
    if (chans.length === 1) this.mono.set(chans[0]!.subarray(0, n));
    else {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (const c of chans) s += c[i]!;
        this.mono[i] = s / chans.length;
      }
    }
    this.level.add(this.mono, n, this.port);
    const m = this.rs.process(this.mono, n, this.out);
    this.framer.push(this.out, m, (pcm) => this.port.postMessage({ type: 'frame', pcm }, [pcm.buffer]));
    return true;
  }
}

class PlaybackProcessor extends AudioWorkletProcessor {
  private readonly rs = new StreamResampler(CODEC_RATE, sampleRate, 2048);
  private readonly tmpIn = new Float32Array(2048);
  private readonly tmpOut = new Float32Array(this.rs.maxOut(2048));
  private readonly q = new Playout({ rate: sampleRate, ...PLAYOUT_DEFAULTS });
  private readonly level = new Level();
  private tap = false;
  private tapping = false;
  private overActive = false;

  constructor() {
    super();
    this.port.onmessage = (e: MessageEvent<{ type: string; pcm?: Int16Array; on?: boolean }>) => {
      const m = e.data;
      if (m.type === 'pcm' && m.pcm) {
        const pcm = m.pcm;
        for (let o = 0; o < pcm.length; o += this.tmpIn.length) {
          const n = Math.min(this.tmpIn.length, pcm.length - o);
          toFloat(pcm, this.tmpIn, n, o);
          const k = this.rs.process(this.tmpIn, n, this.tmpOut);
          this.q.push(this.tmpOut, k, currentFrame);
        }
      } else if (m.type === 'start') {
        this.rs.reset();
        this.overActive = true;
        this.tapping = this.tap;
      } else if (m.type === 'end') {
        this.overActive = false;
        this.q.end();
        this.report();
      } else if (m.type === 'clear') {
        this.q.clear();
        this.overActive = false;
      } else if (m.type === 'tap') {
        this.tap = Boolean(m.on);
      }
    };
  }

  private report(): void {
    this.port.postMessage({ type: 'stats', underruns: this.q.underruns, dropped: this.q.dropped, marginMs: (this.q.margin / sampleRate) * 1000, queuedMs: (this.q.queued / sampleRate) * 1000 });
  }

  process(_inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const out = outputs[0];
    if (!out || out.length === 0) return true;
    const ch0 = out[0]!;
    const n = ch0.length;
    const real = this.q.render(ch0, n, currentFrame);
    for (let c = 1; c < out.length; c++) out[c]!.set(ch0);
    if (real > 0) this.level.add(ch0, n, this.port);
    if (this.tapping) {
      // From the over's start until it has drained: what the listener hears, gaps included.
      this.port.postMessage({ type: 'tap', samples: ch0.slice(0, n) });
      if (!this.overActive && this.q.queued === 0 && !this.q.playing) this.tapping = false;
    }
    return true;
  }
}

registerProcessor('tb-capture', CaptureProcessor);
registerProcessor('tb-playback', PlaybackProcessor);
