/**
 * Structured logs: JSON lines (journald and log shippers read them as they are), pretty when the
 * destination is a terminal. One root logger per process, a child per module (`module` field).
 */
import { createRequire } from 'node:module';
import { pino, type Logger, type LevelWithSilent } from 'pino';

const require = createRequire(import.meta.url);

export type { Logger };

export interface LogOptions {
  level?: LevelWithSilent;
  /** 1 = stdout (the daemon), 2 = stderr (CLI tools keep stdout for their own output). */
  fd?: 1 | 2;
  pretty?: boolean;
}

/** For a part used without a logger (tests, one-off tools): logs nothing. */
export const silentLog: Logger = pino({ level: 'silent' });

export function createLogger(o: LogOptions = {}): Logger {
  const fd = o.fd ?? 1;
  const stream = fd === 1 ? process.stdout : process.stderr;
  const level = o.level ?? 'info';
  const base = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (o.pretty ?? stream.isTTY) {
    // Only a terminal needs the pretty printer: a daemon under systemd never loads it.
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino(base, pretty({ destination: fd, colorize: true, ignore: 'pid,hostname', sync: true }));
  }
  return pino(base, pino.destination({ fd, sync: true }));
}
