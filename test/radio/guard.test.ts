/**
 * The PTT guard's request/answer channel when it is not clean: a command line split across the
 * guard's 25 ms read timeout, and an answer that comes after its request gave up. Both used to
 * leave the daemon one answer behind for good, so every later key/unkey waited for the next
 * answer and the PTT queue grew with each over (found by the memory benchmark: ~1.4 kB per over).
 * A wrapper passed as `bash` stands between the daemon and the real guard to make it happen.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { PttGuard, type GuardOptions } from '../../gateway/src/radio/ptt/guard.js';
import { type Teardown, guardProcesses, tempDir, waitFor } from './helpers.js';

function wrapper(t: Teardown, name: string, body: string): string {
  const file = path.join(tempDir(t), name);
  writeFileSync(file, `#!/bin/bash\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

/** A guard closed in teardown, whatever happened in the test; its idle command names `marker` (tempDir's check). */
function guard(t: Teardown, bash: string, faults: string[], o: Partial<GuardOptions> = {}): PttGuard {
  const g = new PttGuard({
    idle: `: ${tempDir(t)}`,
    watchdogMs: 5000,
    bash,
    log: pino({ level: 'silent' }),
    onWatchdog: () => faults.push('watchdog'),
    onLost: (why) => faults.push(why),
    ...o,
  });
  t.teardown(() => g.close());
  return g;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const settle = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: Error) => e.message,
  );

t.test('a command split across the read timeout is still one command', async (t) => {
  // Every k reaches the guard as "k", 60 ms of nothing, then the newline.
  const bash = wrapper(t, 'split', `{ while IFS= read -r l; do if [ "$l" = k ]; then printf k; sleep 0.06; printf '\\n'; else printf '%s\\n' "$l"; fi; done; } | /bin/bash "$@"`);
  const faults: string[] = [];
  const g = guard(t, bash, faults);
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'key answered');
  t.equal(await settle(g.unkey()), 'ok', 'unkey answered');
  t.equal(await settle(g.key()), 'ok', 'key answered again');
  t.equal(await settle(g.unkey()), 'ok', 'unkey answered again');
  await g.close();
  t.same(
    faults.filter((f) => f === 'watchdog'),
    [],
    'no watchdog',
  );
});

t.test('an answer later than its request does not answer the next one', async (t) => {
  // The first "ok u" after start-up is held back 6 s: its unkey times out (5 s), the next key is
  // sent, and then the stale "ok u" arrives before the key's own "ok k".
  const bash = wrapper(t, 'late', `/bin/bash "$@" | { n=0; while IFS= read -r l; do if [ "$l" = "ok u" ]; then n=$((n+1)); [ $n = 2 ] && sleep 6; fi; printf '%s\\n' "$l"; done; }`);
  const g = guard(t, bash, []);
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'key answered');
  t.match(await settle(g.unkey()), /did not answer within 5 s/, 'the held-back unkey times out');
  t.equal(await settle(g.key()), 'ok', 'the next key gets its own answer, not the stale "ok u"');
  t.equal(await settle(g.unkey()), 'ok', 'and so does the next unkey');
  await g.close();
});

t.test('a request whose answer never comes does not leave the next ones one answer behind', async (t) => {
  // The first "u" never reaches the guard (as a split line was lost before): no answer at all.
  const bash = wrapper(t, 'lost', `{ n=0; while IFS= read -r l; do if [ "$l" = u ]; then n=$((n+1)); [ $n = 1 ] && continue; fi; printf '%s\\n' "$l"; done; } | /bin/bash "$@"`);
  const g = guard(t, bash, []);
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'key answered');
  t.match(await settle(g.unkey()), /did not answer within 5 s/, 'the lost unkey times out');
  t.equal(await settle(g.unkey()), 'ok', 'the next unkey gets its own answer');
  t.equal(await settle(g.key()), 'ok', 'and so does the next key');
  t.equal(await settle(g.unkey()), 'ok', 'and the next unkey');
  await g.close();
});

t.test("the transmit path's blocks are the heartbeat while they come often enough, and the timer takes over when they stop", async (t) => {
  const log = path.join(tempDir(t), 'stdin.log');
  writeFileSync(log, '');
  // Everything the daemon writes to the guard, as it arrives.
  const bash = wrapper(t, 'tee', `tee -a ${log} | /bin/bash "$@"`);
  const faults: string[] = [];
  const g = guard(t, bash, faults, { watchdogMs: 150 });
  await g.start();
  const beats = () =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l === 'h').length;
  const ticking = async (periodMs: number, ms: number) => {
    const iv = setInterval(() => g.alive(periodMs), periodMs);
    await sleep(ms);
    clearInterval(iv);
  };

  g.alive(40);
  t.equal(beats(), 0, 'not keyed: blocks are no heartbeat');
  await g.key();
  let b0 = beats();
  await sleep(400);
  t.ok(beats() - b0 >= 8, `keyed: the timer beats (${beats() - b0} in 400 ms)`);

  b0 = beats();
  await ticking(40, 800);
  const paced = beats() - b0;
  // Timer (~22 in 800 ms) plus blocks (~20) would be twice this.
  t.ok(paced >= 15 && paced <= 23, `40 ms blocks: one beat each and no timer (${paced} in 800 ms)`);
  t.same(faults, [], 'no watchdog while blocks come');

  // The blocks stop without alive(null), as a hung event loop stops them: no timer covers for them.
  await sleep(400);
  t.same(faults, ['watchdog'], 'blocks that stop unannounced end in the watchdog');

  faults.length = 0;
  await g.key();
  await ticking(40, 200);
  g.alive(null);
  b0 = beats();
  await sleep(600);
  t.same(faults, [], 'alive(null): the timer beats again (hang time)');
  t.ok(beats() - b0 >= 12, `timer beats after alive(null) (${beats() - b0} in 600 ms)`);

  // 60 ms packets are more than a third of the 150 ms watchdog: the timer keeps beating.
  await ticking(60, 400);
  await sleep(400);
  t.same(faults, [], 'blocks slower than a third of the watchdog never replace the timer');

  await g.unkey();
  b0 = beats();
  g.alive(40);
  await sleep(200);
  t.equal(beats(), b0, 'unkeyed: neither blocks nor the timer beat');
  await g.close();
});

/**
 * A device write that never completes. open(2) of a FIFO that nobody reads blocks for good, like
 * the idle write to a wedged device, or a relay board's unkey command that never returns, in the field.
 */
function deadFifo(t: Teardown): string {
  const f = path.join(tempDir(t), 'hidraw-dead');
  execFileSync('mkfifo', [f]);
  return f;
}

const IDLE_REPORT = String.raw`printf '\000\000\000\004\000'`;

t.test('talkbridge gone and the idle write blocked: the guard still exits, after its write deadline', async (t) => {
  const fifo = deadFifo(t);
  // What the guard's stdin sees when the daemon dies just after keying: the key, then end-of-file.
  const bash = wrapper(t, 'dies', `{ IFS= read -r l; printf '%s\\n' "$l"; } | /bin/bash "$@"`);
  const faults: string[] = [];
  const g = guard(t, bash, faults, { idle: `${IDLE_REPORT} >> ${fifo}`, writeMs: 500 });
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'keyed');
  const t0 = Date.now();
  await waitFor(() => guardProcesses(fifo).length === 0, 4000, 'the guard and its idle write to be gone');
  const ms = Date.now() - t0;
  t.ok(ms < 2500, `gone ${ms} ms after its stdin closed (deadline 500 ms, then SIGKILL)`);
  await waitFor(() => faults.length > 0, 2000, 'the exit to be reported');
  t.match(faults[0], /^PTT guard exited \(status 124\): .*cannot drive the line idle/, 'status 124: the idle write did not finish in time');
});

t.test('talkbridge hung and the idle write blocked: the watchdog says "unknown" in bounded time, the guard answers on and exits on close', async (t) => {
  const fifo = deadFifo(t);
  // No heartbeat reaches the guard, as when the daemon's event loop hangs.
  const bash = wrapper(t, 'hung', `grep --line-buffered -vx h | /bin/bash "$@"`);
  const seen: boolean[] = [];
  const g = guard(t, bash, [], { idle: `${IDLE_REPORT} >> ${fifo}`, watchdogMs: 200, writeMs: 500, onWatchdog: (unkeyed) => seen.push(unkeyed) });
  await g.start();
  await g.key();
  const t0 = Date.now();
  await waitFor(() => seen.length > 0, 4000, 'the watchdog report');
  const ms = Date.now() - t0;
  t.same(seen, [false], 'reported as not known to be idle');
  t.ok(ms < 2500, `reported ${ms} ms after keying (watchdog 200 ms, write deadline 500 ms, then SIGKILL)`);
  t.equal(await settle(g.unkey()), 'ok', 'the guard still answers');
  t.equal(await settle(g.key()), 'ok', 'and keys again');
  t.equal(await settle(g.unkey()), 'ok');
  const c0 = Date.now();
  await g.close();
  t.ok(Date.now() - c0 < 2500, `close: the final idle write gave up within its deadline (${Date.now() - c0} ms)`);
  t.same(guardProcesses(fifo), [], 'no guard, no idle write left behind');
});

t.test('hold mode: a holder that ignores SIGTERM is killed after the write deadline and the idle holder takes over', async (t) => {
  const dir = tempDir(t);
  const level = path.join(dir, 'level');
  // A gpioset stand-in: writes its level, then holds it until killed; "stubborn" ignores SIGTERM.
  const holder = path.join(dir, 'holder');
  writeFileSync(holder, `#!/bin/bash\n[ "$2" = stubborn ] && trap '' TERM\necho $1 > ${level}\nexec sleep 1000\n`);
  chmodSync(holder, 0o755);
  const faults: string[] = [];
  const g = guard(t, 'bash', faults, { idle: `${holder} 0`, hold: { key: `${holder} 1 stubborn`, reset: `echo reset > ${level}` }, writeMs: 500 });
  await g.start();
  t.equal(readFileSync(level, 'utf8'), '0\n', 'idle held');
  await g.key();
  t.equal(readFileSync(level, 'utf8'), '1\n', 'keyed held');
  const t0 = Date.now();
  t.equal(await settle(g.unkey()), 'ok', 'unkey answered');
  const ms = Date.now() - t0;
  t.ok(ms >= 400 && ms < 2500, `after the stubborn holder's deadline (${ms} ms)`);
  t.equal(readFileSync(level, 'utf8'), '0\n', 'idle held again');
  t.same(
    guardProcesses(dir).filter(([, cmd]) => cmd.includes('stubborn')),
    [],
    'the stubborn holder is gone',
  );
  await g.close();
  t.equal(readFileSync(level, 'utf8'), 'reset\n', 'close: the one-shot idle ran');
  t.same(faults, []);
});
