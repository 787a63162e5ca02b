import { loadConfig } from '../../config/load.js';
import { createLogger } from '../../core/log.js';
import { createPtt, pickRadio } from '../../radio/factory.js';
import type { Ptt } from '../../radio/types.js';
import { type Command, UsageError, numFlag } from '../command.js';
import { resetFromConfig } from './reset.js';

export const pttTest: Command = {
  name: 'ptt-test',
  summary: 'Key a radio for a few seconds, then unkey it, saying what was done (checks PTT wiring).',
  usage: 'ptt-test --config FILE [--radio NAME] [--seconds N] | ptt-test --config FILE --off',
  details: 'The transmitter goes on the air: use a dummy load or a frequency you may use.\n' + '--off is the same as `talkbridge reset`: it drives every configured PTT line idle and exits.',
  positionals: [0, 0],
  flags: {
    config: { type: 'string', short: 'c', arg: 'FILE', help: 'talkbridge config file with a radios: section' },
    radio: { type: 'string', short: 'r', arg: 'NAME', help: 'which radio (needed when the config has several)' },
    seconds: { type: 'string', short: 's', arg: 'N', help: 'how long to stay keyed, 0.1-10', default: '1' },
    off: { type: 'boolean', help: "only drive every radio's PTT idle (same as talkbridge reset)" },
  },
  async run(flags) {
    if (flags.off) return resetFromConfig(flags.config);
    if (typeof flags.config !== 'string' || flags.config === '') throw new UsageError('--config is required (e.g. --config /etc/talkbridge/config.yaml)');
    const seconds = numFlag(flags, 'seconds', 0.1, 10)!;
    const config = loadConfig(flags.config);
    const log = createLogger({ fd: 2, level: config.log.level === 'info' ? 'warn' : config.log.level });
    const radio = pickRadio(config.radios, flags.radio as string | undefined, flags.config);
    const ptt: Ptt = await createPtt(radio.ptt, { log });
    let fault: Error | null = null;
    ptt.on('fault', (err, unkeyed) => {
      fault = err;
      process.stderr.write(`talkbridge: ${radio.name}: PTT fault: ${err.message}${unkeyed ? ' (line is idle)' : ' (line state UNKNOWN: check the transmitter)'}\n`);
    });
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => (stop = r));
    const onSig = () => stop();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    try {
      await ptt.open();
      process.stdout.write(`${radio.name}: ${ptt.description}: line idle\n`);
      await ptt.key();
      process.stdout.write(`${radio.name}: keyed for ${seconds} s\n`);
      const faulted = new Promise<void>((r) => ptt.once('fault', () => r()));
      await Promise.race([new Promise((r) => setTimeout(r, seconds * 1000)), stopped, faulted]);
      await ptt.unkey();
      process.stdout.write(`${radio.name}: unkeyed${fault ? ' after a fault' : ''}\n`);
      return fault ? 1 : 0;
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      await ptt.close();
    }
  },
};
