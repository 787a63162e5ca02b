import t from 'tap';
import { existsSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { createNotifier } from '../../gateway/src/app/sd-notify.js';
import { sleep, startNotifySocket, tempDir, waitFor } from './helpers.js';

const have = ['/usr/bin/systemd-notify', '/bin/systemd-notify'].some(existsSync);

t.test('without NOTIFY_SOCKET every call is a no-op and no helper runs', async (t) => {
  const dir = tempDir(t);
  const marker = path.join(dir, 'ran');
  const fake = path.join(dir, 'systemd-notify');
  writeFileSync(fake, `#!/bin/sh\necho "$@" >> ${marker}\n`);
  chmodSync(fake, 0o755);
  const n = createNotifier({ env: { WATCHDOG_USEC: '100000' }, command: fake });
  t.equal(n.enabled, false);
  t.equal(n.watchdogIntervalMs, null, 'no watchdog without a socket');
  await n.ready('started');
  await n.status('x');
  n.watchdog(() => true);
  await sleep(200);
  await n.stopping();
  t.equal(existsSync(marker), false, 'systemd-notify never ran');
});

t.test('READY once, STATUS, WATCHDOG at half of WATCHDOG_USEC only while healthy, STOPPING', { skip: !have && 'systemd-notify is not installed (apt-get install systemd)' }, async (t) => {
  const sock = await startNotifySocket(t);
  const n = createNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000', WATCHDOG_PID: String(process.pid) } });
  t.equal(n.enabled, true);
  t.equal(n.watchdogIntervalMs, 200);

  await n.ready('bridging 1 radio on 1 channel');
  await n.ready('again');
  await waitFor(() => sock.messages.length >= 2, 3000, 'two messages');
  t.same(sock.messages[0]!.vars, { READY: '1', STATUS: 'bridging 1 radio on 1 channel' });
  t.same(sock.messages[1]!.vars, { STATUS: 'again' }, 'a second ready() only updates STATUS');
  t.ok(sock.barriers >= 2, 'systemd-notify synchronised on a barrier for each message');

  let healthy = true;
  const start = sock.messages.length;
  n.watchdog(() => healthy);
  await sleep(1100);
  const during = sock.messages.slice(start);
  const pings = during.filter((m) => m.vars.WATCHDOG === '1');
  t.ok(pings.length >= 3 && pings.length <= 6, `${pings.length} pings in 1.1 s at a 200 ms interval`);
  const gaps = pings.slice(1).map((p, i) => p.t - pings[i]!.t);
  t.ok(
    gaps.every((g) => g > 120 && g < 400),
    `ping gaps ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`,
  );

  healthy = false;
  await sleep(150);
  const cut = sock.messages.length;
  await sleep(900);
  const unhealthy = sock.messages.slice(cut);
  t.equal(unhealthy.filter((m) => m.vars.WATCHDOG).length, 0, 'no WATCHDOG=1 while unhealthy');
  t.ok(
    sock.messages.some((m) => m.vars.STATUS === 'unhealthy: watchdog pings withheld'),
    'STATUS says why',
  );

  healthy = true;
  await waitFor(() => sock.messages.slice(cut).some((m) => m.vars.WATCHDOG === '1'), 2000, 'pings to resume');
  const resumed = sock.messages.slice(cut).find((m) => m.vars.WATCHDOG === '1')!;
  t.equal(resumed.vars.STATUS, 'again', 'the last STATUS comes back with the first ping');

  await n.stopping('stopping: SIGTERM');
  const stopAt = sock.messages.length;
  t.same(sock.messages.at(-1)!.vars, { STOPPING: '1', STATUS: 'stopping: SIGTERM' });
  await sleep(600);
  t.equal(sock.messages.length, stopAt, 'no pings after STOPPING=1');
});

t.test('a throwing health predicate counts as unhealthy', { skip: !have && 'systemd-notify is not installed' }, async (t) => {
  const sock = await startNotifySocket(t);
  const n = createNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000' } });
  n.watchdog(() => {
    throw new Error('bridge gone');
  });
  await sleep(600);
  await n.stopping();
  t.equal(sock.messages.filter((m) => m.vars.WATCHDOG).length, 0, 'no pings');
  t.ok(
    sock.messages.some((m) => m.vars.STATUS?.startsWith('unhealthy')),
    'reported unhealthy',
  );
});

t.test('WATCHDOG_PID of another process: no pings; no WATCHDOG_USEC: no pings', { skip: !have && 'systemd-notify is not installed' }, async (t) => {
  const sock = await startNotifySocket(t);
  const other = createNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) } });
  const none = createNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock.path } });
  t.equal(other.watchdogIntervalMs, null);
  t.equal(none.watchdogIntervalMs, null);
  other.watchdog(() => true);
  none.watchdog(() => true);
  await none.ready();
  await sleep(400);
  t.same(
    sock.messages.map((m) => m.raw),
    ['READY=1'],
    'only READY arrived',
  );
});

t.test('STATUS text cannot add variables or reach a shell', { skip: !have && 'systemd-notify is not installed' }, async (t) => {
  const sock = await startNotifySocket(t);
  const n = createNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock.path } });
  await n.status('radio hf\nREADY=1 $(touch /tmp/x) `id`');
  await waitFor(() => sock.messages.length >= 1, 3000, 'status');
  t.same(sock.messages[0]!.vars, { STATUS: 'radio hf READY=1 $(touch /tmp/x) `id`' });
});
