import t from 'tap';
import { appendFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { SerialPortMock } from 'serialport';
import { Emitter } from '../../gateway/shared/core/emitter.js';
import { Cm108Cos, cm108InputBit } from '../../gateway/src/radio/cos/cm108.js';
import { SerialCos } from '../../gateway/src/radio/cos/serial.js';
import { ChardevCos, SysfsCos } from '../../gateway/src/radio/cos/gpio.js';
import { VoxCos } from '../../gateway/src/radio/cos/vox.js';
import type { ModemStatus, PortFactory, SerialLike } from '../../gateway/src/radio/serial.js';
import type { AudioIn, AudioInEvents, CarrierDetect } from '../../gateway/src/radio/types.js';
import { sine } from '../helpers/audio.js';
import { fakeGpioClass, fakeGpioTools, fakeSysfs, readOr, sleep, tempDir, waitFor } from './helpers.js';

function record(c: CarrierDetect) {
  const ev: boolean[] = [];
  const faults: string[] = [];
  c.on('carrier', (o) => ev.push(o));
  c.on('fault', (e) => faults.push(e.message));
  return { ev, faults };
}

t.test('CM108 input report bits', async (t) => {
  t.equal(cm108InputBit(Uint8Array.of(0x02, 0, 0, 0), 0, 1), true, 'Volume Down = COS');
  t.equal(cm108InputBit(Uint8Array.of(0x01, 0, 0, 0), 0, 1), false);
  t.equal(cm108InputBit(Uint8Array.of(0x01, 0, 0, 0), 0, 0), true, 'Volume Up = CTCSS');
});

t.test('CM108 COS over a FIFO: parsed reports, debounce, invert, device gone', async (t) => {
  const fifo = path.join(tempDir(t), 'hidraw0');
  execFileSync('mkfifo', [fifo]);
  // The chip's side: a writer process we feed 4-byte input reports.
  const writer = spawn('sh', ['-c', `cat > ${fifo}`], { stdio: ['pipe', 'ignore', 'ignore'] });
  const cos = new Cm108Cos({ device: fifo, bit: 1, byte: 0, reportBytes: 4, invert: false, debounceMs: 40 });
  const r = record(cos);
  await cos.start();
  const send = (...reports: number[][]) => writer.stdin.write(Buffer.from(reports.flat()));
  send([0x02, 0, 0, 0]);
  await waitFor(() => r.ev.length === 1, 2000, 'carrier open');
  t.same(r.ev, [true]);
  t.equal(cos.carrier, true);
  // Chatter shorter than the debounce never reaches the bridge; two reports in one read are both parsed.
  send([0, 0, 0, 0], [0x02, 0, 0, 0]);
  await sleep(40);
  send([0x03, 0, 0]);
  send([0]);
  await sleep(100);
  t.same(r.ev, [true], 'no events from chatter or a report split across reads');
  send([0x01, 0, 0, 0]);
  await waitFor(() => r.ev.length === 2, 2000, 'carrier closed');
  t.same(r.ev, [true, false]);
  send([0x02, 0, 0, 0]);
  await waitFor(() => r.ev.length === 3, 2000);
  writer.stdin.end();
  await waitFor(() => r.faults.length === 1, 2000, 'fault on end');
  t.match(r.faults[0], /input ended/);
  t.same(r.ev, [true, false, true, false], 'a lost input reports carrier closed');
  await cos.close();
  await t.rejects(new Cm108Cos({ device: path.join(path.dirname(fifo), 'nope'), bit: 1, byte: 0, reportBytes: 4, invert: false, debounceMs: 0 }).start(), /gone \(unplugged\?\)/);
});

t.test('CM108 COS inverted', async (t) => {
  const fifo = path.join(tempDir(t), 'hidraw1');
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('sh', ['-c', `cat > ${fifo}`], { stdio: ['pipe', 'ignore', 'ignore'] });
  const cos = new Cm108Cos({ device: fifo, bit: 1, byte: 0, reportBytes: 4, invert: true, debounceMs: 0 });
  const r = record(cos);
  await cos.start();
  writer.stdin.write(Buffer.from([0x02, 0, 0, 0, 0, 0, 0, 0]));
  await waitFor(() => r.ev.length === 1, 2000);
  t.same(r.ev, [true], 'bit low = carrier when inverted');
  await cos.close();
  writer.kill();
});

t.test('CM108 COS: a silent input closes at once, a FIFO without a writer too; a non-hidraw node is refused', async (t) => {
  const dir = tempDir(t);
  for (const withWriter of [true, false]) {
    const fifo = path.join(dir, `hidraw-silent-${withWriter}`);
    execFileSync('mkfifo', [fifo]);
    const writer = withWriter ? spawn('sh', ['-c', `exec cat > ${fifo}`], { stdio: ['pipe', 'ignore', 'ignore'] }) : null;
    t.teardown(() => writer?.kill('SIGKILL'));
    const cos = new Cm108Cos({ device: fifo, bit: 1, byte: 0, reportBytes: 4, invert: false, debounceMs: 0 });
    const r = record(cos);
    await cos.start();
    await sleep(100);
    // Read through the event loop (epoll), not a pool thread: nothing is left waiting in read().
    const at = performance.now();
    await cos.close();
    t.ok(performance.now() - at < 50, `closed in ${Math.round(performance.now() - at)} ms (${withWriter ? 'writer silent' : 'no writer'})`);
    t.same(r.faults, [], 'no fault from a silent input');
  }
  await t.rejects(new Cm108Cos({ device: '/dev/null', bit: 1, byte: 0, reportBytes: 4, invert: false, debounceMs: 0 }).start(), /\/dev\/null is not a hidraw device \(it is mem\)/);
});

t.test('serial CTS/DCD COS through the mock binding', async (t) => {
  SerialPortMock.binding.reset();
  SerialPortMock.binding.createPort('/dev/ttyCOS0', { echo: false });
  let status: ModemStatus = { cts: false, dsr: false, dcd: false };
  let failing = false;
  const factory: PortFactory = (o) => {
    const p = new SerialPortMock({ path: o.path, baudRate: o.baudRate, autoOpen: false }) as unknown as SerialLike;
    p.get = (cb) => setImmediate(() => (failing ? cb(new Error('Input/output error, cannot get')) : cb(null, { ...status })));
    return p;
  };
  const cos = new SerialCos({ device: '/dev/ttyCOS0', line: 'dcd', pollMs: 10, invert: false, debounceMs: 20, factory });
  const r = record(cos);
  await cos.start();
  status = { cts: true, dsr: false, dcd: false };
  await sleep(80);
  t.same(r.ev, [], 'CTS is not the configured line');
  status = { cts: false, dsr: false, dcd: true };
  await waitFor(() => r.ev.length === 1, 2000);
  failing = true;
  await waitFor(() => r.faults.length === 1, 2000);
  await sleep(60);
  t.equal(r.faults.length, 1, 'reported once per outage');
  t.match(r.faults[0], /cannot get/);
  t.same(r.ev, [true, false]);
  await cos.close();
});

t.test('sysfs GPIO COS: numbering from the chip base, edges through onoff', async (t) => {
  const root = tempDir(t);
  fakeSysfs(root, [{ label: 'pinctrl-rp1', base: 571, ngpio: 54 }]);
  const Gpio = fakeGpioClass(root);
  const cos = new SysfsCos({ line: 27, sysfsRoot: root, Gpio, invert: true, debounceMs: 0 });
  const r = record(cos);
  await cos.start();
  const g = Gpio.made[0]!;
  t.equal(g.n, 598);
  t.same([g.direction, g.edge], ['in', 'both']);
  t.same(r.ev, [true], 'line reads 0 at start: inverted, so carrier');
  g.watchers[0]!(null, 1);
  g.watchers[0]!(null, 0);
  g.watchers[0]!(Object.assign(new Error('EIO'), { code: 'EIO' }), 0);
  t.same(r.ev, [true, false, true, false]);
  t.match(r.faults[0], /GPIO 598/);
  await cos.close();
});

t.test('libgpiod COS: gpiomon edges (v1 and v2 codes), initial level, monitor restart', async (t) => {
  for (const major of [1, 2] as const) {
    const dir = tempDir(t);
    const bin = path.join(dir, 'bin');
    const state = path.join(dir, 'state');
    const g = fakeGpioTools(bin, state, major, 'gpiochip0 [pinctrl-rp1] (54 lines)');
    writeFileSync(path.join(state, 'gpiochip0-27'), '1\n');
    const tools = { gpioset: `${bin}/gpioset`, gpioget: `${bin}/gpioget`, gpiomon: `${bin}/gpiomon`, gpiodetect: `${bin}/gpiodetect` };
    const cos = new ChardevCos({ line: 27, bias: 'pull-up', tools, invert: false, debounceMs: 0, retryMs: 100 });
    const r = record(cos);
    await cos.start();
    t.same(r.ev, [true], `v${major}: initial level read`);
    appendFileSync(path.join(state, 'events'), major === 1 ? '0\n' : '2\n');
    await waitFor(() => r.ev.length === 2, 3000, 'falling edge');
    appendFileSync(path.join(state, 'events'), '1\n');
    await waitFor(() => r.ev.length === 3, 3000, 'rising edge');
    t.same(r.ev, [true, false, true]);
    const log = readOr(g.log);
    t.match(log, major === 1 ? /gpiomon --bias=pull-up --format=%e gpiochip0 27/ : /gpiomon -c gpiochip0 --bias pull-up --format=%e 27/);
    const pid = Number(
      execFileSync('pgrep', ['-f', `tail -n \\+1 -s 0.02 -f ${state}/events`])
        .toString()
        .trim()
        .split('\n')[0],
    );
    process.kill(pid, 'SIGTERM');
    await waitFor(() => r.faults.length === 1, 3000, 'monitor death reported');
    t.match(r.faults[0], /gpiomon exited/);
    await waitFor(() => (readOr(g.log).match(/gpiomon/g) ?? []).length === 2, 3000, 'monitor restarted');
    await waitFor(() => r.ev.at(-1) === true, 3000, 'level re-read after restart');
    await cos.close();
  }
});

/** An audio input fed by the test, for VOX. */
class FedAudio extends Emitter<AudioInEvents> implements AudioIn {
  readonly description = 'test feed';
  readonly state = 'running' as const;
  constructor(readonly sampleRate: number) {
    super();
  }
  async start() {}
  levels() {
    return { peakDb: 0, rmsDb: 0, clipped: 0, samples: 0 };
  }
  async close() {}
}

t.test('VOX: attack and hang counted in samples', async (t) => {
  const audio = new FedAudio(16000);
  const vox = new VoxCos(audio, { thresholdDb: -30, attackMs: 60, hangMs: 600 });
  const r = record(vox);
  await vox.start();
  const loud = sine(800, 16000, 0.02, 0.3);
  const quiet = sine(800, 16000, 0.02, 0.001);
  const feed = (s: Int16Array, n: number) => {
    for (let i = 0; i < n; i++) audio.emit('data', s);
  };
  feed(loud, 2);
  feed(quiet, 1);
  feed(loud, 2);
  t.same(r.ev, [], '40 ms bursts stay below the 60 ms attack');
  feed(loud, 3);
  t.same(r.ev, [true], 'opens after 60 ms above threshold');
  feed(quiet, 29);
  t.same(r.ev, [true], 'holds through 580 ms of silence');
  feed(quiet, 1);
  t.same(r.ev, [true, false], 'closes at 600 ms');
  await vox.close();
  feed(loud, 10);
  t.same(r.ev, [true, false], 'no events after close');
});
