/**
 * The PTT guard's request/answer channel when it is not clean: a command line split across the
 * guard's 25 ms read timeout, and an answer that comes after its request gave up. Both used to
 * leave the daemon one answer behind for good, so every later key/unkey waited for the next
 * answer and the PTT queue grew with each over (found by the memory benchmark: ~1.4 kB per over).
 * A wrapper passed as `bash` stands between the daemon and the real guard to make it happen.
 */
import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { PttGuard } from '../../gateway/src/radio/ptt/guard.js';
import { tmp } from '../bridge/helpers.js';

function wrapper(name: string, body: string): string {
  const file = path.join(tmp(), name);
  writeFileSync(file, `#!/bin/bash\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function guard(bash: string, faults: string[]): PttGuard {
  return new PttGuard({
    idle: 'true',
    watchdogMs: 5000,
    bash,
    log: pino({ level: 'silent' }),
    onWatchdog: () => faults.push('watchdog'),
    onLost: (why) => faults.push(why),
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e: Error) => e.message);

t.test('a command split across the read timeout is still one command', async (t) => {
  // Every k reaches the guard as "k", 60 ms of nothing, then the newline.
  const bash = wrapper('split', `{ while IFS= read -r l; do if [ "$l" = k ]; then printf k; sleep 0.06; printf '\\n'; else printf '%s\\n' "$l"; fi; done; } | /bin/bash "$@"`);
  const faults: string[] = [];
  const g = guard(bash, faults);
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'key answered');
  t.equal(await settle(g.unkey()), 'ok', 'unkey answered');
  t.equal(await settle(g.key()), 'ok', 'key answered again');
  t.equal(await settle(g.unkey()), 'ok', 'unkey answered again');
  await g.close();
  t.same(faults.filter((f) => f === 'watchdog'), [], 'no watchdog');
});

t.test('an answer later than its request does not answer the next one', async (t) => {
  // The first "ok u" after start-up is held back 6 s: its unkey times out (5 s), the next key is
  // sent, and then the stale "ok u" arrives before the key's own "ok k".
  const bash = wrapper('late', `/bin/bash "$@" | { n=0; while IFS= read -r l; do if [ "$l" = "ok u" ]; then n=$((n+1)); [ $n = 2 ] && sleep 6; fi; printf '%s\\n' "$l"; done; }`);
  const g = guard(bash, []);
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'key answered');
  t.match(await settle(g.unkey()), /did not answer within 5 s/, 'the held-back unkey times out');
  t.equal(await settle(g.key()), 'ok', 'the next key gets its own answer, not the stale "ok u"');
  t.equal(await settle(g.unkey()), 'ok', 'and so does the next unkey');
  await g.close();
});

t.test('a request whose answer never comes does not leave the next ones one answer behind', async (t) => {
  // The first "u" never reaches the guard (as a split line was lost before): no answer at all.
  const bash = wrapper('lost', `{ n=0; while IFS= read -r l; do if [ "$l" = u ]; then n=$((n+1)); [ $n = 1 ] && continue; fi; printf '%s\\n' "$l"; done; } | /bin/bash "$@"`);
  const g = guard(bash, []);
  await g.start();
  t.equal(await settle(g.key()), 'ok', 'key answered');
  t.match(await settle(g.unkey()), /did not answer within 5 s/, 'the lost unkey times out');
  t.equal(await settle(g.unkey()), 'ok', 'the next unkey gets its own answer');
  t.equal(await settle(g.key()), 'ok', 'and so does the next key');
  t.equal(await settle(g.unkey()), 'ok', 'and the next unkey');
  await g.close();
});

t.test("the transmit path's blocks are the heartbeat while they come often enough, and the timer takes over when they stop", async (t) => {
  const log = path.join(tmp(), 'stdin.log');
  writeFileSync(log, '');
  // Everything the daemon writes to the guard, as it arrives.
  const bash = wrapper('tee', `tee -a ${log} | /bin/bash "$@"`);
  const faults: string[] = [];
  const g = new PttGuard({ idle: 'true', watchdogMs: 150, bash, log: pino({ level: 'silent' }), onWatchdog: () => faults.push('watchdog'), onLost: (why) => faults.push(why) });
  await g.start();
  const beats = () => readFileSync(log, 'utf8').split('\n').filter((l) => l === 'h').length;
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
