import { discover } from '../../radio/devices.js';
import type { Command } from '../command.js';

const KIND: Record<string, string> = { aioc: 'AIOC (CM108-compatible GPIO)', cm108: 'CM108-family, GPIO PTT capable', 'cm108-no-gpio': 'CM108AH variant without GPIO', sss: 'SSS1621/1623, 2 GPIO' };

export const devices: Command = {
  name: 'devices',
  summary: 'List sound cards, serial ports, USB HID (CM108/AIOC) devices and GPIO chips: what a radios: config needs.',
  usage: 'devices [--json]',
  positionals: [0, 0],
  flags: {
    json: { type: 'boolean', help: 'print the findings as JSON' },
  },
  async run(flags) {
    const d = await discover();
    if (flags.json) {
      process.stdout.write(JSON.stringify(d, null, 2) + '\n');
      return 0;
    }
    const out: string[] = [];
    const section = (title: string, rows: string[], none: string) => out.push(title, ...(rows.length ? rows : [`  none found${none ? ` (${none})` : ''}`]), '');
    section(
      'Sound cards (use the ALSA name, not the number: numbers change with plug order):',
      d.soundCards.map((c) => `  ${c.alsa.padEnd(34)} ${c.name}${c.capture ? '' : ' [no capture]'}${c.playback ? '' : ' [no playback]'}`),
      'is the USB interface plugged in? see aplay -l',
    );
    section(
      'Serial ports:',
      d.serialPorts.map((p) => `  ${p.path}${p.target !== p.path ? ` -> ${p.target}` : ''}`),
      '',
    );
    section(
      'USB HID devices (hidraw):',
      d.hidraw.map((h) => `  ${h.path.padEnd(14)} ${h.vid}:${h.pid}  ${h.name || '?'}${h.kind ? `  <- ${KIND[h.kind]}` : ''}`),
      '',
    );
    section(
      'GPIO chips (character device):',
      d.gpioChips.map((c) => `  ${c.name.padEnd(12)} [${c.label}] ${c.lines} lines`),
      '',
    );
    if (d.sysfsGpio.length)
      section(
        'GPIO chips (sysfs numbering: number = base + GPIO):',
        d.sysfsGpio.map((c) => `  ${c.label || '?'} base ${c.base} (${c.ngpio} lines)`),
        '',
      );
    for (const n of d.notes) out.push(`note: ${n}`);
    process.stdout.write(out.join('\n').replace(/\n+$/, '') + '\n');
    return 0;
  },
};
