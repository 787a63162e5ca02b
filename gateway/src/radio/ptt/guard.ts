/**
 * The PTT guard: a small bash process beside the daemon that puts the line back to idle when the
 * daemon can no longer do it. JavaScript cannot run after SIGKILL, and a CM108 pin, a sysfs GPIO or
 * (on Raspberry Pi kernels) a released libgpiod output all keep their last level, so the release
 * has to come from another process:
 *   - stdin closes (the daemon exited, crashed or was killed): run the idle command, exit;
 *   - keyed and no heartbeat for `watchdogMs` (the event loop hung): run the idle command, say so.
 * In `hold` mode (libgpiod tools, whose `gpioset` holds a line only while it runs) the guard also
 * owns the holding process: it starts the key/idle holders itself and reports if one dies.
 *
 * Nothing the guard runs can keep it from exiting. Every command that touches the line (the idle
 * write to a hidraw or sysfs file, gpioset, a user's unkey command) runs as a job of its own, and
 * the guard waits for it at most `writeMs`. A write blocked in the kernel cannot be interrupted
 * from inside the process that makes it (bash's timers do not run while it is blocked in open(2)
 * or write(2), and a task in uninterruptible sleep ignores even SIGKILL), so the guard's own process
 * never makes one. A job still running after `writeMs` is SIGKILLed with its process group and
 * given 1 s more to go; the guard then carries on without it (left behind if it is stuck in the
 * kernel) and counts the line as not known to be idle: "watchdog unknown", "err u 124", or exit
 * status 124 after stdin closed. Exit status: 0 if the final idle command succeeded, otherwise its
 * failure (ExecStopPost's `talkbridge reset` tries again).
 *
 * Protocol, one word per line. stdin: k (key / arm), u (unkey / disarm), h (heartbeat).
 * stdout: "ok k" | "ok u" | "err k|u <rc> <message>" | "watchdog idle|unknown" | "lost <rc> idle|unknown"
 * (idle: the guard drove the line idle afterwards; unknown: that failed too).
 * The guard writes to stdout only in answer to a line from the daemon or once per event, so a
 * daemon that stops reading cannot fill the pipe (64 KiB) and block it.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { RadioError } from '../types.js';

const SCRIPT = String.raw`
set -u
hold=\${TB_HOLD:-0}
# The watchdog is read's own timeout: every line restarts it, so a heartbeat costs one read and
# nothing else (a Pi runs this ~27 times a second per keyed radio). Measured here: ~37 µs of CPU
# a beat, against ~100 µs when each beat also took the time and computed the next deadline.
secs() { echo $(( $1 / 1000 )).$(printf '%03d' $(( $1 % 1000 ))); }
wd=$(secs $1)
tw=$(secs $2)
# job CMD: starts CMD (stdin and stdout /dev/null, stderr the guard's) in a process group of its
# own, under a watcher that prints the job's pid and, once it ends, its status on fd $job.
# Sets job, jp (the job's pid) and jw (the watcher's).
job() {
  exec {job}< <(exec </dev/null; set -m; eval "$1" >/dev/null & echo $!; wait $!; echo $?)
  jw=$!
  read -r -t "$tw" -u "$job" jp || jp=
}
# reap FD PID WATCHER: the job's status, waited for at most $tw s. A job still running then is
# SIGKILLed with its process group and has 1 s more to go: status 124, and gone=1 if it went.
reap() {
  local rc=
  gone=1
  if ! read -r -t "$tw" -u "$1" rc; then
    rc=124
    [ -n "$2" ] && kill -KILL -- "-$2" 2>/dev/null
    read -r -t 1 -u "$1" _ || { gone=0; kill -KILL "$3" 2>/dev/null; }
  fi
  local fd=$1
  exec {fd}<&-
  return "$rc"
}
once() { job "$1"; reap "$job" "$jp" "$jw"; }
holder=
# The holder has ended once its watcher has said so (or gone): its pid may already be another's.
ended() { read -r -t 0 -u "$hfd"; }
stop_holder() {
  [ -n "$holder" ] || return 0
  ended || kill "$holder" 2>/dev/null
  reap "$hfd" "$holder" "$hw"
  holder=
  # Stopped, if only by SIGKILL: the line is free for the next holder.
  [ $gone = 1 ] || return 124
}
# run CMD: one-shot commands report their status; holders must still be running shortly after start.
run() {
  if [ "$hold" = 1 ]; then
    stop_holder || return
    job "exec $1"; holder=$jp hfd=$job hw=$jw
    # gpioset prints nothing on success; a failure (busy line, no chip) exits at once.
    sleep 0.1
    if ended; then reap "$hfd" "$holder" "$hw"; local rc=$?; holder=; return $(( rc == 0 ? 1 : rc )); fi
    return 0
  fi
  once "$1"
}
idle() { run "$TB_IDLE"; }
final() {
  if [ "$hold" = 1 ]; then stop_holder; local rc=$?; once "$TB_RESET" || return; return $rc; fi
  once "$TB_IDLE"
}
keyed=0
# Idle, the guard wakes once a second (to notice a dead holder); keyed, only when a line comes or
# the heartbeat is overdue: no polling.
to=1
part=
if [ "$hold" = 1 ]; then if idle; then echo "ok u"; else echo "err u $? cannot drive the line idle"; fi; else echo "ok u"; fi
while :; do
  if read -r -t $to c; then
    # A read that timed out mid-line kept the bytes it took: joined here, never lost.
    c=$part$c; part=
    case "$c" in
      h) ;;
      k)
        if [ "$hold" = 1 ] && [ $keyed = 0 ]; then
          if run "$TB_KEY"; then keyed=1; to=$wd; echo "ok k"; else rc=$?; idle; echo "err k $rc cannot key the line"; fi
        else keyed=1; to=$wd; echo "ok k"; fi ;;
      u)
        keyed=0; to=1
        if [ "$hold" = 1 ]; then
          if idle; then echo "ok u"; else echo "err u $? cannot drive the line idle"; fi
        else echo "ok u"; fi ;;
    esac
  elif [ $? -le 128 ]; then
    final
    rc=$?
    [ $rc = 0 ] || echo "cannot drive the line idle (status $rc)" >&2
    exit $rc
  elif [ -n "$c" ]; then
    # Part of a line before the timeout: the daemon is writing, so it is alive.
    part=$part$c
  elif [ $keyed = 1 ]; then
    keyed=0; to=1
    if idle; then echo "watchdog idle"; else echo "watchdog unknown"; fi
  fi
  if [ "$hold" = 1 ] && [ -n "$holder" ] && ended; then
    reap "$hfd" "$holder" "$hw"; rc=$?; holder=; keyed=0; to=1
    if idle; then echo "lost $rc idle"; else echo "lost $rc unknown"; fi
  fi
done
`.replace(/\\\$/g, '$');

const BEAT = 'h\n';

export interface GuardOptions {
  /** Shell command that drives the line idle (held in hold mode, one-shot otherwise). */
  idle: string;
  /** Hold mode: the command that holds the line keyed, and the one-shot idle used at exit. */
  hold?: { key: string; reset: string };
  watchdogMs: number;
  /**
   * How long the guard waits for each command it runs on the line (default 1000 ms; a CM108
   * report, a sysfs write or a gpioset takes milliseconds) before it kills it and counts the line
   * as not known to be idle.
   */
  writeMs?: number;
  bash?: string;
  log: Logger;
  onWatchdog(unkeyed: boolean): void;
  onLost(detail: string, unkeyed: boolean): void;
}

export class PttGuard {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private waiting: Array<{ c: 'k' | 'u'; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private heartbeat: NodeJS.Timeout | null = null;
  private stderr: string[] = [];
  private exited: Promise<number | null> = Promise.resolve(null);
  /** Four beats per watchdog period: one late beat must not unkey a healthy daemon. */
  private readonly beatMs: number;
  /** Keyed (or armed): heartbeats are due, from the timer or, while it is stopped, from alive(). */
  private armed = false;
  private lastBeat = 0;
  private readonly writeMs: number;

  constructor(private readonly o: GuardOptions) {
    this.beatMs = Math.max(25, Math.floor(o.watchdogMs / 4));
    this.writeMs = o.writeMs ?? 1000;
  }

  /** Starts the guard; in hold mode it drives the line idle first. */
  async start(): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, TB_IDLE: this.o.idle, TB_HOLD: this.o.hold ? '1' : '0', TB_KEY: this.o.hold?.key ?? '', TB_RESET: this.o.hold?.reset ?? '' };
    const proc = spawn(this.o.bash ?? 'bash', ['-c', SCRIPT, 'talkbridge-ptt-guard', String(this.o.watchdogMs), String(this.writeMs)], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = proc;
    // 'exit', not 'close': a job the guard had to leave behind (stuck in the kernel) may hold its
    // stderr open for good.
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.stdin.on('error', () => undefined);
    createInterface({ input: proc.stderr }).on('line', (l) => {
      this.stderr.push(l);
      if (this.stderr.length > 5) this.stderr.shift();
      this.o.log.warn({ guard: l }, 'PTT guard stderr');
    });
    createInterface({ input: proc.stdout }).on('line', (l) => this.onLine(l));
    proc.once('error', (err) => this.failAll(new RadioError(`cannot start the PTT guard (${this.o.bash ?? 'bash'}): ${err.message}`)));
    proc.once('close', (code, signal) => {
      this.disarm();
      const why = `PTT guard exited (${signal ?? `status ${code}`})${this.lastErr()}`;
      this.failAll(new RadioError(why));
      if (this.proc === proc) {
        this.proc = null;
        // Without its guard the line keeps whatever level it had: not known to be idle.
        this.o.onLost(why, false);
      }
    });
    const first = await this.next('u');
    if (first !== 'ok u') throw new RadioError(`cannot drive the line idle${this.lastErr()}`);
  }

  private lastErr(): string {
    return this.stderr.length ? `: ${this.stderr.at(-1)}` : '';
  }

  private onLine(l: string): void {
    const m = /^(watchdog|lost (\d+)) (idle|unknown)$/.exec(l);
    if (m?.[1] === 'watchdog') {
      this.disarm();
      this.o.onWatchdog(m[3] === 'idle');
    } else if (m) {
      this.disarm();
      this.o.onLost(`the process holding the line exited (status ${m[2]})${this.lastErr()}`, m[3] === 'idle');
    } else {
      // Every answer names its request. One that arrives after its request timed out (a guard
      // stalled by its idle command or a starved CPU) must not answer the next request: that
      // would leave every later key/unkey one answer behind and the PTT queue growing.
      const c = /^(?:ok|err) ([ku])\b/.exec(l)?.[1];
      if (c && this.waiting[0]?.c !== c) return void this.o.log.warn({ guard: l }, 'late PTT guard answer ignored');
      this.waiting.shift()?.resolve(l);
    }
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  private next(c: 'k' | 'u', ms = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const w = { c, resolve: (l: string) => (clearTimeout(t), resolve(l)), reject: (e: Error) => (clearTimeout(t), reject(e)) };
      const t = setTimeout(() => {
        // Out of the queue: its answer, if it ever comes, is dropped in onLine.
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new RadioError('PTT guard did not answer within 5 s'));
      }, ms);
      this.waiting.push(w);
    });
  }

  private async request(c: 'k' | 'u'): Promise<void> {
    const proc = this.proc;
    if (!proc) throw new RadioError(`PTT guard is not running${this.lastErr()}`);
    const answer = this.next(c);
    proc.stdin.write(c + '\n');
    const line = await answer;
    if (line !== `ok ${c}`) throw new RadioError(`${line.replace(/^err [ku] \d+ /, '')}${this.lastErr()}`);
  }

  /** Hold mode: keys the line. Otherwise: arms the guard (the driver keyed the line itself). */
  async key(): Promise<void> {
    await this.request('k');
    this.armed = true;
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    // A plain interval, never pushed back: Node wakes at a timer's first expiry even when it was
    // refreshed or cleared since, so deferring it from the audio path would cost a wake-up per
    // audio frame (measured: 50 a second) instead of saving one. alive() stops it instead.
    this.heartbeat = setInterval(() => this.beat(), this.beatMs);
  }

  /**
   * The transmit path's blocks as the heartbeat (see Ptt.alive). Blocks must come at least every
   * third of the watchdog period, so one late block still leaves two thirds of it for a busy
   * machine; slower ones (long packets from some far sender) leave the timer running.
   */
  alive(periodMs: number | null): void {
    if (!this.armed) return;
    if (periodMs === null || periodMs > this.o.watchdogMs / 3) {
      if (!this.heartbeat) {
        this.beat();
        this.startHeartbeat();
      }
      return;
    }
    this.stopHeartbeat();
    // Beats no closer than the timer's would be (less half a block, so a block that comes a little
    // early still beats): one per packet when packets are 40 ms, every other one at 20 ms. Each
    // beat wakes the guard, whose CPU grew with the packet rate (docs/operations.md, side by side
    // with SvxLink). The longest gap stays under beatMs plus a block, far inside the watchdog period.
    if (performance.now() - this.lastBeat >= this.beatMs - periodMs / 2) this.beat();
  }

  private beat(): void {
    this.lastBeat = performance.now();
    const proc = this.proc;
    // A destroyed stdin has given its fd back: that number may already belong to another file.
    if (!proc || proc.stdin.destroyed) return;
    // Straight to the pipe: through the stream machinery each beat cost several times the write
    // itself (measured: 8 % of a bridging daemon's CPU). Order against k/u needs no care: a beat
    // is meaningful only between them, and stdin stays empty unless the guard stops reading.
    const fd = (proc.stdin as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd === 'number' && fd >= 0) {
      try {
        writeSync(fd, BEAT);
        return;
      } catch {
        // EAGAIN (a guard that stopped reading: its watchdog acts) or a closed pipe: nothing to do.
        return;
      }
    }
    proc.stdin.write(BEAT);
  }

  async unkey(): Promise<void> {
    this.disarm();
    await this.request('u');
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private disarm(): void {
    this.armed = false;
    this.stopHeartbeat();
  }

  /**
   * Closing stdin makes the guard run its final idle command and exit, as a crash would. It gives
   * up on each command after writeMs (hold mode: the holder, then the one-shot idle), so it is
   * SIGKILLed only if it is still there well after that.
   */
  async close(): Promise<void> {
    this.disarm();
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    proc.stdin.end();
    const t = setTimeout(() => proc.kill('SIGKILL'), 2 * this.writeMs + 3000);
    const code = await this.exited;
    clearTimeout(t);
    // Its last words (why the idle failed), then the pipes go: a job left behind may hold them open.
    if (proc.stdout.readable || proc.stderr.readable) {
      await new Promise<void>((resolve) => {
        const c = setTimeout(resolve, 200);
        proc.once('close', () => (clearTimeout(c), resolve()));
      });
    }
    proc.stdout.destroy();
    proc.stderr.destroy();
    if (code !== 0) this.o.log.warn({ status: code ?? 'killed' }, `PTT guard did not confirm the line idle at close${this.lastErr()}`);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }
}

/** Quotes a string for the guard's shell. */
export function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
