/**
 * The PTT guard's request/answer channel when it is not clean: a command line split across the
 * guard's 25 ms read timeout, and an answer that comes after its request gave up. Both used to
 * leave the daemon one answer behind for good, so every later key/unkey waited for the next
 * answer and the PTT queue grew with each over (found by the memory benchmark: ~1.4 kB per over).
 * A wrapper passed as `bash` stands between the daemon and the real guard to make it happen.
 */
import t from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
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
