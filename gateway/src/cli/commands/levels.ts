import { loadConfig } from '../../config/load.js';
import { createLogger } from '../../core/log.js';
import { UserError } from '../../core/errors.js';
import { createAudioIn, createCos, pickRadio } from '../../radio/factory.js';
import type { Levels } from '../../radio/types.js';
import { type Command, UsageError, intFlag, numFlag } from '../command.js';

function bar(db: number, width = 30): string {
  // -60 dBFS .. 0 dBFS
  const n = Number.isFinite(db) ? Math.max(0, Math.min(width, Math.round(((db + 60) / 60) * width))) : 0;
  return '#'.repeat(n) + '-'.repeat(width - n);
}

const fmt = (db: number) => (Number.isFinite(db) ? db.toFixed(1).padStart(6) : '  -inf');

export function levelLine(l: Levels, carrier: boolean | null): string {
  const clip = l.clipped ? `  CLIPPING (${l.clipped} samples)` : '';
  const cos = carrier === null ? '' : carrier ? '  carrier' : '  -------';
  return `peak ${fmt(l.peakDb)} dBFS  rms ${fmt(l.rmsDb)} dBFS  [${bar(l.peakDb)}]${cos}${clip}`;
}

export const levels: Command = {
  name: 'levels',
  summary: "Live input level meter (peak and RMS in dBFS, clipping flagged) for setting the radio's volume.",
  usage: 'levels --config FILE [--radio NAME] [--seconds N] [--interval MS]',
  details: 'Aim for speech peaks around -12 dBFS with no clipping. Carrier detect is shown next to the meter.',
  positionals: [0, 0],
  flags: {
    config: { type: 'string', short: 'c', arg: 'FILE', help: 'talkbridge config file with a radios: section' },
    radio: { type: 'string', short: 'r', arg: 'NAME', help: 'which radio (needed when the config has several)' },
    seconds: { type: 'string', short: 's', arg: 'N', help: 'stop after N seconds (default: until Ctrl-C)' },
    interval: { type: 'string', arg: 'MS', help: 'update interval', default: '200' },
  },
  async run(flags) {
    if (typeof flags.config !== 'string' || flags.config === '') throw new UsageError('--config is required (e.g. --config /etc/talkbridge/config.yaml)');
    const seconds = numFlag(flags, 'seconds', 0.1, 86400);
    const interval = intFlag(flags, 'interval', 50, 10000)!;
    const config = loadConfig(flags.config);
    const radio = pickRadio(config.radios, flags.radio as string | undefined, flags.config);
    const log = createLogger({ fd: 2, level: 'warn' });
    const input = createAudioIn(radio.audio, { log });
    if (!input) throw new UserError(`radio ${radio.name} has no audio input (audio.input.type is none)`);
    const cos = await createCos(radio.cos, input, { log }).catch((err: Error) => {
      process.stderr.write(`talkbridge: carrier detect unavailable: ${err.message}\n`);
      return null;
    });
    const tty = process.stdout.isTTY;
    input.on('state', (s, detail) => process.stdout.write(`${tty ? '\n' : ''}audio ${s}: ${detail}\n`));
    cos?.on('fault', (err) => process.stderr.write(`talkbridge: carrier detect: ${err.message}\n`));
    let stop: () => void = () => undefined;
    const done = new Promise<void>((r) => (stop = r));
    process.once('SIGINT', () => stop());
    process.once('SIGTERM', () => stop());
    input.once('end', () => stop());
    process.stdout.write(`${radio.name}: ${input.description}${cos && radio.cos.type !== 'none' ? `, ${cos.description}` : ''}\n`);
    await input.start();
    if (cos) await cos.start().catch((err: Error) => process.stderr.write(`talkbridge: carrier detect: ${err.message}\n`));
    const timer = setInterval(() => {
      if (input.state !== 'running') return;
      const line = levelLine(input.levels(), cos && radio.cos.type !== 'none' ? cos.carrier : null);
      process.stdout.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    }, interval);
    const limit = seconds !== undefined ? setTimeout(() => stop(), seconds * 1000) : null;
    await done;
    clearInterval(timer);
    if (limit) clearTimeout(limit);
    if (tty) process.stdout.write('\n');
    await cos?.close();
    await input.close();
    return 0;
  },
};
