/**
 * Never a stuck transmitter, with the real daemon: a frozen event loop, SIGKILL, SIGTERM and a lost
 * broker, each while gateway B is keyed for a network over. B's PTT is a CM108 on a FIFO we read.
 */
import t, { type Test } from 'tap';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { encodeWav, readWav } from '../../gateway/src/audio/wav.js';
import { spawnSync } from 'node:child_process';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { KEY, UNKEY, pttFifo, runGateway, tmp, writeConfig, sleep } from './helpers.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');

/** watchdogMs: the default (150 ms) where the watchdog is under test; a looser one elsewhere, so a starved CI machine cannot trip it. */
async function keyedB(t: Test, extra = '', watchdogMs?: number) {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const dir = tmp();
  const fifo = pttFifo(dir);
  t.teardown(() => fifo.close());
  const config = writeConfig(dir, {
    id: 'gw-b',
    broker: broker.url,
    radio: `  - name: b
    ptt: { type: cm108, device: ${fifo.path}${watchdogMs ? `, watchdogMs: ${watchdogMs}` : ''} }
    audio: { sampleRate: 48000, output: { type: file, path: ${path.join(dir, 'out.wav')} } }`,
    extra,
  });
  const b = runGateway(config);
  t.teardown(() => b.proc.kill('SIGKILL'));
  await b.waitFor(/"event":"ready"/);
  const send = startCli(['send', '--broker', broker.url, '--channel', 'link', '--name', 'Base', SPEECH]);
  t.teardown(() => send.proc.kill('SIGKILL'));
  const keyed = () => fifo.reports.some((r) => r.hex === KEY);
  const until = Date.now() + 5000;
  while (!keyed() && Date.now() < until) await sleep(10);
  t.ok(keyed(), 'B keyed for the over');
  await sleep(600); // well into the over
  const unkeyedAfter = (at: number) => fifo.reports.find((r) => r.hex === UNKEY && r.at >= at);
  return { broker, dir, fifo, b, send, config, unkeyedAfter };
}

t.test('a frozen daemon (SIGSTOP) releases the transmitter within 200 ms', async (t) => {
  const { b, unkeyedAfter } = await keyedB(t);
  const at = Date.now();
  b.proc.kill('SIGSTOP');
  t.teardown(() => b.proc.kill('SIGCONT'));
  const until = Date.now() + 3000;
  while (!unkeyedAfter(at) && Date.now() < until) await sleep(5);
  const u = unkeyedAfter(at);
  t.ok(u, 'the guard unkeyed');
  // Design bound: the 150 ms watchdog after the last heartbeat (≤ 37 ms before the stop); the rest is this test's FIFO reader on a busy machine.
  t.ok(u!.at - at <= 300, `unkeyed ${u!.at - at} ms after the event loop stopped`);
  b.proc.kill('SIGCONT');
  await b.waitFor(/PTT watchdog/);
});

t.test('SIGKILL mid-over: the guard unkeys at once; reset afterwards leaves it idle', async (t) => {
  const { b, unkeyedAfter, fifo, config } = await keyedB(t, '', 1000);
  const at = Date.now();
  b.proc.kill('SIGKILL');
  // The line must end unkeyed: the guard's release after the kill, or (on a starved CI machine) its
  // watchdog having released it already — either way the last report is an unkey.
  const idle = () => fifo.reports.at(-1)?.hex === UNKEY;
  const until = Date.now() + 3000;
  while (!(unkeyedAfter(at) || idle()) && Date.now() < until) await sleep(5);
  await sleep(300);
  t.ok(idle(), `the line ends unkeyed (${unkeyedAfter(at) ? `released ${unkeyedAfter(at)!.at - at} ms after SIGKILL` : 'already released by the watchdog'})`);
  if (!idle()) {
    // Seen once in CI and never reproduced here: keep what tells the guard's side of it.
    t.comment(`reports: ${fifo.reports.map((r) => `${r.hex}@${r.at - at}`).join(' ')}`);
    t.comment(
      `processes: ${spawnSync('ps', ['-eo', 'pid,ppid,stat,etimes,args'], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => /ptt-guard|hidraw|cat /.test(l))
        .join(' | ')}`,
    );
    t.comment(
      `daemon output tail: ${b
        .events()
        .slice(-8)
        .map((e) => JSON.stringify(e))
        .join(' | ')}`,
    );
  }
  const before = fifo.reports.length;
  const r = await runCli(['reset', '--config', config]);
  t.equal(r.code, 0, `reset exits 0: ${r.stdout}${r.stderr}`);
  await sleep(200);
  const after = fifo.reports.slice(before).map((x) => x.hex);
  t.ok(after.length >= 1 && after.every((h) => h === UNKEY), `reset wrote only unkey reports (${after.join(' ')})`);
});

t.test('SIGTERM mid-over: unkeys, leaves the channel, exits 0', async (t) => {
  const { b, unkeyedAfter } = await keyedB(t, '', 1000);
  const at = Date.now();
  b.proc.kill('SIGTERM');
  const r = await b.result;
  t.equal(r.code, 0);
  t.ok(unkeyedAfter(at), 'unkeyed');
  t.match(r.stdout, /"event":"ptt"[^\n]*"on":false[^\n]*"reason":"stopping"/, 'PTT off logged with its reason');
});

t.test('broker killed mid-over: B unkeys on starvation; broker back: both recover without a restart', async (t) => {
  const { broker, b, unkeyedAfter, fifo, send } = await keyedB(t, '', 1000);
  const at = Date.now();
  await broker.stop();
  const until = Date.now() + 3000;
  while (!unkeyedAfter(at) && Date.now() < until) await sleep(5);
  const u = unkeyedAfter(at);
  t.ok(u, 'unkeyed');
  t.ok(u!.at - at <= 300 + 250, `unkeyed ${u!.at - at} ms after the broker died (starvation 300 ms)`);
  await b.waitFor(/starvation/);
  await broker.restart!();
  await b.waitFor(/"event":"broker","state":"online"/, 15000);
  const keys = fifo.reports.filter((r) => r.hex === KEY).length;
  // The first sender reconnects too and finishes its over; B, having given up on it, never
  // transmits its stale remainder.
  t.equal((await send.result).code, 0);
  t.equal(fifo.reports.filter((r) => r.hex === KEY).length, keys, 'no key-up for the stale rest of the interrupted over');
  const again = await runCli(['send', '--broker', broker.url, '--channel', 'link', '--name', 'Base', '--fast', SPEECH]);
  t.equal(again.code, 0, again.stderr);
  const until2 = Date.now() + 5000;
  while (fifo.reports.filter((r) => r.hex === KEY).length === keys && Date.now() < until2) await sleep(10);
  t.equal(fifo.reports.filter((r) => r.hex === KEY).length, keys + 1, 'B keyed for the next over without a restart');
});

t.test('an over that ends inside the TX delay (default 150 ms watchdog): the guard keeps its heartbeat until the held audio is out and the hang is over', async (t) => {
  // The playout's ticks are the guard's heartbeat during an over; the over below is all queued
  // behind a 700 ms TX delay and ends before it, so the bridge must hand the heartbeat back to the
  // timer while it waits, or the watchdog would unkey a healthy transmitter.
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const dir = tmp();
  const fifo = pttFifo(dir);
  t.teardown(() => fifo.close());
  const b = runGateway(
    writeConfig(dir, {
      id: 'gw-b',
      broker: broker.url,
      radio: `  - name: b
    ptt: { type: cm108, device: ${fifo.path} }
    audio: { sampleRate: 48000, output: { type: 'null' } }`,
      extra: 'bridge:\n  txDelayMs: 700\n  hangMs: 400\n',
    }),
  );
  t.teardown(() => b.proc.kill('SIGKILL'));
  await b.waitFor(/"event":"ready"/);
  const sp = await readWav(SPEECH);
  const short = path.join(dir, 'short.wav');
  writeFileSync(short, encodeWav({ sampleRate: sp.sampleRate, samples: sp.samples.subarray(8000, 8000 + sp.sampleRate * 0.3) }));
  const r = await runCli(['send', '--broker', broker.url, '--channel', 'link', '--name', 'Base', short]);
  t.equal(r.code, 0, r.stderr);
  await b.waitFor(/"event":"ptt"[^\n]*"on":false/, 5000);
  const key = fifo.reports.find((x) => x.hex === KEY);
  const unkeyed = () => fifo.reports.find((x) => x.hex === UNKEY && x.at >= (key?.at ?? Infinity));
  const until = Date.now() + 2000;
  while (!unkeyed() && Date.now() < until) await sleep(10);
  const unkey = unkeyed();
  t.ok(key && unkey, 'keyed, then unkeyed');
  t.ok(unkey!.at - key!.at >= 700 + 400 - 50, `unkeyed ${unkey!.at - key!.at} ms after keying: the TX delay (the over was queued behind it), then the hang time`);
  t.notOk(
    b.events().some((e) => /watchdog/i.test(String(e.msg ?? ''))),
    'no watchdog',
  );
  t.match(
    b
      .events()
      .filter((e) => e.event === 'ptt')
      .map((e) => e.reason)
      .join(' | '),
    /hang time over/,
    'unkeyed by the hang timer',
  );
});
