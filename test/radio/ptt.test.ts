import t from 'tap';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SerialPortMock } from 'serialport';
import { Cm108Ptt, cm108Report } from '../../gateway/src/radio/ptt/cm108.js';
import { SysfsPtt } from '../../gateway/src/radio/ptt/gpio-sysfs.js';
import { ChardevPtt } from '../../gateway/src/radio/ptt/gpio-chardev.js';
import { SerialPtt } from '../../gateway/src/radio/ptt/serial.js';
import { CommandPtt } from '../../gateway/src/radio/ptt/command.js';
import { NonePtt } from '../../gateway/src/radio/ptt/none.js';
import type { ModemLines, PortFactory, SerialLike } from '../../gateway/src/radio/serial.js';
import type { Ptt } from '../../gateway/src/radio/types.js';
import { FIXTURES, ROOT } from '../helpers/cli.js';
import { type Teardown, fakeGpioClass, fakeGpioTools, fakeSysfs, guardProcesses, readOr, tempDir, waitFor } from './helpers.js';

const CHILD = path.join(FIXTURES, 'radio/ptt-child.mjs');
const IDLE3 = [0, 0, 0, 4, 0];
const KEY3 = [0, 0, 4, 4, 0];

function faults(p: Ptt) {
  const seen: Array<{ msg: string; unkeyed: boolean }> = [];
  p.on('fault', (e, unkeyed) => seen.push({ msg: e.message, unkeyed }));
  return seen;
}

/** Starts a separate talkbridge process that keys `cfg`, resolves once it is keyed. */
async function keyedChild(t: Teardown, cfg: object, mode: 'kill' | 'hang', extra: { sysfs?: string; path?: string } = {}): Promise<ChildProcess> {
  const env = { ...process.env, ...(extra.path ? { PATH: `${extra.path}:${process.env.PATH}` } : {}) };
  const child = spawn(process.execPath, [CHILD, JSON.stringify(cfg), mode, ...(extra.sysfs ? [extra.sysfs] : [])], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitFor(() => out.includes('keyed') || child.exitCode !== null, 10000, 'child to key');
  if (!out.includes('keyed')) throw new Error(`child failed: ${out}`);
  return child;
}

const bytes = (f: string) => [...readFileSync(f)];

/** Closed in teardown whatever happens in the test, so its guard goes with it (tempDir checks). */
function closing<P extends Ptt>(t: Teardown, ptt: P): P {
  t.teardown(() => ptt.close());
  return ptt;
}

/** A reader process, killed in teardown if the test did not. */
function reading(t: Teardown, args: string[]): ChildProcess {
  const p = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  return p;
}

t.test('CM108 report layout: [0, 0, data, mask, 0], GPIOn = bit n-1', async (t) => {
  t.same([...cm108Report(3, true)], KEY3);
  t.same([...cm108Report(3, false)], IDLE3);
  t.same([...cm108Report(4, true)], [0, 0, 8, 8, 0], 'AIOC PTT2 on GPIO4');
  t.same([...cm108Report(1, true)], [0, 0, 1, 1, 0]);
  t.throws(() => new Cm108Ptt({ device: '/dev/null', gpio: 9, activeLow: false, watchdogMs: 0 }), /1-8/);
});

t.test('CM108 over a FIFO: idle report on open, exact bytes for key and unkey', async (t) => {
  const dir = tempDir(t);
  const fifo = path.join(dir, 'hidraw0');
  execFileSync('mkfifo', [fifo]);
  const got: number[] = [];
  // A separate reader process: a blocking FIFO read inside node would pin a libuv thread.
  const reader = reading(t, ['cat', fifo]);
  reader.stdout!.on('data', (d: Buffer) => got.push(...d));
  const ptt = closing(t, new Cm108Ptt({ device: fifo, gpio: 3, activeLow: false, watchdogMs: 0 }));
  const states: boolean[] = [];
  ptt.on('state', (k) => states.push(k));
  await ptt.open();
  await waitFor(() => got.length >= 5);
  t.same(got, IDLE3, 'open drives the line idle first');
  await ptt.key();
  await waitFor(() => got.length >= 10);
  t.same(got.slice(5), KEY3);
  t.equal(ptt.keyed, true);
  await ptt.unkey();
  await ptt.close();
  await waitFor(() => got.length >= 20);
  t.same(got.slice(10), [...IDLE3, ...IDLE3], 'unkey, then close drives idle once more');
  t.same(states, [true, false]);
  reader.kill();
});

t.test('CM108 active-low inverts the data bit, not the mask', async (t) => {
  const dev = path.join(tempDir(t), 'hidraw1');
  writeFileSync(dev, '');
  const ptt = new Cm108Ptt({ device: dev, gpio: 3, activeLow: true, watchdogMs: 0 });
  await ptt.open();
  await ptt.key();
  await ptt.close();
  t.same(bytes(dev), [...KEY3, ...IDLE3, ...KEY3], 'idle = high, keyed = low, close = idle');
});

t.test('CM108 unplugged while keyed: fault reported, line known idle', async (t) => {
  const dev = path.join(tempDir(t), 'hidraw0');
  writeFileSync(dev, '');
  const ptt = new Cm108Ptt({ device: dev, gpio: 3, activeLow: false, watchdogMs: 0, presenceMs: 30 });
  const f = faults(ptt);
  await ptt.open();
  await ptt.key();
  unlinkSync(dev);
  await waitFor(() => f.length > 0);
  t.match(f[0]!.msg, /gone \(unplugged\?\)/);
  t.equal(f[0]!.unkeyed, true);
  t.equal(ptt.keyed, false);
  await t.rejects(ptt.key(), /gone/, 'keying a vanished card fails loudly');
  await ptt.close();
});

t.test('CM108 write error while keying: unkey attempted, fault says the state is unknown', async (t) => {
  const fifo = path.join(tempDir(t), 'hidraw0');
  execFileSync('mkfifo', [fifo]);
  const reader = reading(t, ['cat', fifo]);
  let n = 0;
  reader.stdout!.on('data', (d: Buffer) => (n += d.length));
  const ptt = closing(t, new Cm108Ptt({ device: fifo, gpio: 3, activeLow: false, watchdogMs: 0 }));
  const f = faults(ptt);
  await ptt.open();
  await waitFor(() => n >= 5);
  reader.kill();
  await new Promise((r) => reader.once('close', r));
  await t.rejects(ptt.key(), /cannot key/);
  t.equal(f.length, 1);
  t.equal(f[0]!.unkeyed, false, 'the recovery write failed too: not claimed idle');
  t.equal(ptt.keyed, false);
  await ptt.close();
});

t.test('CM108 SIGKILL of talkbridge while keyed: the guard writes the unkey report', async (t) => {
  const dev = path.join(tempDir(t), 'hidraw0');
  writeFileSync(dev, '');
  const child = await keyedChild(t, { type: 'cm108', device: dev, gpio: 3, activeLow: false, watchdogMs: 2000 }, 'kill');
  t.same(bytes(dev), [...IDLE3, ...KEY3]);
  child.kill('SIGKILL');
  await waitFor(() => bytes(dev).length >= 15, 5000, 'guard unkey');
  t.same(bytes(dev).slice(10), IDLE3, 'unkey report after the kill');
});

t.test('CM108 hung event loop: the guard unkeys after the watchdog time', async (t) => {
  const dev = path.join(tempDir(t), 'hidraw0');
  writeFileSync(dev, '');
  const child = await keyedChild(t, { type: 'cm108', device: dev, gpio: 3, activeLow: false, watchdogMs: 300 }, 'hang');
  const t0 = Date.now();
  await waitFor(() => bytes(dev).length >= 15, 5000, 'watchdog unkey');
  t.ok(Date.now() - t0 < 3000, 'within a few watchdog periods');
  t.same(bytes(dev).slice(10), IDLE3);
  t.equal(child.exitCode, null, 'talkbridge is still hung, the line is idle anyway');
});

t.test('CM108 SIGKILL of talkbridge while keyed and the device wedged: the guard gives up on its write and exits', async (t) => {
  // The device stops taking writes (a FIFO whose reader is gone blocks open(2) for good).
  const fifo = path.join(tempDir(t), 'hidraw0');
  execFileSync('mkfifo', [fifo]);
  const reader = reading(t, ['bash', '-c', 'exec 3<>"$1"; exec cat <&3', 'reader', fifo]);
  const child = await keyedChild(t, { type: 'cm108', device: fifo, gpio: 3, activeLow: false, watchdogMs: 2000 }, 'kill');
  await waitFor(() => guardProcesses(fifo).length > 0, 3000, 'the guard');
  reader.kill('SIGKILL');
  await new Promise((r) => reader.once('close', r));
  child.kill('SIGKILL');
  const t0 = Date.now();
  // Its idle write gets 1 s, and then 1 s to die of SIGKILL.
  await waitFor(() => guardProcesses(fifo).length === 0, 4000, 'the guard and its write to be gone');
  t.ok(Date.now() - t0 < 3000, `guard gone ${Date.now() - t0} ms after talkbridge`);
});

const PI_TREES: Array<[string, Array<{ label: string; base: number; ngpio: number }>, number]> = [
  [
    'Pi 4, kernel 6.6',
    [
      { label: 'pinctrl-bcm2711', base: 512, ngpio: 58 },
      { label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 },
    ],
    529,
  ],
  [
    'Pi 5, kernel 6.6',
    [
      { label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 },
      { label: 'gpio-brcmstb@107d508520', base: 544, ngpio: 15 },
      { label: 'pinctrl-rp1', base: 571, ngpio: 54 },
    ],
    588,
  ],
  [
    'Pi 5, kernel 6.1',
    [
      { label: 'pinctrl-rp1', base: 399, ngpio: 54 },
      { label: 'gpio-brcmstb@107d508500', base: 453, ngpio: 32 },
    ],
    416,
  ],
  ['Pi 3, old kernel', [{ label: 'pinctrl-bcm2835', base: 0, ngpio: 54 }], 17],
];

for (const [name, chips, want] of PI_TREES) {
  t.test(`sysfs PTT numbering from gpiochip base and label: ${name}`, async (t) => {
    const root = tempDir(t);
    fakeSysfs(root, chips);
    const Gpio = fakeGpioClass(root);
    const ptt = new SysfsPtt({ line: 17, activeLow: false, sysfsRoot: root, Gpio, watchdogMs: 0 });
    await ptt.open();
    t.equal(ptt.number, want);
    t.equal(Gpio.made[0]!.n, want);
    t.equal(Gpio.made[0]!.direction, 'low', 'exported straight into the idle level');
    await ptt.key();
    t.equal(readOr(Gpio.made[0]!.file).trim(), '1');
    await ptt.close();
    t.equal(readOr(Gpio.made[0]!.file).trim(), '0');
  });
}

t.test('sysfs PTT: no Pi chip → error naming what was found; active-low exports high', async (t) => {
  const root = tempDir(t);
  fakeSysfs(root, [{ label: 'some-expander', base: 496, ngpio: 16 }]);
  const ptt = new SysfsPtt({ line: 17, activeLow: true, sysfsRoot: root, Gpio: fakeGpioClass(root), watchdogMs: 0 });
  await t.rejects(ptt.open(), /no GPIO chip labelled pinctrl-rp1 or pinctrl-bcm2711 or pinctrl-bcm2835 .*some-expander base 496/);
  const root2 = tempDir(t);
  fakeSysfs(root2, [{ label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }]);
  const Gpio = fakeGpioClass(root2);
  const low = new SysfsPtt({ line: 27, activeLow: true, sysfsRoot: root2, Gpio, watchdogMs: 0 });
  await low.open();
  t.equal(Gpio.made[0]!.direction, 'high');
  await low.key();
  t.equal(readOr(Gpio.made[0]!.file).trim(), '0');
  await low.close();
  t.equal(readOr(Gpio.made[0]!.file).trim(), '1');
  await t.rejects(new SysfsPtt({ line: 60, activeLow: false, sysfsRoot: root2, Gpio, watchdogMs: 0 }).open(), /GPIO 60 does not exist/);
});

t.test('sysfs PTT: write fails while keying → recovered to idle and reported', async (t) => {
  const root = tempDir(t);
  fakeSysfs(root, [{ label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }]);
  const Gpio = fakeGpioClass(root);
  const ptt = new SysfsPtt({ line: 17, activeLow: false, sysfsRoot: root, Gpio, watchdogMs: 0 });
  const f = faults(ptt);
  await ptt.open();
  const g = Gpio.made[0]!;
  const orig = g.writeSync.bind(g);
  let once = true;
  g.writeSync = (v) => {
    if (once) {
      once = false;
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    }
    orig(v);
  };
  await t.rejects(ptt.key(), /cannot key.*GPIO 529/);
  t.same(f, [{ msg: f[0]!.msg, unkeyed: true }]);
  t.equal(readOr(g.file).trim(), '0');
  await ptt.close();
});

t.test('sysfs PTT SIGKILL while keyed: the guard writes the idle value', async (t) => {
  const root = tempDir(t);
  fakeSysfs(root, [{ label: 'pinctrl-rp1', base: 571, ngpio: 54 }]);
  const child = await keyedChild(t, { type: 'gpio', api: 'sysfs', line: 17, activeLow: false, watchdogMs: 2000 }, 'kill', { sysfs: root });
  const value = path.join(root, 'gpio588/value');
  t.equal(readOr(value).trim(), '1');
  child.kill('SIGKILL');
  await waitFor(() => readOr(value).trim() === '0', 5000, 'guard idle write');
  t.pass('line idle after SIGKILL');
});

for (const major of [1, 2] as const) {
  t.test(`chardev PTT (libgpiod ${major}.x tools): chip by label, exact gpioset lines, held by the guard`, async (t) => {
    const dir = tempDir(t);
    const bin = path.join(dir, 'bin');
    // Pi 5 before kernel 6.6.45: header GPIOs on gpiochip4.
    const g = fakeGpioTools(bin, path.join(dir, 'state'), major, 'gpiochip0 [gpio-brcmstb@107d508500] (32 lines)\ngpiochip4 [pinctrl-rp1] (54 lines)');
    const tools = { gpioset: `${bin}/gpioset`, gpioget: `${bin}/gpioget`, gpiomon: `${bin}/gpiomon`, gpiodetect: `${bin}/gpiodetect` };
    const ptt = closing(t, new ChardevPtt({ line: 17, activeLow: false, tools, watchdogMs: 2000 }));
    await ptt.open();
    t.equal(ptt.chip, 'gpiochip4');
    t.equal(g.level('gpiochip4', 17), '0');
    await ptt.key();
    t.equal(g.level('gpiochip4', 17), '1');
    await ptt.unkey();
    t.equal(g.level('gpiochip4', 17), '0');
    await ptt.close();
    const log = readOr(g.log).split('\n');
    const hold = major === 1 ? (v: number) => `gpioset --mode=signal gpiochip4 17=${v}` : (v: number) => `gpioset -c gpiochip4 17=${v}`;
    const once = major === 1 ? 'gpioset gpiochip4 17=0' : 'gpioset -c gpiochip4 -t 0 17=0';
    t.same(
      log.filter((l) => l.startsWith('gpioset') && !l.includes('--version')),
      [hold(0), hold(1), hold(0), hold(0), once],
      'idle held, keyed held, idle held; close: idle again, then a one-shot idle that outlives us',
    );
  });
}

t.test('chardev PTT: holder killed while keyed → fault reported, guard drives idle', async (t) => {
  const dir = tempDir(t);
  const bin = path.join(dir, 'bin');
  const g = fakeGpioTools(bin, path.join(dir, 'state'), 1);
  const tools = { gpioset: `${bin}/gpioset`, gpioget: `${bin}/gpioget`, gpiomon: `${bin}/gpiomon`, gpiodetect: `${bin}/gpiodetect` };
  const ptt = closing(t, new ChardevPtt({ line: 17, activeLow: false, tools, watchdogMs: 2000 }));
  const f = faults(ptt);
  await ptt.open();
  await ptt.key();
  const pid = Number(
    execFileSync('pgrep', ['-f', `${bin}/gpioset --mode=signal gpiochip0 17=1`])
      .toString()
      .trim()
      .split('\n')[0],
  );
  process.kill(pid, 'SIGTERM');
  await waitFor(() => f.length > 0, 5000, 'fault');
  t.match(f[0]!.msg, /process holding the line exited/);
  t.equal(f[0]!.unkeyed, true);
  t.equal(ptt.keyed, false);
  t.equal(g.level('gpiochip0', 17), '0');
  await ptt.close();
});

t.test('chardev PTT: line busy → key fails, state unknown is reported', async (t) => {
  const dir = tempDir(t);
  const bin = path.join(dir, 'bin');
  const state = path.join(dir, 'state');
  fakeGpioTools(bin, state, 1);
  const tools = { gpioset: `${bin}/gpioset`, gpioget: `${bin}/gpioget`, gpiomon: `${bin}/gpiomon`, gpiodetect: `${bin}/gpiodetect` };
  const ptt = closing(t, new ChardevPtt({ line: 17, activeLow: false, tools, watchdogMs: 2000 }));
  const f = faults(ptt);
  await ptt.open();
  writeFileSync(path.join(state, 'busy'), '');
  await t.rejects(ptt.key(), /cannot key the line: gpioset: error setting the GPIO line values: Device or resource busy/);
  t.equal(f.length, 1);
  t.equal(f[0]!.unkeyed, false);
  unlinkSync(path.join(state, 'busy'));
  await ptt.close();
  await t.rejects(new ChardevPtt({ line: 17, activeLow: false, tools: { ...tools, gpioset: `${bin}/nope` }, watchdogMs: 0 }).open(), /nope not found: install the libgpiod tools/);
});

t.test('chardev PTT SIGKILL while keyed: guard kills the holder and leaves the line idle', async (t) => {
  const dir = tempDir(t);
  const bin = path.join(dir, 'bin');
  const g = fakeGpioTools(bin, path.join(dir, 'state'), 1, 'gpiochip0 [pinctrl-rp1] (54 lines)');
  const child = await keyedChild(t, { type: 'gpio', api: 'chardev', line: 17, activeLow: false, watchdogMs: 2000 }, 'kill', { path: bin });
  t.equal(g.level('gpiochip0', 17), '1');
  child.kill('SIGKILL');
  await waitFor(() => readOr(g.log).includes('gpioset gpiochip0 17=0'), 5000, 'one-shot idle');
  t.equal(g.level('gpiochip0', 17), '0');
  await waitFor(
    () => {
      try {
        execFileSync('pgrep', ['-f', `${bin}/gpioset --mode=signal`]);
        return false;
      } catch {
        return true;
      }
    },
    3000,
    'holder gone',
  );
  t.pass('no gpioset left holding the line');
});

function mockFactory(calls: ModemLines[], opts: { failSet?: () => boolean } = {}): { factory: PortFactory; ports: SerialLike[] } {
  const ports: SerialLike[] = [];
  const factory: PortFactory = (o) => {
    const p = new SerialPortMock({ path: o.path, baudRate: o.baudRate, autoOpen: false, hupcl: o.hupcl }) as unknown as SerialLike;
    const set = p.set.bind(p);
    p.set = (lines, cb) => {
      calls.push({ ...lines });
      if (opts.failSet?.()) return void setImmediate(() => cb?.(new Error('Input/output error, cannot set')));
      set(lines, cb);
    };
    ports.push(p);
    return p;
  };
  return { factory, ports };
}

t.test('serial RTS PTT: both lines driven idle the moment the port opens, then key/unkey', async (t) => {
  SerialPortMock.binding.reset();
  SerialPortMock.binding.createPort('/dev/ttyPTT0', { echo: false, record: true });
  const calls: ModemLines[] = [];
  const { factory } = mockFactory(calls);
  const ptt = new SerialPtt({ device: '/dev/ttyPTT0', line: 'rts', activeLow: false, other: false, factory });
  await ptt.open();
  t.same(calls, [{ rts: false, dtr: false }], 'idle set before open() returns');
  await ptt.key();
  await ptt.unkey();
  await ptt.close();
  t.same(
    calls,
    [
      { rts: false, dtr: false },
      { rts: true, dtr: false },
      { rts: false, dtr: false },
      { rts: false, dtr: false },
    ],
    'close drives idle once more',
  );
});

t.test('serial DTR PTT (AIOC style) and active-low', async (t) => {
  SerialPortMock.binding.reset();
  SerialPortMock.binding.createPort('/dev/ttyPTT1', { echo: false });
  const calls: ModemLines[] = [];
  const { factory } = mockFactory(calls);
  const ptt = new SerialPtt({ device: '/dev/ttyPTT1', line: 'dtr', activeLow: true, other: false, factory });
  await ptt.open();
  await ptt.key();
  await ptt.close();
  t.same(calls, [
    { dtr: true, rts: false },
    { dtr: false, rts: false },
    { dtr: true, rts: false },
  ]);
  await t.rejects(new SerialPtt({ device: '/dev/ttyNOPE', line: 'rts', activeLow: false, other: false, factory }).open(), /ttyNOPE/);
});

t.test('serial PTT: set fails while keying → recovery to idle, fault; unplug → fault, unkeyed', async (t) => {
  SerialPortMock.binding.reset();
  SerialPortMock.binding.createPort('/dev/ttyPTT2', { echo: false });
  const calls: ModemLines[] = [];
  let fail = false;
  const { factory, ports } = mockFactory(calls, { failSet: () => fail && !(fail = false) });
  const ptt = new SerialPtt({ device: '/dev/ttyPTT2', line: 'rts', activeLow: false, other: false, factory });
  const f = faults(ptt);
  await ptt.open();
  fail = true;
  await t.rejects(ptt.key(), /cannot key.*cannot set/);
  t.same(calls.at(-1), { rts: false, dtr: false }, 'recovery drove idle');
  t.same(
    f.map((x) => x.unkeyed),
    [true],
  );
  await ptt.key();
  (ports[0] as unknown as { _disconnected(e: Error): void })._disconnected(new Error('device reports readiness to read but returned no data'));
  await waitFor(() => f.length === 2, 2000, 'disconnect fault');
  t.match(f[1]!.msg, /disconnected/);
  t.equal(f[1]!.unkeyed, true);
  t.equal(ptt.keyed, false);
  await t.rejects(ptt.key(), /gone/);
  await ptt.close();
});

t.test('command PTT: unkey on open, key/unkey commands, failures and time-outs recover', async (t) => {
  const f = path.join(tempDir(t), 'log');
  const ptt = new CommandPtt({ key: `echo key >> ${f}`, unkey: `echo unkey >> ${f}`, timeoutMs: 2000, watchdogMs: 0 });
  await ptt.open();
  t.equal(readOr(f), 'unkey\n');
  await ptt.key();
  await ptt.unkey();
  await ptt.close();
  t.equal(readOr(f), 'unkey\nkey\nunkey\nunkey\n', 'close runs unkey once more');

  const bad = new CommandPtt({ key: `echo key >> ${f}; echo relay board not found >&2; exit 3`, unkey: `echo unkey >> ${f}`, timeoutMs: 2000, watchdogMs: 0 });
  const fb = faults(bad);
  await bad.open();
  await t.rejects(bad.key(), /failed \(status 3\): relay board not found/);
  t.same(
    fb.map((x) => x.unkeyed),
    [true],
  );
  t.match(readOr(f), /key\nunkey\n$/, 'unkey command ran after the failed key');
  await bad.close();

  const slow = new CommandPtt({ key: 'sleep 5', unkey: 'true', timeoutMs: 200, watchdogMs: 0 });
  await slow.open();
  const t0 = Date.now();
  await t.rejects(slow.key(), /did not finish within 200 ms/);
  t.ok(Date.now() - t0 < 2000);
  await slow.close();
});

t.test('a slow unkey command after the transmit path stopped ticking: the guard beats meanwhile', async (t) => {
  const f = path.join(tempDir(t), 'log');
  // The playout's ticks were the heartbeat (Ptt.alive); the unkey command then takes 400 ms, longer
  // than the 150 ms watchdog: the guard's timer must beat until the line is idle.
  const ptt = closing(t, new CommandPtt({ key: `echo key >> ${f}`, unkey: `sleep 0.4; echo unkey >> ${f}`, timeoutMs: 2000, watchdogMs: 150 }));
  const fs = faults(ptt);
  await ptt.open();
  await ptt.key();
  const iv = setInterval(() => ptt.alive(40), 40);
  await new Promise((r) => setTimeout(r, 300));
  clearInterval(iv);
  await ptt.unkey();
  t.same(fs, [], 'no watchdog while the unkey command ran');
  t.match(readOr(f), /key\nunkey\n$/);
  await ptt.close();
});

t.test('command PTT SIGKILL while keyed: the guard runs the unkey command', async (t) => {
  const f = path.join(tempDir(t), 'log');
  const child = await keyedChild(t, { type: 'command', key: `echo key >> ${f}`, unkey: `echo unkey >> ${f}`, timeoutMs: 2000, watchdogMs: 2000 }, 'kill');
  t.equal(readOr(f), 'unkey\nkey\n');
  child.kill('SIGKILL');
  await waitFor(() => readOr(f) === 'unkey\nkey\nunkey\n', 5000, 'guard unkey');
  t.pass('unkeyed after SIGKILL');
});

t.test('none PTT and serialised calls', async (t) => {
  const ptt = new NonePtt();
  await t.rejects(ptt.key(), /not open/);
  await ptt.open();
  const states: boolean[] = [];
  ptt.on('state', (k) => states.push(k));
  await Promise.all([ptt.key(), ptt.unkey(), ptt.key(), ptt.unkey()]);
  t.same(states, [true, false, true, false], 'calls run in order, never interleaved');
  t.equal(ptt.keyed, false);
  await ptt.close();
  await t.rejects(ptt.open(), /closed/);
});
