import { spawnSync } from 'node:child_process';
import type { Config } from '../../config/schema.js';
import { createLogger } from '../../core/log.js';
import { UserError } from '../../core/errors.js';
import { CLI_BIN } from '../../core/paths.js';
import { startDaemon } from '../../app/daemon.js';
import { tuneTiering } from '../../app/tiering.js';
import { armExitGuard } from '../../app/exit-guard.js';
import type { Command } from '../command.js';

/**
 * The config is validated in a short-lived child process (`check-config --json`): the schema
 * library, the YAML parser and the interface profiles stay out of the daemon, which runs for months
 * on a Pi and would otherwise keep ~15 MB of them resident for nothing.
 */
function loadConfigApart(file: string | null, env: NodeJS.ProcessEnv): Config {
  const r = spawnSync(process.execPath, [CLI_BIN, 'check-config', '--json', file ?? '-'], { env, encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.error) throw new UserError(`cannot check the config: ${r.error.message}`);
  if (r.status !== 0) throw new UserError(r.stderr.replace(/^talkbridge: /, '').trimEnd(), r.status ?? 1);
  return JSON.parse(r.stdout) as Config;
}

/** SIGTERM (or Ctrl-C) to exit, at most: systemd's stop, and any supervisor's, never needs a SIGKILL. */
export const STOP_LIMIT_MS = 1000;
/** The daemon's own deadline for its stop; the exit guard's (app/exit-guard.ts) comes after it, both inside the limit. */
const HARD_EXIT_MS = 700;
const GUARD_MS = 900;

export const run: Command = {
  name: 'run',
  summary:
    'Run the gateway daemon. With no --config it runs on its embedded defaults: an in-process MQTT broker on\n127.0.0.1:1883, the web port 8080 (with MQTT over WebSocket on /mqtt) and the channel "base".',
  usage: 'run [--config FILE]',
  positionals: [0, 0],
  flags: {
    config: { type: 'string', short: 'c', arg: 'FILE', help: 'YAML config file (see docs/config.md)' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'override log.level (fatal … trace)' },
  },
  async run(flags) {
    const env = { ...process.env };
    if (typeof flags['log-level'] === 'string') env.TALKBRIDGE_LOG_LEVEL = flags['log-level'];
    const config = loadConfigApart(typeof flags.config === 'string' ? flags.config : null, env);
    const log = createLogger({ level: config.log.level, fd: 1 });
    const daemon = await startDaemon(config, log);
    tuneTiering();
    log.info({ event: 'ready' }, 'talkbridge is running; Ctrl-C to stop');

    return new Promise<number>((resolve) => {
      let stopping = false;
      const shutdown = (why: string, code: number) => {
        if (stopping) return;
        stopping = true;
        const t0 = performance.now();
        log.info({ event: 'stopping', why }, `stopping (${why})`);
        // A stop that hangs must not keep the process (and later, a radio) alive. The transmitters
        // are released first (app/daemon.ts), and each PTT guard unkeys on its own when we die.
        armExitGuard(GUARD_MS);
        const hard = setTimeout(() => {
          log.error({ event: 'stop-timeout', ms: HARD_EXIT_MS }, `stop took longer than ${HARD_EXIT_MS} ms, exiting`);
          log.flush?.();
          process.exit(code || 1);
        }, HARD_EXIT_MS);
        daemon.stop().then(() => {
          clearTimeout(hard);
          log.info({ event: 'stopped', ms: Math.round(performance.now() - t0) }, 'stopped');
          log.flush?.();
          resolve(code);
        });
      };
      process.once('SIGINT', () => shutdown('SIGINT', 0));
      process.once('SIGTERM', () => shutdown('SIGTERM', 0));
      process.on('uncaughtException', (err) => {
        log.fatal({ event: 'crash', err: err.stack ?? String(err) }, 'uncaught exception');
        shutdown('crash', 1);
      });
      process.on('unhandledRejection', (err) => {
        log.fatal({ event: 'crash', err: (err as Error)?.stack ?? String(err) }, 'unhandled rejection');
        shutdown('crash', 1);
      });
    });
  },
};
