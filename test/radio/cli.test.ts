import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeWav } from '../../gateway/src/audio/wav.js';
import { sine } from '../helpers/audio.js';
import { runCli, startCli } from '../helpers/cli.js';
import { readOr, tempDir } from './helpers.js';

/** A config whose PTT is a command that logs "key"/"unkey" with a millisecond time stamp. */
function commandConfig(dir: string, extra = '', key = 'echo key $(date +%s%3N)'): { cfg: string; log: string } {
  const log = path.join(dir, 'ptt.log');
  const cfg = path.join(dir, 'config.yaml');
  writeFileSync(
    cfg,
    `radios:
  - name: hf
    ptt: { type: command, key: "${key} >> ${log}", unkey: "echo unkey $(date +%s%3N) >> ${log}" }
${extra}`,
  );
  return { cfg, log };
}

const events = (log: string) =>
  readOr(log)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ') as [string, string]);

t.test('devices works on a machine without radio hardware', async (t) => {
  const r = await runCli(['devices']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Sound cards .*:\n/);
  t.match(r.stdout, /USB HID devices \(hidraw\):\n {2}none found/);
  t.match(r.stdout, /GPIO chips \(character device\):\n {2}none found/);
  const j = await runCli(['devices', '--json']);
  t.equal(j.code, 0);
  t.same(Object.keys(JSON.parse(j.stdout)), ['soundCards', 'serialPorts', 'hidraw', 'gpioChips', 'sysfsGpio', 'notes']);
  const bad = await runCli(['devices', '--all']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^talkbridge: Unknown option '--all'/);
});

t.test('ptt-test keys for N seconds, then unkeys, and says so', async (t) => {
  const dir = tempDir(t);
  const { cfg, log } = commandConfig(dir);
  const r = await runCli(['ptt-test', '--config', cfg, '--seconds', '0.4']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'hf: command PTT: line idle\nhf: keyed for 0.4 s\nhf: unkeyed\n');
  const ev = events(log);
  t.same(
    ev.map((e) => e[0]),
    ['unkey', 'key', 'unkey', 'unkey', 'unkey'],
    "idle on open, key, unkey; on close idle again, then the guard's final idle",
  );
  const held = Number(ev[2]![1]) - Number(ev[1]![1]);
  t.ok(held >= 380 && held < 1500, `keyed for ${held} ms`);
});

t.test('ptt-test: a failing key is reported, the line is unkeyed, exit 1', async (t) => {
  const dir = tempDir(t);
  const { cfg, log } = commandConfig(dir, '', "echo 'relay: no such device' >&2; exit 4; echo");
  const r = await runCli(['ptt-test', '--config', cfg]);
  t.equal(r.code, 1);
  t.match(r.stderr, /hf: PTT fault: command PTT: cannot key: .*failed \(status 4\): relay: no such device \(line is idle\)/);
  t.same(
    events(log).map((e) => e[0]),
    ['unkey', 'unkey', 'unkey', 'unkey'],
    'open, recovery after the failed key, close, guard',
  );
});

t.test('ptt-test: Ctrl-C while keyed unkeys at once', async (t) => {
  const dir = tempDir(t);
  const { cfg, log } = commandConfig(dir);
  const c = startCli(['ptt-test', '--config', cfg, '--seconds', '10']);
  await c.waitFor(/keyed for 10 s/);
  c.proc.kill('SIGINT');
  const r = await c.result;
  t.equal(r.code, 0);
  t.match(r.stdout, /hf: unkeyed\n$/);
  const ev = events(log);
  t.equal(ev.at(-1)![0], 'unkey');
  t.ok(Number(ev[2]![1]) - Number(ev[1]![1]) < 3000, 'did not wait out the 10 s');
});

t.test('ptt-test --off drives every radio idle (ExecStopPost)', async (t) => {
  const dir = tempDir(t);
  const other = path.join(dir, 'other.log');
  const { cfg, log } = commandConfig(dir, `  - name: vhf\n    ptt: { type: command, key: "echo key >> ${other}", unkey: "echo unkey >> ${other}" }\n`);
  const r = await runCli(['ptt-test', '--config', cfg, '--off']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'hf: command PTT idle\nvhf: command PTT idle\n');
  t.notMatch(readOr(log), /^key /m, 'nothing keyed');
  t.match(readOr(other), /^unkey\n/);
  const two = await runCli(['ptt-test', '--config', cfg]);
  t.equal(two.code, 1);
  t.match(two.stderr, /has 2 radios \(hf, vhf\): choose one with --radio NAME/);
});

t.test('ptt-test and levels: bad flags and configs are one-line errors', async (t) => {
  const dir = tempDir(t);
  const { cfg } = commandConfig(dir);
  const empty = path.join(dir, 'empty.yaml');
  writeFileSync(empty, 'channels: [{ name: base }]\n');
  const cases: Array<[string[], number, RegExp]> = [
    [['ptt-test'], 2, /--config is required/],
    [['ptt-test', '--config', cfg, '--seconds', '11'], 2, /--seconds must be between 0.1 and 10, got 11/],
    [['ptt-test', '--config', cfg, '--seconds', 'x'], 2, /--seconds must be a number/],
    [['ptt-test', '--config', cfg, '--radio', 'uhf'], 1, /no radio named "uhf" in .* \(radios: hf\)/],
    [['ptt-test', '--config', empty], 1, /has no radios: add a radios: section/],
    [['ptt-test', '--config', path.join(dir, 'missing.yaml')], 1, /cannot read config .*: no such file/],
    [['levels'], 2, /--config is required/],
    [['levels', '--config', cfg], 1, /radio hf has no audio input/],
    [['levels', '--config', cfg, '--interval', '5'], 2, /--interval must be between 50 and 10000/],
  ];
  for (const [args, code, re] of cases) {
    const r = await runCli(args);
    t.equal(r.code, code, args.join(' '));
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('levels meters a radio input: peak and RMS in dBFS, clipping flagged, VOX carrier shown', async (t) => {
  const dir = tempDir(t);
  const wav = path.join(dir, 'rx.wav');
  // -12 dBFS peak sine: RMS is 3 dB lower.
  await writeWav(wav, { sampleRate: 16000, samples: sine(1000, 16000, 1, 10 ** (-12 / 20)) });
  const cfg = path.join(dir, 'levels.yaml');
  writeFileSync(
    cfg,
    `radios:\n  - name: rx\n    ptt: { type: none }\n    cos: { type: vox, thresholdDb: -30, attackMs: 40, hangMs: 300 }\n    audio: { sampleRate: 16000, input: { type: file, path: ${wav}, loop: true } }\n`,
  );
  const r = await runCli(['levels', '--config', cfg, '--seconds', '0.8', '--interval', '100']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('peak'));
  t.ok(lines.length >= 4, `${lines.length} meter lines`);
  const last = lines.at(-1)!;
  t.match(last, /^peak {2}-12\.0 dBFS {2}rms {2}-15\.0 dBFS {2}\[#+-+\] {2}carrier$/);

  const hot = path.join(dir, 'hot.wav');
  const clipped = Int16Array.from({ length: 16000 }, (_, i) => Math.max(-32768, Math.min(32767, Math.round(1.2 * 32767 * Math.sin((2 * Math.PI * 1000 * i) / 16000)))));
  await writeWav(hot, { sampleRate: 16000, samples: clipped });
  writeFileSync(cfg, `radios:\n  - name: rx\n    ptt: { type: none }\n    audio: { sampleRate: 16000, input: { type: file, path: ${hot} } }\n`);
  const h = await runCli(['levels', '--config', cfg, '--seconds', '0.5', '--interval', '100']);
  t.equal(h.code, 0, h.stderr);
  t.match(h.stdout, /peak {4}0\.0 dBFS .* CLIPPING \(\d+ samples\)/);
});

t.test('levels with an ALSA card that is not there reports waiting, not a crash', async (t) => {
  const dir = tempDir(t);
  const cfg = path.join(dir, 'alsa.yaml');
  writeFileSync(cfg, 'radios:\n  - name: rx\n    interface: cm108-uri\n    ptt: { device: /dev/null }\n    cos: { type: none }\n    audio: { input: { device: "plughw:CARD=NoSuchCard,DEV=0" } }\n');
  const c = startCli(['levels', '--config', cfg, '--seconds', '1.5']);
  const r = await c.result;
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /audio waiting: plughw:CARD=NoSuchCard,DEV=0: .*retrying in/);
});
