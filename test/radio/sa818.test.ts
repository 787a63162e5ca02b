import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SerialPort } from 'serialport';
import { ModuleError, Sa818, parseReadGroup, setGroupCommand } from '../../gateway/src/radio/module/sa818.js';
import { CTCSS, DCS, moduleFreq } from '../../gateway/src/radio/module/tones.js';
import type { ModuleChannel } from '../../gateway/src/radio/types.js';
import { ROOT, runCli } from '../helpers/cli.js';
import { startMosquitto } from '../helpers/brokers.js';
import { KEY, pttFifo, runGateway, writeConfig } from '../bridge/helpers.js';
import { loadPlan, planSettings } from '../../gateway/src/radio/profiles.js';
import { type Teardown, tempDir, waitFor } from './helpers.js';

type Reply = (cmd: string, sim: ModuleSim) => string | string[] | null;

/** The module's side of a real pty pair: parses AT lines and answers like an SA818 (or not). */
class ModuleSim {
  received: string[] = [];
  group = '0,146.5200,146.5200,0000,1,0000';
  private buf = '';
  constructor(
    readonly port: SerialPort,
    public reply: Reply,
  ) {
    port.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      let i: number;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const cmd = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        this.received.push(cmd);
        const r = this.reply(cmd, this);
        for (const line of r === null ? [] : Array.isArray(r) ? r : [r]) port.write(line + '\r\n');
      }
    });
  }
}

/** A well-behaved SA818S. */
const good: Reply = (cmd, sim) => {
  if (cmd === 'AT+DMOCONNECT') return '+DMOCONNECT:0';
  if (cmd.startsWith('AT+DMOSETGROUP=')) {
    sim.group = cmd.slice(15);
    return '+DMOSETGROUP:0';
  }
  if (cmd.startsWith('AT+DMOSETVOLUME=')) return '+DMOSETVOLUME:0';
  if (cmd.startsWith('AT+SETFILTER=')) return '+DMOSETFILTER:0';
  if (cmd.startsWith('AT+SETTAIL=')) return '+DMOSETTAIL:0';
  if (cmd === 'AT+DMOREADGROUP') return `+DMOREADGROUP:${sim.group}`;
  if (cmd === 'AT+VERSION') return '+VERSION:SA818_V4.0';
  if (cmd === 'RSSI?') return 'RSSI=042';
  return null;
};

async function ptyPair(t: Teardown, reply: Reply): Promise<{ path: string; sim: ModuleSim }> {
  const dir = tempDir(t);
  const a = path.join(dir, 'ttyA');
  const b = path.join(dir, 'ttyB');
  const socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  t.teardown(() => socat.kill());
  await waitFor(() => existsSync(a) && existsSync(b), 5000, 'socat ptys');
  const port = new SerialPort({ path: b, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  t.teardown(() => new Promise((r) => (port.isOpen ? port.close(() => r(undefined)) : r(undefined))));
  return { path: a, sim: new ModuleSim(port, reply) };
}

const ch = (o: Partial<ModuleChannel> = {}): ModuleChannel => ({ rxMHz: 146.52, txMHz: 146.52, rxTone: { ctcss: 88.5 }, txTone: { ctcss: 88.5 }, squelch: 1, bandwidth: 'narrow', ...o });

t.test('tone tables and the group command line', async (t) => {
  t.equal(CTCSS.length, 38);
  t.equal(DCS.length, 104);
  t.equal(setGroupCommand(ch()), 'AT+DMOSETGROUP=0,146.5200,146.5200,0008,1,0008');
  t.equal(setGroupCommand(ch({ rxMHz: 145.6, txMHz: 145.0, rxTone: { dcs: 23, inverted: true }, txTone: null, squelch: 4, bandwidth: 'wide' })), 'AT+DMOSETGROUP=1,145.0000,145.6000,0000,4,023I');
  t.equal(moduleFreq(446.00625, 'RX'), '446.0063', "PMR446 6.25 kHz offset rounds to the module's 100 Hz format");
  t.throws(() => setGroupCommand(ch({ rxMHz: 300 })), /out of band/);
  t.throws(() => setGroupCommand(ch({ txMHz: 440 })), /different bands/);
  t.throws(() => setGroupCommand(ch({ rxTone: { ctcss: 88.4 } })), /not a standard CTCSS tone/);
  t.throws(() => setGroupCommand(ch({ txTone: { dcs: 24, inverted: false } })), /not a standard DCS code/);
  t.throws(() => setGroupCommand(ch({ rxMHz: 146.5213 })), /channel step/);
  t.throws(() => setGroupCommand(ch({ squelch: 9 })), /squelch must be 0-8/);
  t.same(parseReadGroup('+DMOREADGROUP:1,145.0000,145.6000,0000,4,023I'), ch({ rxMHz: 145.6, txMHz: 145.0, rxTone: { dcs: 23, inverted: true }, txTone: null, squelch: 4, bandwidth: 'wide' }));
  t.throws(() => parseReadGroup('+DMOREADGROUP:9,1,2'), ModuleError);
});

t.test('program over a pty: exact command sequence, verified by read-back', async (t) => {
  const { path: p, sim } = await ptyPair(t, good);
  const m = new Sa818({ port: p, timeoutMs: 300 });
  const steps = await m.program({ channel: ch(), volume: 6, filters: { emphasis: true, highpass: true, lowpass: false }, tail: true });
  await m.close();
  t.same(sim.received, ['AT+DMOCONNECT', 'AT+DMOSETGROUP=0,146.5200,146.5200,0008,1,0008', 'AT+DMOSETVOLUME=6', 'AT+SETFILTER=0,0,1', 'AT+SETTAIL=1', 'AT+DMOREADGROUP']);
  t.same(
    steps.map((s) => [s.step, s.ok]),
    [
      ['handshake', true],
      ['group', true],
      ['volume', true],
      ['filters', true],
      ['tail', true],
      ['verify', true],
    ],
  );
  t.equal(steps.at(-1)!.detail, 'read back and matches');
});

t.test('power-up noise before the reply is skipped', async (t) => {
  const { path: p } = await ptyPair(t, (cmd, sim) => (cmd === 'AT+DMOCONNECT' ? ['\x00\xffgarbage', '+DMOCONNECT:0'] : good(cmd, sim)));
  const m = new Sa818({ port: p, timeoutMs: 300 });
  const steps = await m.program({ channel: ch() });
  await m.close();
  t.equal(
    steps.every((s) => s.ok),
    true,
  );
});

t.test('silent module: retries, then a clear error and nothing changed', async (t) => {
  const { path: p, sim } = await ptyPair(t, () => null);
  const m = new Sa818({ port: p, timeoutMs: 150, retries: 2 });
  const err = await m.program({ channel: ch() }).then(
    () => null,
    (e: unknown) => e as ModuleError,
  );
  await m.close();
  t.type(err, ModuleError);
  if (!err) return;
  t.match(err.message, /handshake failed: no \+DMOCONNECT: reply to AT\+DMOCONNECT after 3 tries of 150 ms \(silence: check wiring, baud rate and that the module is powered\); nothing was changed/);
  t.same(sim.received, ['AT+DMOCONNECT', 'AT+DMOCONNECT', 'AT+DMOCONNECT']);
});

t.test('wrong replies: named in the error', async (t) => {
  const { path: p } = await ptyPair(t, () => 'ERROR');
  const m = new Sa818({ port: p, timeoutMs: 150, retries: 1 });
  await t.rejects(m.program({ channel: ch() }), /no \+DMOCONNECT: reply .* after 2 tries .*\(got "ERROR", "ERROR" instead\)/);
  await m.close();
});

t.test('module refuses a step half-way: error says what was and was not done', async (t) => {
  const { path: p, sim } = await ptyPair(t, (cmd, s) => (cmd.startsWith('AT+DMOSETVOLUME') ? '+DMOSETVOLUME:1' : good(cmd, s)));
  const m = new Sa818({ port: p, timeoutMs: 300 });
  const err = await m.program({ channel: ch(), volume: 9 - 1, filters: { emphasis: true, highpass: true, lowpass: true }, tail: false }).then(
    () => null,
    (e: unknown) => e as ModuleError,
  );
  await m.close();
  if (!err) return t.fail('programming should have failed');
  t.match(
    err.message,
    /volume failed: the module refused AT\+DMOSETVOLUME=8 \(\+DMOSETVOLUME:1\); done: handshake, group; NOT done: volume, filters, tail: the module now holds a mix of old and new settings/,
  );
  t.same(
    err.steps.map((s) => [s.step, s.ok]),
    [
      ['handshake', true],
      ['group', true],
      ['volume', false],
    ],
  );
  t.notOk(
    sim.received.some((c) => c.startsWith('AT+SETFILTER')),
    'stopped at the failure',
  );
});

t.test('module goes silent after the group is set', async (t) => {
  let answered = 0;
  const { path: p } = await ptyPair(t, (cmd, s) => (answered++ < 2 ? good(cmd, s) : null));
  const m = new Sa818({ port: p, timeoutMs: 100, retries: 1 });
  await t.rejects(m.program({ channel: ch(), volume: 5 }), /volume failed: no \+DMOSETVOLUME: reply .*; done: handshake, group; NOT done: volume/);
  await m.close();
});

t.test('DRA818 (no read-back) programs fine, reported as not verified; a wrong read-back fails', async (t) => {
  const { path: p } = await ptyPair(t, (cmd, s) => (cmd === 'AT+DMOREADGROUP' ? null : good(cmd, s)));
  const m = new Sa818({ port: p, timeoutMs: 150 });
  const steps = await m.program({ channel: ch() });
  await m.close();
  t.same(steps.at(-1), { step: 'verify', ok: true, detail: 'this module cannot read its settings back: not verified' });

  const { path: p2 } = await ptyPair(t, (cmd, s) => (cmd === 'AT+DMOREADGROUP' ? '+DMOREADGROUP:0,146.5200,146.5200,0000,1,0000' : good(cmd, s)));
  const m2 = new Sa818({ port: p2, timeoutMs: 150 });
  await t.rejects(m2.program({ channel: ch() }), /read-back differs from what was set: module has RX tone none, TX tone none/);
  await m2.close();
});

t.test('bad settings are refused before a byte is sent', async (t) => {
  const { path: p, sim } = await ptyPair(t, good);
  const m = new Sa818({ port: p, timeoutMs: 150 });
  await t.rejects(m.program({ channel: ch({ rxMHz: 480.5, txMHz: 480.5 }) }), /out of band/);
  await t.rejects(m.program({ channel: ch(), volume: 0 }), /volume must be 1-8/);
  await m.close();
  t.same(sim.received, []);
});

t.test('read: version, settings, RSSI', async (t) => {
  const { path: p, sim } = await ptyPair(t, good);
  sim.group = '1,439.5000,434.5000,0012,3,754N';
  const m = new Sa818({ port: p, timeoutMs: 200 });
  const r = await m.read();
  await m.close();
  t.same(r, { version: 'SA818_V4.0', channel: { bandwidth: 'wide', txMHz: 439.5, rxMHz: 434.5, txTone: { ctcss: 100.0 }, squelch: 3, rxTone: { dcs: 754, inverted: false } }, rssi: 42 });
});

t.test('CLI radio program / read against the simulated module', async (t) => {
  const { path: p, sim } = await ptyPair(t, good);
  const r = await runCli(['radio', 'program', '--port', p, '--profile', 'pmr446', '--channel', '3', '--timeout', '300']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /group: RX 446\.0313 MHz, TX 446\.0313 MHz, no tone, squelch 2, narrow\nvolume: volume 6\n/);
  t.match(r.stdout, /verify: read back and matches\nprogrammed SA818\/DRA818 on /);
  t.ok(sim.received.includes('AT+DMOSETGROUP=0,446.0313,446.0313,0000,2,0000'));

  const man = await runCli(['radio', 'program', '--port', p, '--rx', '145.6', '--tx', '145.0', '--dcs', '023I', '--squelch', '4', '--bandwidth', 'wide', '--timeout', '300']);
  t.equal(man.code, 0, man.stderr);
  t.equal(sim.received.filter((c) => c.startsWith('AT+DMOSETGROUP')).at(-1), 'AT+DMOSETGROUP=1,145.0000,145.6000,023I,4,023I');

  const rd = await runCli(['radio', 'read', '--port', p, '--timeout', '300']);
  t.equal(rd.code, 0, rd.stderr);
  t.match(rd.stdout, /version: SA818_V4\.0\nchannel: RX 145\.6000 MHz, TX 145\.0000 MHz, TX tone DCS 023I, RX tone DCS 023I, squelch 4, wide/);
});

t.test('CLI radio: silent module and bad flags are one-line errors with non-zero exits', async (t) => {
  const { path: p } = await ptyPair(t, () => null);
  const silent = await runCli(['radio', 'program', '--port', p, '--rx', '146.52', '--timeout', '100']);
  t.equal(silent.code, 1);
  t.match(silent.stderr, /^talkbridge: SA818\/DRA818 on .*: handshake failed: no \+DMOCONNECT: reply .*nothing was changed\n$/);
  const cases: Array<[string[], RegExp]> = [
    [['radio', 'program', '--port', p, '--rx', '500'], /out of band/],
    [['radio', 'program', '--port', p, '--rx', '146.52', '--ctcss', '88.4'], /not a standard CTCSS tone/],
    [['radio', 'program', '--port', p, '--rx', '146.52', '--ctcss', '88.5', '--dcs', '023'], /exclude each other/],
    [['radio', 'program', '--port', p, '--rx', '146.52', '--squelch', '9'], /--squelch must be between 0 and 8/],
    [['radio', 'program', '--port', p, '--rx', '146.52', '--bandwidth', 'medium'], /--bandwidth must be wide or narrow/],
    [['radio', 'program', '--port', p, '--profile', 'nosuch', '--channel', '1'], /unknown channel plan "nosuch" \(available: 2m-simplex, pmr446, sar-vhf\)/],
    [['radio', 'program', '--port', p, '--profile', 'pmr446', '--channel', '17'], /plan pmr446 has no channel 17/],
    [['radio', 'program', '--port', p, '--profile', 'pmr446'], /--profile and --channel go together/],
    [['radio', 'program', '--port', p, '--profile', 'pmr446', '--channel', '1', '--rx', '146.52'], /cannot be combined with --rx/],
    [['radio', 'program', '--rx', '146.52'], /--port is required/],
    [['radio', 'erase', '--port', p], /unknown subcommand "erase"/],
    [['radio', 'program', '--port', p, '--dcs', 'x'], /give --profile NAME --channel N, or --rx MHZ/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  const nodev = await runCli(['radio', 'read', '--port', '/dev/ttyNOPE0']);
  t.equal(nodev.code, 1);
  t.match(nodev.stderr, /\/dev\/ttyNOPE0: no such serial port/);
});

t.test('daemon: tunes the module to its plan channel before the radio opens; a silent module keeps the radio off the air', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const dir = tempDir(t);
  const fifo = pttFifo(dir);
  t.teardown(() => fifo.close());
  const config = (port: string, module = `{ type: sa818, port: ${port}, plan: sar-vhf, channel: 4 }`) =>
    writeConfig(dir, {
      id: 'gw-hat',
      broker: broker.url,
      radio: `  - name: hat\n    ptt: { type: cm108, device: ${fifo.path} }\n    audio: { sampleRate: 48000, output: { type: 'null' } }\n    module: ${module}`,
    });

  const { path: p, sim } = await ptyPair(t, good);
  const gw = runGateway(config(p));
  await gw.waitFor(/"event":"ready"/, 20000);
  // VTAC11: 151.1375 MHz simplex, CTCSS 156.7 Hz both ways, the plan's squelch, narrow.
  const group = sim.received.filter((c) => c.startsWith('AT+DMOSETGROUP='));
  t.same(group, [setGroupCommand(planSettings(loadPlan('sar-vhf'), 4).channel)]);
  t.match(group[0], /^AT\+DMOSETGROUP=0,151\.1375,151\.1375,0025,\d,0025$/);
  t.ok(sim.received.includes('AT+DMOREADGROUP'), 'read back');
  const ev = gw.events();
  const programmed = ev.findIndex((e) => e.event === 'module' && e.state === 'programmed');
  t.ok(programmed >= 0, 'logged');
  t.match(ev[programmed], { radio: 'hat', plan: 'sar-vhf', channel: 4 });
  t.ok(programmed < ev.findIndex((e) => e.event === 'ready'), 'before the daemon is ready');
  gw.proc.kill('SIGTERM');
  t.equal((await gw.result).code, 0);

  // A module that never answers: the start fails with what happened, and the transmitter never keys.
  const silent = await ptyPair(t, () => null);
  const bad = runGateway(config(silent.path));
  const r = await bad.result;
  t.not(r.code, 0);
  t.match(r.stderr, /radio hat: SA818\/DRA818 on .* could not be programmed to plan sar-vhf channel 4, so the radio stays off the air: .*handshake failed/);
  t.notOk(
    fifo.reports.some((x) => x.hex === KEY),
    'never keyed',
  );

  // Config errors are caught by the config check, before the daemon starts.
  for (const [module, re] of [
    [`{ type: sa818, port: ${p}, plan: sar-vhf }`, /radios\[0\]\.module\.channel: plan and channel go together/],
    [`{ type: sa818, port: ${p}, plan: sar-vhf, channel: 40 }`, /radios\[0\]\.module\.channel: plan sar-vhf has no channel 40/],
    [`{ type: sa818, port: ${p}, plan: nosuch, channel: 1 }`, /radios\[0\]\.module\.plan: unknown channel plan "nosuch"/],
  ] as const) {
    const c = await runCli(['check-config', config(p, module)]);
    t.equal(c.code, 1, module);
    t.match(c.stderr, re, module);
  }
  // docs/config.md's example, on the sa818-hat profile, is a valid config.
  const example = /```yaml\n(radios:\n {2}- name: hat\n[\s\S]*?)```/.exec(readFileSync(path.join(ROOT, 'docs/config.md'), 'utf8'))?.[1];
  t.ok(example, 'docs/config.md has the example');
  const file = path.join(dir, 'doc.yaml');
  writeFileSync(file, example!);
  const shown = await runCli(['check-config', '--print', file]);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /plan\W+sar-vhf/);
});
