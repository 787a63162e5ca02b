/**
 * The backstop for the daemon's hard exit, outside the process (cli/commands/run.ts arms it when a
 * stop begins). process.exit() joins libuv's thread pool before the process ends, so a pool thread
 * stuck in a system call (a blocking read on a silent device, a USB ioctl that never returns) hangs
 * it, and with it every timer in the process: issue #17, where a CM108 carrier-detect read did just
 * that. This bash holds the read end of a pipe: our exit, however it happens, closes the write end
 * and it leaves without a word; if we are still here after `ms`, it kills us with SIGKILL (the PTT
 * guards then unkey, as on any kill). It costs a process only while stopping.
 */
import { spawn } from 'node:child_process';

export function armExitGuard(ms: number, pid = process.pid): void {
  try {
    const g = spawn(
      'bash',
      [
        '-c',
        'read -r -t "$2" _; [ $? -gt 128 ] || exit 0; echo "talkbridge: the stop still hung after $2 s: SIGKILL to pid $1" >&2; kill -KILL "$1"',
        'talkbridge-exit-guard',
        String(pid),
        (ms / 1000).toFixed(3),
      ],
      {
        stdio: ['pipe', 'ignore', 'inherit'],
        detached: true,
      },
    );
    g.on('error', () => undefined);
    g.stdin.on('error', () => undefined);
    g.unref();
  } catch {
    // No bash: the in-process hard exit still runs, unless a stuck pool thread holds it too.
  }
}
