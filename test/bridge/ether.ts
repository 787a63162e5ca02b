/**
 * A simulated frequency for bridge tests: radios that share one channel of "RF". A keyed radio's
 * transmitted audio reaches every other radio's receiver and opens their carrier detect; a handheld
 * can transmit on it too. The bridge only ever sees its small driver interfaces (radio/types.ts),
 * so this stands exactly where the hardware drivers stand.
 *
 * A carrier is not instant on real radios: the transmitter needs time to key up (PLL lock, power
 * ramp) and the receiver's squelch to open — tens of milliseconds, which is why gateways have a TX
 * delay at all. Other radios' carrier detect opens `keyUpMs` after a radio keys (40 ms here, at the
 * quick end of real sets); it closes as soon as the transmitter unkeys.
 */
import { Emitter } from '../../gateway/shared/core/emitter.js';
import type { AudioOut, AudioOutEvents, AudioState, Ptt, PttEvents } from '../../gateway/src/radio/types.js';
import { FakeCapture, FakeCarrier, NO_LEVELS } from '../helpers/radio-fakes.js';

const RATE = 48000;
const BLOCK = 960; // 20 ms

export class Ether {
  readonly radios: SimRadio[] = [];
  private handheld: Int16Array | null = null;
  private pos = 0;
  private timer: NodeJS.Timeout;
  private pending: NodeJS.Timeout | null = null;

  constructor(readonly keyUpMs = 40) {
    // Every 20 ms each receiver gets what is on the air (silence when nothing is).
    this.timer = setInterval(() => this.tick(), 20);
  }

  radio(name: string): SimRadio {
    const r = new SimRadio(name, this);
    this.radios.push(r);
    return r;
  }

  /** A handheld on the frequency transmits this audio (48 kHz). */
  transmit(pcm: Int16Array): void {
    this.handheld = pcm;
    this.pos = 0;
    this.update();
  }

  get busy(): boolean {
    return this.handheld !== null;
  }

  update(): void {
    const now = performance.now();
    const onAir = (o: SimRadio) => o.ptt.keyed && now - o.ptt.keyedAt >= this.keyUpMs;
    for (const r of this.radios) r.cos.set(this.handheld !== null || this.radios.some((o) => o !== r && onAir(o)));
    // A transmitter still keying up comes on the air later.
    const next = Math.min(...this.radios.filter((o) => o.ptt.keyed && !onAir(o)).map((o) => o.ptt.keyedAt + this.keyUpMs));
    if (this.pending) clearTimeout(this.pending);
    this.pending = Number.isFinite(next) ? setTimeout(() => this.update(), Math.max(1, Math.ceil(next - now))) : null;
  }

  private tick(): void {
    let block: Int16Array | null = null;
    if (this.handheld) {
      block = this.handheld.slice(this.pos, this.pos + BLOCK);
      this.pos += BLOCK;
      if (this.pos >= this.handheld.length) {
        this.handheld = null;
        this.update();
      }
    }
    for (const r of this.radios) {
      const fromOthers = this.radios.filter((o) => o !== r && o.ptt.keyed).map((o) => o.output.take());
      const mix = new Int16Array(BLOCK);
      for (const src of [block, ...fromOthers]) if (src) for (let i = 0; i < Math.min(BLOCK, src.length); i++) mix[i] = Math.max(-32768, Math.min(32767, mix[i]! + src[i]!));
      r.input.push(mix);
    }
    for (const r of this.radios) if (!r.ptt.keyed) r.output.take();
  }

  close(): void {
    clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
  }
}

class SimPtt extends Emitter<PttEvents> implements Ptt {
  keyed = false;
  keyedAt = 0;
  keyCount = 0;
  constructor(
    readonly description: string,
    private readonly ether: Ether,
  ) {
    super();
  }
  async open() {}
  async key() {
    if (!this.keyed) {
      this.keyCount++;
      this.keyedAt = performance.now();
    }
    this.keyed = true;
    this.emit('state', true);
    this.ether.update();
  }
  async unkey() {
    this.keyed = false;
    this.emit('state', false);
    this.ether.update();
  }
  async close() {
    await this.unkey();
  }
}

export class SimOut extends Emitter<AudioOutEvents> implements AudioOut {
  readonly description = 'simulated transmitter audio';
  readonly sampleRate = RATE;
  state: AudioState = 'running';
  private buf: Int16Array[] = [];
  written = 0;
  write(s: Int16Array) {
    if (this.state !== 'running') return false;
    this.buf.push(s);
    this.written += s.length;
    return true;
  }
  /** The next 20 ms of what was written (what goes out over the air). */
  take(): Int16Array {
    const out = new Int16Array(BLOCK);
    let o = 0;
    while (o < BLOCK && this.buf.length) {
      const b = this.buf[0]!;
      const n = Math.min(BLOCK - o, b.length);
      out.set(b.subarray(0, n), o);
      o += n;
      if (n === b.length) this.buf.shift();
      else this.buf[0] = b.subarray(n);
    }
    return out;
  }
  /** The USB card vanishes. */
  lose() {
    this.state = 'waiting';
    this.buf = [];
    this.emit('state', 'waiting', 'device gone');
  }
  async drain() {}
  levels() {
    return NO_LEVELS;
  }
  async close() {}
}

export class SimRadio {
  readonly ptt: SimPtt;
  readonly cos = new FakeCarrier('simulated squelch');
  readonly input = new FakeCapture(RATE, 'simulated receiver');
  readonly output = new SimOut();
  constructor(
    readonly name: string,
    ether: Ether,
  ) {
    this.ptt = new SimPtt(`simulated PTT ${name}`, ether);
  }
}
