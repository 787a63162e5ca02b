import t from 'tap';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig, ConfigError } from '../../gateway/src/config/load.js';
import { interfaceNames, loadInterface, loadPlan, planChannel, planNames, profileDirs } from '../../gateway/src/radio/profiles.js';
import { classifyHid, discover } from '../../gateway/src/radio/devices.js';
import { setGroupCommand } from '../../gateway/src/radio/module/sa818.js';
import { tempDir, writeExe } from './helpers.js';

const problems = (yaml: string, env: NodeJS.ProcessEnv = {}): string[] => {
  try {
    parseConfig(yaml, 'test.yaml', env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
};

t.test('every shipped interface profile and channel plan validates', async (t) => {
  t.same(interfaceNames(), ['aioc', 'cm108-uri', 'digirig', 'pi-gpio', 'sa818-hat']);
  t.same(planNames(), ['2m-simplex', 'pmr446', 'sar-vhf']);
  for (const n of interfaceNames()) t.equal(loadInterface(n).name, n, `interface ${n}`);
  for (const n of planNames()) {
    const p = loadPlan(n);
    t.equal(p.name, n);
    for (const c of p.channels) t.match(setGroupCommand(planChannel(p, c)), /^AT\+DMOSETGROUP=[01],\d{3}\.\d{4},\d{3}\.\d{4},\w{4},\d,\w{4}$/, `${n} channel ${c.number}`);
  }
  const aioc = loadInterface('aioc');
  t.same(aioc.ptt, { type: 'cm108', device: 'auto', gpio: 3, activeLow: false, watchdogMs: 150 });
  t.same(aioc.usb, [{ vid: '1209', pid: '7388' }]);
  const pmr = loadPlan('pmr446');
  t.same(planChannel(pmr, pmr.channels[0]!), { rxMHz: 446.00625, txMHz: 446.00625, rxTone: null, txTone: null, squelch: 2, bandwidth: 'narrow' });
});

t.test('existing configs stay valid: radios defaults to []', async (t) => {
  t.same(parseConfig('', 'x').radios, []);
  t.same(parseConfig('channels: [{name: ops}]\n', 'x').radios, []);
});

t.test('a radio names a profile and overrides what differs', async (t) => {
  const c = parseConfig(
    `radios:
  - name: handheld
    interface: aioc
    ptt: { device: /dev/hidraw3 }
    audio: { input: { gainDb: -3 } }
  - name: base
    interface: digirig
    ptt: { type: cm108, device: /dev/hidraw0 }
    cos: { thresholdDb: -45 }
`,
    'x',
  );
  const [h, b] = c.radios;
  t.same(h!.ptt, { type: 'cm108', device: '/dev/hidraw3', gpio: 3, activeLow: false, watchdogMs: 150 });
  t.same(h!.audio.input, { type: 'alsa', device: 'plughw:CARD=AllInOneCable,DEV=0', gainDb: -3 });
  t.same(h!.cos, { type: 'vox', thresholdDb: -38, attackMs: 60, hangMs: 600 });
  t.equal(h!.interface, 'aioc');
  t.same(b!.ptt, { type: 'cm108', device: '/dev/hidraw0', gpio: 3, activeLow: false, watchdogMs: 150 }, 'type changed: the serial fields are gone, not merged');
  t.same(b!.cos, { type: 'vox', thresholdDb: -45, attackMs: 60, hangMs: 600 });
  const bare = parseConfig('radios: [{ name: r1, ptt: { type: gpio, line: 22, activeLow: true } }]\n', 'x').radios[0]!;
  t.same(bare.ptt, { type: 'gpio', api: 'chardev', line: 22, activeLow: true, watchdogMs: 150 });
  t.same([bare.cos, bare.module, bare.audio.output, bare.audio.sampleRate], [{ type: 'none' }, { type: 'none' }, { type: 'null' }, 48000]);
});

t.test('radio config errors come back with their paths, all at once', async (t) => {
  t.same(problems('radios: [{ name: a, interface: nope }]\n'), [
    'radios[0].interface: unknown interface profile "nope" (available: aioc, cm108-uri, digirig, pi-gpio, sa818-hat)',
    'radios[0].ptt: required: name an interface profile or give ptt.type (none, gpio, serial, cm108, command)',
  ]);
  const p = problems(`radios:
  - name: a
    interface: pi-gpio
    ptt: { line: 99, colour: red }
    audio: { input: { device: "hw:0; reboot" } }
  - name: a
    ptt: { type: serial }
    cos: { type: cm108, bit: 9 }
  - name: "bad name!"
    ptt: { type: relay }
`);
  t.match(p.join('\n'), /radios\[0\]\.ptt\.line: .*63/);
  t.match(p.join('\n'), /radios\[0\]\.ptt: Unrecognized key: "colour"/);
  t.match(p.join('\n'), /radios\[0\]\.audio\.input\.device: must be an ALSA device name/);
  t.match(p.join('\n'), /radios\[1\]\.ptt\.device: /);
  t.match(p.join('\n'), /radios\[1\]\.cos\.bit: /);
  t.match(p.join('\n'), /radios\[2\]\.name: must be 1-32 letters/);
  t.match(p.join('\n'), /radios\[2\]\.ptt\.type: /);
  t.ok(p.length >= 7, `${p.length} problems reported together`);
  t.same(problems('radios: [{ name: a, ptt: { type: none } }, { name: a, ptt: { type: none } }]\n'), ['radios[1].name: radio name "a" is used twice']);
});

t.test('user profile directories come first; broken profiles say which file and field', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'interfaces'));
  mkdirSync(path.join(dir, 'plans'));
  writeFileSync(path.join(dir, 'interfaces/aioc.yaml'), 'name: aioc\ndescription: my AIOC on GPIO4\nptt: { type: cm108, gpio: 4 }\n');
  writeFileSync(path.join(dir, 'interfaces/broken.yaml'), 'name: broken\ndescription: x\nptt: { type: cm108, gpio: 12 }\n');
  writeFileSync(
    path.join(dir, 'plans/bad.yaml'),
    'name: bad\ndescription: x\nchannels:\n  - { number: 1, name: a, rx: 146.52, tx: 446.0 }\n  - { number: 2, name: b, rx: 520 }\n  - { number: 3, name: c, rx: 146.52, tone: 88.4 }\n',
  );
  writeFileSync(path.join(dir, 'plans/dup.yaml'), 'name: dup\ndescription: x\nchannels:\n  - { number: 1, name: a, rx: 146.52 }\n  - { number: 1, name: b, rx: 146.55 }\n');
  const env = { TALKBRIDGE_PROFILES: dir };
  const dirs = profileDirs(env);
  t.equal(loadInterface('aioc', dirs).ptt.type === 'cm108' && (loadInterface('aioc', dirs).ptt as { gpio: number }).gpio, 4);
  t.throws(() => loadInterface('broken', dirs), { message: new RegExp(`${dir}/interfaces/broken.yaml: ptt.gpio: `) });
  t.throws(() => loadInterface('../etc/passwd', dirs), /not a profile name/);
  let msg = '';
  try {
    loadPlan('bad', dirs);
  } catch (err) {
    msg = (err as Error).message;
  }
  t.match(msg, /channels\.0: RX 146\.52 MHz and TX 446 MHz are in different bands/);
  t.match(msg, /channels\.1: RX frequency 520 MHz is out of band/);
  t.match(msg, /channels\.2\.tone: 88\.4 Hz is not a standard CTCSS tone/);
  t.throws(() => loadPlan('dup', dirs), /channels\.1\.number: channel 1 appears twice/);
});

t.test('device discovery from a described machine', async (t) => {
  const root = tempDir(t);
  const proc = path.join(root, 'proc');
  const dev = path.join(root, 'dev');
  const sys = path.join(root, 'sys');
  mkdirSync(path.join(proc, 'asound/card0'), { recursive: true });
  mkdirSync(path.join(proc, 'asound/card1'), { recursive: true });
  writeFileSync(
    path.join(proc, 'asound/cards'),
    ' 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0\n                      vc4-hdmi-0\n 1 [Device         ]: USB-Audio - USB Audio Device\n                      C-Media Electronics Inc. USB Audio Device at usb-xhci-hcd.0-1, full speed\n',
  );
  for (const p of ['card0/pcm0p', 'card1/pcm0p', 'card1/pcm0c']) mkdirSync(path.join(proc, 'asound', p));
  mkdirSync(path.join(dev, 'serial/by-id'), { recursive: true });
  writeFileSync(path.join(dev, 'ttyUSB0'), '');
  writeFileSync(path.join(dev, 'ttyAMA0'), '');
  symlinkSync('../../ttyUSB0', path.join(dev, 'serial/by-id/usb-Silicon_Labs_CP2102N-if00-port0'));
  symlinkSync('ttyAMA0', path.join(dev, 'serial0'));
  const hid = (n: number, id: string, name: string) => {
    mkdirSync(path.join(sys, `class/hidraw/hidraw${n}/device`), { recursive: true });
    writeFileSync(path.join(sys, `class/hidraw/hidraw${n}/device/uevent`), `DRIVER=hid-generic\nHID_ID=${id}\nHID_NAME=${name}\n`);
  };
  hid(0, '0003:0000046D:0000C52B', 'Logitech USB Receiver');
  hid(1, '0003:00000D8C:00000012', 'C-Media Electronics Inc. USB Audio Device');
  hid(2, '0003:00001209:00007388', 'AIOC All-In-One-Cable');
  const bin = path.join(root, 'bin');
  writeExe(bin, 'gpiodetect', '#!/bin/sh\necho "gpiochip0 [pinctrl-rp1] (54 lines)"\necho "gpiochip10 [gpio-brcmstb@107d508500] (32 lines)"\n');
  const d = await discover({ proc, dev, sys, gpioTools: { gpioset: 'x', gpioget: 'x', gpiomon: 'x', gpiodetect: path.join(bin, 'gpiodetect') } });
  t.same(
    d.soundCards.map((c) => [c.alsa, c.capture, c.playback]),
    [
      ['plughw:CARD=vc4hdmi0,DEV=0', false, true],
      ['plughw:CARD=Device,DEV=0', true, true],
    ],
  );
  t.same(
    d.serialPorts.map((p) => path.relative(dev, p.path)),
    ['serial/by-id/usb-Silicon_Labs_CP2102N-if00-port0', 'serial0', 'ttyAMA0'],
  );
  t.same(
    d.hidraw.map((h) => [path.basename(h.path), `${h.vid}:${h.pid}`, h.kind]),
    [
      ['hidraw0', '046d:c52b', null],
      ['hidraw1', '0d8c:0012', 'cm108'],
      ['hidraw2', '1209:7388', 'aioc'],
    ],
  );
  t.same(
    d.gpioChips.map((c) => c.label),
    ['pinctrl-rp1', 'gpio-brcmstb@107d508500'],
  );
  t.equal(classifyHid('0d8c', '013c'), 'cm108-no-gpio');
  t.equal(classifyHid('0c76', '160b'), 'sss');

  const empty = await discover({
    proc: path.join(root, 'none'),
    dev: path.join(root, 'none'),
    sys: path.join(root, 'none'),
    gpioTools: { gpioset: 'x', gpioget: 'x', gpiomon: 'x', gpiodetect: path.join(root, 'no-gpiodetect') },
  });
  t.same([empty.soundCards, empty.serialPorts, empty.hidraw, empty.gpioChips], [[], [], [], []]);
  t.match(empty.notes[0], /not found: install the libgpiod tools/);
});
