/**
 * Builds drivers from resolved radio config by `type`. This is the only place that knows which
 * classes exist; the bridge and the CLI get the small interfaces from types.ts. Everything that
 * touches the OS (roots, executables, port class, onoff) comes in through `DriverDeps`.
 */
import type { Logger } from 'pino';
import { silentLog } from '../core/log.js';
import type { AudioConfig, CosConfig, ModuleConfig, PttConfig, ResolvedModule, ResolvedRadio } from './profiles.js';
import { type AudioIn, type AudioOut, type CarrierDetect, type Ptt, RadioError, type RadioModule } from './types.js';
import { type DeviceRoots, DEFAULT_ROOTS, autoHidraw } from './devices.js';
import type { PortFactory } from './serial.js';
import { type GpioCtor, SysfsPtt } from './ptt/gpio-sysfs.js';
import { ChardevPtt } from './ptt/gpio-chardev.js';
import { SerialPtt } from './ptt/serial.js';
import { Cm108Ptt } from './ptt/cm108.js';
import { CommandPtt } from './ptt/command.js';
import { NonePtt } from './ptt/none.js';
import { NoneCos } from './cos/base.js';
import { ChardevCos, SysfsCos } from './cos/gpio.js';
import { SerialCos } from './cos/serial.js';
import { Cm108Cos } from './cos/cm108.js';
import { VoxCos } from './cos/vox.js';
import { AlsaCapture, AlsaPlayback } from './audio/alsa.js';
import { FileAudioIn, FileAudioOut, NullAudioOut } from './audio/file.js';
import { Sa818, describeChannel } from './module/sa818.js';

export interface DriverDeps {
  log?: Logger;
  roots?: DeviceRoots;
  sysfsRoot?: string;
  serial?: PortFactory;
  Gpio?: GpioCtor;
  bash?: string;
  arecord?: string;
  aplay?: string;
}

async function hidPath(device: string, deps: DriverDeps): Promise<string> {
  if (device !== 'auto') return device;
  const found = await autoHidraw(deps.roots ?? DEFAULT_ROOTS);
  if (!found) throw new RadioError('no CM108-family or AIOC USB interface found (device: auto); plug it in or name /dev/hidrawN (see talkbridge devices)');
  return found;
}

export async function createPtt(c: PttConfig, deps: DriverDeps = {}): Promise<Ptt> {
  const log = deps.log ?? silentLog;
  const bash = deps.bash ? { bash: deps.bash } : {};
  switch (c.type) {
    case 'none':
      return new NonePtt(log);
    case 'gpio':
      if (c.api === 'sysfs') {
        return new SysfsPtt({
          line: c.line,
          activeLow: c.activeLow,
          watchdogMs: c.watchdogMs,
          log,
          ...bash,
          ...(c.chip ? { chipLabel: c.chip } : {}),
          ...(deps.sysfsRoot ? { sysfsRoot: deps.sysfsRoot } : {}),
          ...(deps.Gpio ? { Gpio: deps.Gpio } : {}),
        });
      }
      return new ChardevPtt({ line: c.line, activeLow: c.activeLow, watchdogMs: c.watchdogMs, log, ...bash, ...(c.chip ? { chipLabel: c.chip } : {}), tools: (deps.roots ?? DEFAULT_ROOTS).gpioTools });
    case 'serial':
      return new SerialPtt({ device: c.device, line: c.line, activeLow: c.activeLow, other: c.other, log, ...(deps.serial ? { factory: deps.serial } : {}) });
    case 'cm108':
      return new Cm108Ptt({ device: await hidPath(c.device, deps), gpio: c.gpio, activeLow: c.activeLow, watchdogMs: c.watchdogMs, log, ...bash });
    case 'command':
      return new CommandPtt({ key: c.key, unkey: c.unkey, timeoutMs: c.timeoutMs, watchdogMs: c.watchdogMs, log, ...bash });
  }
}

export async function createCos(c: CosConfig, audio: AudioIn | null, deps: DriverDeps = {}): Promise<CarrierDetect> {
  const log = deps.log ?? silentLog;
  switch (c.type) {
    case 'none':
      return new NoneCos(log);
    case 'gpio':
      if (c.api === 'sysfs')
        return new SysfsCos({
          line: c.line,
          invert: c.invert,
          debounceMs: c.debounceMs,
          log,
          ...(c.chip ? { chipLabel: c.chip } : {}),
          ...(deps.sysfsRoot ? { sysfsRoot: deps.sysfsRoot } : {}),
          ...(deps.Gpio ? { Gpio: deps.Gpio } : {}),
        });
      return new ChardevCos({ line: c.line, invert: c.invert, debounceMs: c.debounceMs, bias: c.bias, log, ...(c.chip ? { chipLabel: c.chip } : {}), tools: (deps.roots ?? DEFAULT_ROOTS).gpioTools });
    case 'serial':
      return new SerialCos({ device: c.device, line: c.line, pollMs: c.pollMs, invert: c.invert, debounceMs: c.debounceMs, log, ...(deps.serial ? { factory: deps.serial } : {}) });
    case 'cm108':
      return new Cm108Cos({ device: await hidPath(c.device, deps), bit: c.bit, byte: c.byte, reportBytes: c.reportBytes, invert: c.invert, debounceMs: c.debounceMs, log });
    case 'vox':
      if (!audio) throw new RadioError('cos type vox needs an audio input (audio.input)');
      return new VoxCos(audio, { thresholdDb: c.thresholdDb, attackMs: c.attackMs, hangMs: c.hangMs, log });
  }
}

/**
 * `periodMs`: how much audio each read delivers when the config does not set `periodFrames`
 * (default 20 ms). The daemon passes its packet time (capturePeriodMs in bridge/).
 */
export function createAudioIn(a: AudioConfig, deps: DriverDeps = {}, periodMs = 20): AudioIn | null {
  const log = deps.log ?? silentLog;
  const i = a.input;
  switch (i.type) {
    case 'none':
      return null;
    case 'alsa':
      return new AlsaCapture({
        device: i.device,
        sampleRate: a.sampleRate,
        gainDb: i.gainDb,
        log,
        periodFrames: i.periodFrames ?? Math.round((a.sampleRate * periodMs) / 1000),
        ...(i.bufferFrames ? { bufferFrames: i.bufferFrames } : {}),
        ...(deps.arecord ? { exe: deps.arecord } : {}),
      });
    case 'file':
      return new FileAudioIn({ path: i.path, sampleRate: a.sampleRate, loop: i.loop, gainDb: i.gainDb, log, frameMs: periodMs });
  }
}

export function createAudioOut(a: AudioConfig, deps: DriverDeps = {}): AudioOut {
  const log = deps.log ?? silentLog;
  const o = a.output;
  switch (o.type) {
    case 'null':
      return new NullAudioOut(a.sampleRate);
    case 'alsa':
      return new AlsaPlayback({
        device: o.device,
        sampleRate: a.sampleRate,
        gainDb: o.gainDb,
        log,
        ...(o.periodFrames ? { periodFrames: o.periodFrames } : {}),
        ...(o.bufferFrames ? { bufferFrames: o.bufferFrames } : {}),
        ...(deps.aplay ? { exe: deps.aplay } : {}),
      });
    case 'file':
      return new FileAudioOut({ path: o.path, sampleRate: a.sampleRate, gainDb: o.gainDb, log });
  }
}

export function createModule(m: ModuleConfig, deps: DriverDeps = {}): RadioModule | null {
  if (m.type === 'none') return null;
  return new Sa818({ port: m.port, baudRate: m.baudRate, log: deps.log ?? silentLog, ...(deps.serial ? { factory: deps.serial } : {}) });
}

/**
 * Tunes a radio's module to the channel its config names, before anything else of that radio
 * opens. A radio that may be on another channel than the config says must not go on the air, so a
 * failure ends the start (under systemd, Restart=on-failure tries again). The serial port is
 * closed afterwards: the module keeps its settings and the daemon has nothing more to say to it.
 */
export async function programModule(radio: string, m: ResolvedModule, deps: DriverDeps = {}): Promise<void> {
  if (m.type === 'none' || !m.settings) return;
  const log = deps.log ?? silentLog;
  const mod = createModule(m, deps)!;
  try {
    const steps = await mod.program(m.settings);
    const where = `${describeChannel(m.settings.channel)} (plan ${m.plan}, channel ${m.channel})`;
    log.info(
      { event: 'module', state: 'programmed', module: mod.description, plan: m.plan, channel: m.channel, steps: steps.map((x) => `${x.step}: ${x.detail}`) },
      `${mod.description} programmed to ${where}`,
    );
  } catch (err) {
    throw new RadioError(`radio ${radio}: ${mod.description} could not be programmed to plan ${m.plan} channel ${m.channel}, so the radio stays off the air: ${(err as Error).message}`);
  } finally {
    await mod.close();
  }
}

/** Finds a radio by name, or the only one. */
export function pickRadio(radios: ResolvedRadio[], name: string | undefined, source: string): ResolvedRadio {
  if (radios.length === 0) throw new RadioError(`${source} has no radios: add a radios: section (see docs/hardware.md)`);
  if (name !== undefined) {
    const r = radios.find((x) => x.name === name);
    if (!r) throw new RadioError(`no radio named "${name}" in ${source} (radios: ${radios.map((x) => x.name).join(', ')})`);
    return r;
  }
  if (radios.length > 1) throw new RadioError(`${source} has ${radios.length} radios (${radios.map((x) => x.name).join(', ')}): choose one with --radio NAME`);
  return radios[0]!;
}
