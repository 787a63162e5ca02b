/**
 * What is plugged in, in the terms a config needs: ALSA card ids, serial by-id paths, hidraw nodes
 * with USB ids (CM108 family and AIOC flagged), GPIO chips with labels. Every root is injectable
 * so tests describe a machine with a directory tree; a missing tree just means "none found".
 */
import { readFile, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { type CharChip, DEFAULT_GPIO_TOOLS, type GpioTools, type SysfsChip, charChips, sysfsChips } from './gpio.js';

export interface DeviceRoots {
  proc: string;
  dev: string;
  sys: string;
  gpioTools: GpioTools;
}

export const DEFAULT_ROOTS: DeviceRoots = { proc: '/proc', dev: '/dev', sys: '/sys', gpioTools: DEFAULT_GPIO_TOOLS };

export interface SoundCard {
  index: number;
  id: string;
  name: string;
  capture: boolean;
  playback: boolean;
  /** What to write in the config. */
  alsa: string;
}

export interface SerialPortInfo {
  path: string;
  target: string;
}

export interface HidDevice {
  path: string;
  vid: string;
  pid: string;
  name: string;
  kind: 'aioc' | 'cm108' | 'cm108-no-gpio' | 'sss' | null;
}

export interface Devices {
  soundCards: SoundCard[];
  serialPorts: SerialPortInfo[];
  hidraw: HidDevice[];
  gpioChips: CharChip[];
  sysfsGpio: SysfsChip[];
  notes: string[];
}

const list = (dir: string) => readdir(dir).catch(() => [] as string[]);
const text = (file: string) => readFile(file, 'utf8').catch(() => null);

/** USB ids of CM108-family GPIO-capable chips (direwolf cm108.h) and the AIOC. */
export function classifyHid(vid: string, pid: string): HidDevice['kind'] {
  const v = vid.toLowerCase();
  const p = pid.toLowerCase();
  if (v === '1209' && p === '7388') return 'aioc';
  if (v === '0d8c') {
    const n = parseInt(p, 16);
    if ((n >= 0x08 && n <= 0x0f) || ['0012', '0013', '0139', '013a'].includes(p)) return 'cm108';
    if (p === '013c') return 'cm108-no-gpio';
  }
  if (v === '0c76' && ['1605', '1607', '160b'].includes(p)) return 'sss';
  return null;
}

export async function soundCards(roots: DeviceRoots = DEFAULT_ROOTS): Promise<SoundCard[]> {
  const cards = await text(path.join(roots.proc, 'asound/cards'));
  if (!cards) return [];
  const out: SoundCard[] = [];
  for (const l of cards.split('\n')) {
    const m = /^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*)$/.exec(l);
    if (!m) continue;
    const index = Number(m[1]);
    const pcms = await list(path.join(roots.proc, `asound/card${index}`));
    out.push({
      index,
      id: m[2]!,
      name: m[3]!.replace(/^.*? - /, '').trim(),
      capture: pcms.some((p) => /^pcm\d+c$/.test(p)),
      playback: pcms.some((p) => /^pcm\d+p$/.test(p)),
      alsa: `plughw:CARD=${m[2]},DEV=0`,
    });
  }
  return out;
}

export async function serialPorts(roots: DeviceRoots = DEFAULT_ROOTS): Promise<SerialPortInfo[]> {
  const out: SerialPortInfo[] = [];
  const byId = path.join(roots.dev, 'serial/by-id');
  const covered = new Set<string>();
  for (const n of (await list(byId)).sort()) {
    const p = path.join(byId, n);
    const target = await realpath(p).catch(async () => path.resolve(byId, await readlink(p).catch(() => n)));
    covered.add(target);
    out.push({ path: p, target });
  }
  // Ports without a by-id link (the Pi's own UART) still matter for SA818 hats.
  for (const n of (await list(roots.dev)).sort()) {
    if (!/^(ttyUSB\d+|ttyACM\d+|serial\d|ttyAMA\d+|ttyS0)$/.test(n)) continue;
    const p = path.join(roots.dev, n);
    const target = await realpath(p).catch(() => p);
    if (covered.has(target) && !n.startsWith('serial')) continue;
    out.push({ path: p, target });
  }
  return out;
}

export async function hidrawDevices(roots: DeviceRoots = DEFAULT_ROOTS): Promise<HidDevice[]> {
  const cls = path.join(roots.sys, 'class/hidraw');
  const out: HidDevice[] = [];
  for (const n of (await list(cls)).filter((x) => /^hidraw\d+$/.test(x)).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))) {
    const uevent = (await text(path.join(cls, n, 'device/uevent'))) ?? '';
    const id = /HID_ID=\w+:0*([0-9A-Fa-f]{1,4}):0*([0-9A-Fa-f]{1,4})/.exec(uevent);
    const vid = (id?.[1] ?? '').padStart(4, '0').toLowerCase();
    const pid = (id?.[2] ?? '').padStart(4, '0').toLowerCase();
    const name = /HID_NAME=(.*)/.exec(uevent)?.[1]?.trim() ?? '';
    out.push({ path: path.join(roots.dev, n), vid, pid, name, kind: id ? classifyHid(vid, pid) : null });
  }
  return out;
}

/** The hidraw node to use for `device: auto`: the first AIOC or GPIO-capable CM108. */
export async function autoHidraw(roots: DeviceRoots = DEFAULT_ROOTS): Promise<string | null> {
  const hid = await hidrawDevices(roots);
  return (hid.find((h) => h.kind === 'aioc') ?? hid.find((h) => h.kind === 'cm108' || h.kind === 'sss'))?.path ?? null;
}

export async function discover(roots: DeviceRoots = DEFAULT_ROOTS): Promise<Devices> {
  const notes: string[] = [];
  let gpioChips: CharChip[] = [];
  try {
    gpioChips = await charChips(roots.gpioTools);
  } catch (err) {
    notes.push((err as Error).message);
  }
  const [soundCardsList, serial, hid, sysfs] = await Promise.all([soundCards(roots), serialPorts(roots), hidrawDevices(roots), sysfsChips(path.join(roots.sys, 'class/gpio'))]);
  return { soundCards: soundCardsList, serialPorts: serial, hidraw: hid, gpioChips, sysfsGpio: sysfs, notes };
}
