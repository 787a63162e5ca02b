import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { cm108Report } from '../../gateway/src/radio/ptt/cm108.js';
import { runCli } from '../helpers/cli.js';
import { noGuardsLeft } from '../radio/helpers.js';
import { tempDir as tempDirOnly, waitFor, sleep } from './helpers.js';

/** A temp dir; after the test, no PTT guard naming it (the CLI's, for a device or command in it) may be left running. */
function tempDir(t: Parameters<typeof tempDirOnly>[0] & { readonly name?: string }): string {
  const d = tempDirOnly(t);
  t.teardown(() => noGuardsLeft(t.name ?? d, d));
  return d;
}

/**
 * A FIFO standing in for /dev/hidrawN, read by a separate `cat` that collects every byte written.
 * The reader holds the FIFO open read-write so it never sees end-of-file between the daemon's
 * writes and the PTT guard's, which open it separately.
 */
function fakeHidraw(t: Parameters<typeof tempDir>[0], dir: string, name: string) {
  const fifo = path.join(dir, name);
  execFileSync('mkfifo', [fifo]);
  const got: number[] = [];
  const reader = spawn('bash', ['-c', 'exec 3<>"$1"; exec cat <&3', 'reader', fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
  reader.stdout.on('data', (d: Buffer) => got.push(...d));
  t.teardown(() => reader.kill());
  return { fifo, got };
}

function reports(bytes: number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < bytes.length; i += 5) out.push(bytes.slice(i, i + 5));
  return out;
}

t.test('reset writes the exact CM108 unkey report and exits 0', async (t) => {
  const dir = tempDir(t);
  const hid = fakeHidraw(t, dir, 'hidraw0');
  const cfg = path.join(dir, 'config.yaml');
  writeFileSync(cfg, `radios:\n  - name: hf\n    ptt: { type: cm108, device: ${hid.fifo}, gpio: 3 }\n`);
  const r = await runCli(['reset', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `hf: CM108 GPIO3 PTT on ${hid.fifo} idle\n`);
  await waitFor(() => hid.got.length >= 5, 3000, 'a report');
  await sleep(200);
  const idle = [...cm108Report(3, false)];
  t.same(idle, [0, 0, 0, 4, 0], 'GPIO3 low, GPIO3 an output');
  t.equal(hid.got.length % 5, 0, 'whole 5-byte reports only');
  t.ok(reports(hid.got).length >= 1);
  t.same(
    reports(hid.got),
    reports(hid.got).map(() => idle),
    'every report written is the unkey report',
  );
});

t.test('reset honours activeLow: idle drives the pin high', async (t) => {
  const dir = tempDir(t);
  const hid = fakeHidraw(t, dir, 'hidraw1');
  const cfg = path.join(dir, 'config.yaml');
  writeFileSync(cfg, `radios:\n  - name: uhf\n    ptt: { type: cm108, device: ${hid.fifo}, gpio: 4, activeLow: true }\n`);
  const r = await runCli(['reset', '--config', cfg]);
  t.equal(r.code, 0, r.stderr);
  await waitFor(() => hid.got.length >= 5, 3000, 'a report');
  await sleep(200);
  t.same(reports(hid.got)[0], [0, 0, 8, 8, 0]);
  t.ok(
    reports(hid.got).every((rep) => rep.join() === '0,0,8,8,0'),
    'only idle reports',
  );
});

t.test('an unreachable radio is named, the others are still released, exit 1', async (t) => {
  const dir = tempDir(t);
  const hid = fakeHidraw(t, dir, 'hidraw2');
  const cfg = path.join(dir, 'config.yaml');
  const gone = path.join(dir, 'unplugged', 'hidraw7');
  writeFileSync(cfg, `radios:\n  - name: gone\n    ptt: { type: cm108, device: ${gone}, gpio: 3 }\n  - name: hf\n    ptt: { type: cm108, device: ${hid.fifo}, gpio: 3 }\n`);
  const r = await runCli(['reset', '--config', cfg]);
  t.equal(r.code, 1);
  t.equal(r.stdout, `hf: CM108 GPIO3 PTT on ${hid.fifo} idle\n`);
  t.match(r.stderr, new RegExp(`^talkbridge: gone: ${gone.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: the USB interface is gone \\(unplugged\\?\\)\n$`));
  await waitFor(() => hid.got.length >= 5, 3000, 'a report');
  t.same(reports(hid.got)[0], [...cm108Report(3, false)]);
});

t.test('ptt-test --off runs the same code as reset', async (t) => {
  const dir = tempDir(t);
  const log = path.join(dir, 'ptt.log');
  const cfg = path.join(dir, 'config.yaml');
  writeFileSync(cfg, `radios:\n  - name: a\n    ptt: { type: command, key: "echo key >> ${log}", unkey: "echo unkey >> ${log}" }\n  - name: b\n    ptt: { type: none }\n`);
  const a = await runCli(['reset', '--config', cfg]);
  const b = await runCli(['ptt-test', '--config', cfg, '--off']);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  t.equal(a.stdout, b.stdout, 'same report');
  t.match(a.stdout, /^a: command PTT idle\nb: .* idle\n$/);
});

t.test('reset: no radios is nothing to do (exit 0); flag and config errors are one line', async (t) => {
  const dir = tempDir(t);
  const empty = path.join(dir, 'empty.yaml');
  writeFileSync(empty, 'channels: [{ name: base }]\n');
  const r = await runCli(['reset', '--config', empty]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `no radios in ${empty}: nothing to unkey\n`);
  const cases: Array<[string[], number, RegExp]> = [
    [['reset'], 2, /--config is required/],
    [['reset', '--config', path.join(dir, 'missing.yaml')], 1, /cannot read config .*: no such file/],
    [['reset', '--config', empty, 'extra'], 2, /unexpected argument "extra"/],
  ];
  for (const [args, code, re] of cases) {
    const c = await runCli(args);
    t.equal(c.code, code, args.join(' '));
    t.match(c.stderr, re);
    t.equal(c.stderr.trim().split('\n').length, 1, 'one line');
  }
});
