/**
 * Finding the Raspberry Pi header GPIOs. Both kernel interfaces moved between releases, so nothing
 * here trusts a number: sysfs numbers carry a per-kernel base (512 on Pi 4 with 6.6, 571 on Pi 5
 * with 6.6, 399 on Pi 5 with 6.1), and character-device chips were renumbered on Pi 5 (gpiochip4
 * became gpiochip0 in 6.6.45). The chip is found by its label instead.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { RadioError } from './types.js';

const run = promisify(execFile);

/** Header GPIO controllers, newest first: Pi 5 (RP1), Pi 4, Pi 0–3. */
export const PI_GPIO_LABELS = ['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835'];

export interface SysfsChip {
  dir: string;
  label: string;
  base: number;
  ngpio: number;
}

export async function sysfsChips(root = '/sys/class/gpio'): Promise<SysfsChip[]> {
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => /^gpiochip\d+$/.test(n));
  } catch {
    return [];
  }
  const chips: SysfsChip[] = [];
  for (const n of names) {
    const dir = path.join(root, n);
    const read = async (f: string) => (await readFile(path.join(dir, f), 'utf8').catch(() => '')).trim();
    const base = Number(await read('base'));
    const ngpio = Number(await read('ngpio'));
    if (!Number.isInteger(base)) continue;
    chips.push({ dir, label: await read('label'), base, ngpio: Number.isInteger(ngpio) ? ngpio : 0 });
  }
  return chips.sort((a, b) => a.base - b.base);
}

/** The sysfs number of header GPIO `line`: the chip's base (read, never assumed) plus the line. */
export async function sysfsNumber(line: number, root = '/sys/class/gpio', labels: string[] = PI_GPIO_LABELS): Promise<{ number: number; chip: SysfsChip }> {
  const chips = await sysfsChips(root);
  if (chips.length === 0) throw new RadioError(`no GPIO chips under ${root}: this kernel has no sysfs GPIO (use ptt api: chardev)`);
  const chip = labels.map((l) => chips.find((c) => c.label === l)).find((c) => c !== undefined);
  if (!chip) throw new RadioError(`no GPIO chip labelled ${labels.join(' or ')} under ${root} (found: ${chips.map((c) => `${c.label || '?'} base ${c.base}`).join(', ')})`);
  if (chip.ngpio && line >= chip.ngpio) throw new RadioError(`GPIO ${line} does not exist on ${chip.label} (${chip.ngpio} lines)`);
  return { number: chip.base + line, chip };
}

export interface GpioTools {
  gpioset: string;
  gpioget: string;
  gpiomon: string;
  gpiodetect: string;
}

export const DEFAULT_GPIO_TOOLS: GpioTools = { gpioset: 'gpioset', gpioget: 'gpioget', gpiomon: 'gpiomon', gpiodetect: 'gpiodetect' };

export interface CharChip {
  name: string;
  label: string;
  lines: number;
}

function toolError(tool: string, err: unknown): RadioError {
  const e = err as NodeJS.ErrnoException & { stderr?: string };
  if (e.code === 'ENOENT') return new RadioError(`${tool} not found: install the libgpiod tools (sudo apt-get install gpiod)`);
  return new RadioError(`${tool} failed: ${(e.stderr ?? '').trim().split('\n').at(-1) || e.message}`);
}

/** Character-device chips as `gpiodetect` lists them ("gpiochip0 [pinctrl-rp1] (54 lines)"). */
export async function charChips(tools: GpioTools = DEFAULT_GPIO_TOOLS): Promise<CharChip[]> {
  let out: string;
  try {
    out = (await run(tools.gpiodetect, [], { timeout: 5000 })).stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    // No chips at all: gpiodetect v1 exits non-zero with an empty list on some builds.
    if (e.code !== 'ENOENT' && !(e.stderr ?? '').trim()) return [];
    throw toolError(tools.gpiodetect, err);
  }
  const chips: CharChip[] = [];
  for (const l of out.split('\n')) {
    const m = /^(\S+)\s+\[([^\]]*)\]\s+\((\d+) lines?\)/.exec(l.trim());
    if (m) chips.push({ name: m[1]!, label: m[2]!, lines: Number(m[3]) });
  }
  return chips;
}

/** The chip carrying the header GPIOs, by label; `label` forces one (e.g. an I/O expander). */
export async function findCharChip(line: number, label: string | undefined, tools: GpioTools = DEFAULT_GPIO_TOOLS): Promise<CharChip> {
  const chips = await charChips(tools);
  const wanted = label ? [label] : PI_GPIO_LABELS;
  const chip = wanted.map((l) => chips.find((c) => c.label === l)).find((c) => c !== undefined);
  if (!chip) {
    throw new RadioError(`no GPIO chip labelled ${wanted.join(' or ')} (found: ${chips.length ? chips.map((c) => `${c.name} [${c.label}]`).join(', ') : 'none'})`);
  }
  if (line >= chip.lines) throw new RadioError(`GPIO ${line} does not exist on ${chip.label} (${chip.lines} lines)`);
  return chip;
}

/** libgpiod tools changed their command line in 2.0; 1.x ships with Debian 12, 2.x with 13. */
export async function toolsMajor(tools: GpioTools = DEFAULT_GPIO_TOOLS): Promise<1 | 2> {
  let out: string;
  try {
    out = (await run(tools.gpioset, ['--version'], { timeout: 5000 })).stdout;
  } catch (err) {
    throw toolError(tools.gpioset, err);
  }
  const m = /v(\d+)\.\d+/.exec(out);
  if (!m) throw new RadioError(`cannot tell the libgpiod version from "${out.split('\n')[0]}"`);
  return Number(m[1]) >= 2 ? 2 : 1;
}

export type Bias = 'as-is' | 'pull-up' | 'pull-down' | 'disable';

/** Command lines for one line, in the dialect of the installed tools. Values are physical. */
export function gpioCommands(major: 1 | 2, tools: GpioTools, chip: string, line: number, bias: Bias = 'as-is') {
  const v1Bias = bias === 'as-is' ? [] : [`--bias=${bias}`];
  const v2Bias = bias === 'as-is' ? [] : ['--bias', bias === 'disable' ? 'disabled' : bias];
  if (major === 1) {
    return {
      hold: (v: 0 | 1) => [tools.gpioset, '--mode=signal', chip, `${line}=${v}`],
      set: (v: 0 | 1) => [tools.gpioset, chip, `${line}=${v}`],
      get: () => [tools.gpioget, ...v1Bias, chip, String(line)],
      // %e: 1 rising, 0 falling
      monitor: () => [tools.gpiomon, ...v1Bias, '--format=%e', chip, String(line)],
    };
  }
  return {
    hold: (v: 0 | 1) => [tools.gpioset, '-c', chip, `${line}=${v}`],
    set: (v: 0 | 1) => [tools.gpioset, '-c', chip, '-t', '0', `${line}=${v}`],
    get: () => [tools.gpioget, '-c', chip, ...v2Bias, '--numeric', String(line)],
    // %e: 1 rising, 2 falling
    monitor: () => [tools.gpiomon, '-c', chip, ...v2Bias, '--format=%e', String(line)],
  };
}
