import { resetAllPtt } from '../../app/reset.js';
import { loadConfig } from '../../config/load.js';
import { createLogger } from '../../core/log.js';
import { type Command, UsageError } from '../command.js';

/**
 * Loads the config, drives every PTT idle and reports one line per radio; 0 when all are idle,
 * 1 when any could not be reached (named on stderr). Shared with `ptt-test --off`.
 */
export async function resetFromConfig(file: unknown): Promise<number> {
  if (typeof file !== 'string' || file === '') throw new UsageError('--config is required (e.g. --config /etc/talkbridge/config.yaml)');
  const config = loadConfig(file);
  const log = createLogger({ fd: 2, level: config.log.level === 'info' ? 'warn' : config.log.level });
  if (config.radios.length === 0) {
    // A channel-only gateway has nothing to release; failing here would mark every stop as failed.
    process.stdout.write(`no radios in ${file}: nothing to unkey\n`);
    return 0;
  }
  const results = await resetAllPtt(config.radios, { log });
  for (const r of results) {
    if (r.error === null) process.stdout.write(`${r.radio}: ${r.description} idle\n`);
    else process.stderr.write(`talkbridge: ${r.radio}: ${r.error}\n`);
  }
  return results.some((r) => r.error !== null) ? 1 : 0;
}

export const reset: Command = {
  name: 'reset',
  summary: 'Drive every configured PTT line idle and exit (the systemd unit runs it as ExecStopPost).',
  usage: 'reset --config FILE',
  details:
    'Releases transmitters a killed process may have left keyed: CM108 pins and sysfs GPIOs keep their\n' +
    'last level after SIGKILL. Exit status 0 when every line is idle, 1 naming each radio that could not\n' +
    'be reached (unplugged interface, permission denied).',
  positionals: [0, 0],
  flags: {
    config: { type: 'string', short: 'c', arg: 'FILE', help: 'talkbridge config file with a radios: section' },
  },
  run: (flags) => resetFromConfig(flags.config),
};
