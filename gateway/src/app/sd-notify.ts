/**
 * systemd readiness and watchdog notifications (sd_notify(3)) for a Type=notify unit.
 *
 * Node has no AF_UNIX datagram sockets, so each message is sent by the `systemd-notify` tool that
 * ships with systemd itself. Since systemd 246 that tool waits on a barrier (sd_notify_barrier)
 * until the manager has processed the message, which removes the old race where a helper exited
 * before systemd could attribute its message to the unit; it needs NotifyAccess=all in the unit
 * because the sender is a child, not the main PID. Why not a native addon: docs/operations.md.
 *
 * Nothing here ever throws into the daemon: a notification that cannot be sent is logged, and the
 * worst outcome is systemd restarting a daemon it did not hear from, which is the safe direction.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../core/log.js';

export interface NotifierOptions {
  /** Where NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The systemd-notify binary (default: found on PATH). */
  command?: string;
  log?: Logger;
  /** A notification helper that has not returned after this long is killed (ms). */
  timeoutMs?: number;
}

export interface Notifier {
  /** False without NOTIFY_SOCKET (not started by systemd as Type=notify): every call is a no-op. */
  readonly enabled: boolean;
  /** Half of WATCHDOG_USEC in ms, or null when systemd asked for no watchdog pings. */
  readonly watchdogIntervalMs: number | null;
  /** READY=1 (only the first call sends it), with an optional STATUS= line. */
  ready(status?: string): Promise<void>;
  /** STATUS=<text>: shown by `systemctl status talkbridge`. */
  status(text: string): Promise<void>;
  /**
   * Pings WATCHDOG=1 every watchdogIntervalMs while `healthy()` returns true; while it returns
   * false (or throws) pings are withheld, so systemd restarts a daemon whose pipeline stays broken
   * for WatchdogSec. Replaces an earlier predicate.
   */
  watchdog(healthy: () => boolean): void;
  /** Stops the watchdog pings and sends STOPPING=1. */
  stopping(status?: string): Promise<void>;
}

/** STATUS= is one line; systemd shows it verbatim. */
function statusLine(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ').slice(0, 200)}`;
}

export function createNotifier(o: NotifierOptions = {}): Notifier {
  const env = o.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const enabled = typeof socket === 'string' && socket !== '';
  const usec = Number(env.WATCHDOG_USEC);
  // WATCHDOG_PID names the process the watchdog is meant for (sd_watchdog_enabled(3)).
  const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || Number(env.WATCHDOG_PID) === process.pid;
  const watchdogIntervalMs = enabled && Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : null;
  const command = o.command ?? 'systemd-notify';
  const timeoutMs = o.timeoutMs ?? 10000;
  const log = o.log;

  let chain: Promise<void> = Promise.resolve();
  let readySent = false;
  let lastStatus: string | null = null;
  let timer: NodeJS.Timeout | null = null;
  let healthyNow = true;
  let missingReported = false;

  const sendNow = (vars: string[]) =>
    new Promise<void>((resolve) => {
      // The variables go as arguments, never through a shell: a STATUS text cannot inject anything.
      const child = spawn(command, vars, { env: { ...env, NOTIFY_SOCKET: socket }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err = (err + d).slice(-500)));
      const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (e) => {
        clearTimeout(kill);
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          if (!missingReported) log?.error({ event: 'sd-notify', command }, `${command} not found: systemd will not hear readiness or watchdog pings`);
          missingReported = true;
        } else log?.warn({ event: 'sd-notify', err: e.message }, 'cannot run systemd-notify');
        resolve();
      });
      child.once('close', (code, signal) => {
        clearTimeout(kill);
        if (code !== 0) log?.warn({ event: 'sd-notify', vars, code, signal, stderr: err.trim() }, 'systemd-notify failed');
        resolve();
      });
    });

  // One helper at a time, in call order: READY must reach systemd before the first WATCHDOG.
  const send = (vars: string[]): Promise<void> => {
    if (!enabled) return Promise.resolve();
    chain = chain.then(() => sendNow(vars));
    return chain;
  };

  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  return {
    enabled,
    watchdogIntervalMs,
    ready(status) {
      if (readySent) return status ? this.status(status) : Promise.resolve();
      readySent = true;
      if (status) lastStatus = status;
      return send(['READY=1', ...(status ? [statusLine(status)] : [])]);
    },
    status(text) {
      lastStatus = text;
      return send([statusLine(text)]);
    },
    watchdog(healthy) {
      stopTimer();
      if (watchdogIntervalMs === null) return;
      const tick = () => {
        let ok: boolean;
        try {
          ok = healthy() === true;
        } catch {
          ok = false;
        }
        if (ok !== healthyNow) {
          healthyNow = ok;
          if (ok) {
            log?.info({ event: 'watchdog', healthy: true }, 'pipeline healthy again: watchdog pings resumed');
            void send(lastStatus ? ['WATCHDOG=1', statusLine(lastStatus)] : ['WATCHDOG=1']);
            return;
          }
          log?.warn({ event: 'watchdog', healthy: false }, 'pipeline unhealthy: watchdog pings withheld (systemd restarts us if this lasts WatchdogSec)');
          void send([statusLine('unhealthy: watchdog pings withheld')]);
          return;
        }
        if (ok) void send(['WATCHDOG=1']);
      };
      timer = setInterval(tick, watchdogIntervalMs);
      // The daemon's own handles decide when it exits, never this timer.
      timer.unref();
    },
    stopping(status) {
      stopTimer();
      return send(['STOPPING=1', ...(status ? [statusLine(status)] : [])]);
    },
  };
}
