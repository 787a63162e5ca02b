/** The CLI as a user meets it: help for everything, and one clear line — never a stack — for mistakes. */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, FIXTURES, ROOT, runCli } from '../helpers/cli.js';
import { freePort, startMosquitto } from '../helpers/brokers.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-cli-'));

t.test('--help explains every command and flag', async (t) => {
  const main = await runCli(['--help']);
  t.equal(main.code, 0);
  for (const c of ['run', 'send', 'listen', 'check-config']) t.match(main.stdout, new RegExp(`\\n  ${c} `));
  for (const [cmd, flags] of [
    ['send', ['--broker', '--channel', '--name', '--fast', '--frames-per-packet']],
    ['listen', ['--broker', '--channel', '--out', '--overs', '--timeout']],
  ] as const) {
    const h = await runCli([cmd, '--help']);
    t.equal(h.code, 0);
    for (const f of flags) t.match(h.stdout, f, `${cmd} --help mentions ${f}`);
  }
});

const oneLine = (t: Test, r: { code: number | null; stderr: string; stdout: string }, code: number, re: RegExp) => {
  t.equal(r.code, code, `exit ${code}`);
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${r.stderr.trim()}`);
  t.match(lines[0], /^talkbridge: /);
  t.match(lines[0], re);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
};

t.test('mistakes get one clear line and a non-zero exit', async (t) => {
  const port = await freePort(); // nothing listens there
  const broker = `mqtt://127.0.0.1:${port}`;
  const notWav = path.join(tmp, 'not.wav');
  writeFileSync(notWav, 'this is not audio');
  const pcm8 = path.join(tmp, '8bit.wav');
  const h = Buffer.alloc(44 + 100);
  h.write('RIFF', 0);
  h.writeUInt32LE(136, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(8000, 24);
  h.writeUInt32LE(8000, 28);
  h.writeUInt16LE(1, 32);
  h.writeUInt16LE(8, 34);
  h.write('data', 36);
  h.writeUInt32LE(100, 40);
  writeFileSync(pcm8, h);

  oneLine(t, await runCli(['bogus']), 2, /unknown command "bogus"/);
  oneLine(t, await runCli(['send', '--bogus', SPEECH]), 2, /Unknown option '--bogus'/);
  oneLine(t, await runCli(['send', '--channel', 'a', SPEECH]), 2, /--broker is required/);
  oneLine(t, await runCli(['send', '--broker', 'http://x', '--channel', 'a', SPEECH]), 2, /--broker must be an mqtt/);
  oneLine(t, await runCli(['send', '--broker', broker, SPEECH]), 2, /--channel is required/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a/b', SPEECH]), 2, /--channel: channel name "a\/b" is not valid/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a', '--frames-per-packet', '4', SPEECH]), 2, /--frames-per-packet must be between 1 and 3/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a', '--frames-per-packet', 'two', SPEECH]), 2, /must be a whole number/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a']), 2, /missing argument/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a', path.join(tmp, 'none.wav')]), 1, /cannot read .*none\.wav: no such file/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a', notWav]), 1, /not a WAV file/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a', pcm8]), 1, /8-bit samples/);
  oneLine(t, await runCli(['send', '--broker', broker, '--channel', 'a', SPEECH]), 1, /cannot connect to broker .*connection refused/);
  oneLine(t, await runCli(['listen', '--broker', broker, '--channel', 'a', '--out', path.join(tmp, 'x.wav')]), 1, /cannot connect to broker/);
  oneLine(t, await runCli(['listen', '--broker', broker, '--channel', 'a', '--out', path.join(tmp, 'x.txt')]), 2, /must name a \.wav file/);
  oneLine(t, await runCli(['listen', '--broker', broker, '--channel', 'a', '--out', '/nonexistent/dir/x.wav']), 2, /does not exist/);
  oneLine(t, await runCli(['listen', '--broker', broker, '--channel', 'a', '--out', path.join(tmp, 'x.wav'), '--timeout=-1']), 2, /--timeout must be between/);
  oneLine(t, await runCli(['listen', '--broker', broker, '--channel', 'a', '--out', path.join(tmp, 'x.wav'), '--timeout', '-1']), 2, /argument is ambiguous/);
});

t.test('check-config reports every problem at once, with paths', async (t) => {
  const bad = path.join(tmp, 'bad.yaml');
  writeFileSync(bad, 'broker:\n  url: http://example\n  colour: blue\nchannels:\n  - name: "no/slash"\ncodec:\n  frameMs: 30\n  framesPerPacket: 9\n');
  const r = await runCli(['check-config', bad]);
  t.equal(r.code, 1);
  for (const re of [
    /broker\.url: must be an mqtt/,
    /broker: Unrecognized key: "colour"/,
    /channels\[0\]\.name: channel name "no\/slash"/,
    /codec\.frameMs: must be 10, 20, 40 or 60/,
    /codec\.framesPerPacket/,
  ])
    t.match(r.stderr, re);
  t.match(r.stderr, /5 problems/);
  t.notMatch(r.stderr, /\n\s+at /);

  const yamlErr = path.join(tmp, 'broken.yaml');
  writeFileSync(yamlErr, 'broker: [unclosed\n');
  const y = await runCli(['check-config', yamlErr]);
  t.equal(y.code, 1);
  t.match(y.stderr, /YAML:/);

  const good = path.join(tmp, 'good.yaml');
  writeFileSync(good, '# a comment\nchannels:\n  - name: Base\n  - name: sar-1\nbroker:\n  url: mqtt://127.0.0.1:1883\n');
  const g = await runCli(['check-config', good]);
  t.equal(g.code, 0, g.stderr);
  t.match(g.stdout, /ok \(2 channels: base, sar-1\)/);

  const env = await runCli(['check-config', '--print', good], { env: { TALKBRIDGE_BROKER_PASSWORD: 's3cret', TALKBRIDGE_HTTP_PORT: '9090' } });
  t.equal(env.code, 0, env.stderr);
  t.match(env.stdout, /port: 9090/, 'environment overrides apply');
  t.notMatch(env.stdout, /s3cret/, 'secrets are never printed');
  t.match(env.stdout, /password: \(hidden\)/);

  const pwFile = path.join(tmp, 'pw');
  writeFileSync(pwFile, 'fromfile\n');
  const bad2 = await runCli(['check-config', good], { env: { TALKBRIDGE_HTTP_PORT: 'eighty', TALKBRIDGE_BROKER_PASSWORD_FILE: pwFile } });
  t.equal(bad2.code, 1);
  t.match(bad2.stderr, /http\.port/);
});

/**
 * Every command from the bundle, as users run it (gateway/bin/talkbridge.js → gateway/dist/bundle,
 * `npm run build`): esbuild's bundling can break what works from the sources — a CommonJS package
 * loaded with import() has only a default export there, which made `channel new` exit 70 while
 * drawing its QR code. Each command's --help, and the default path of those that need no hardware.
 */
t.test("from the bundle: every command's --help, and the default paths of channel, check-config, status, devices", async (t) => {
  const shim = readFileSync(BIN, 'utf8');
  t.match(shim, /from '\.\.\/dist\/bundle\/cli\.js'/, 'the talkbridge command runs the bundle');
  const bundle = path.join(ROOT, 'gateway/dist/bundle/cli.js');
  t.ok(statSync(bundle).mtimeMs >= statSync(path.join(ROOT, 'gateway/src/cli/commands/channel.ts')).mtimeMs, 'the bundle is newer than the sources (npm run build)');
  const noCrash = (what: string, r: { code: number | null; stdout: string; stderr: string }) => {
    t.notMatch(r.stderr + r.stdout, /internal error|\n\s+at /, `${what}: no internal error`);
    t.not(r.code, 70, `${what}: not exit 70`);
  };

  const main = await runCli(['--help']);
  const commands = [...main.stdout.matchAll(/^ {2}([a-z][a-z-]+) {2,}/gm)].map((m) => m[1]!);
  t.ok(commands.length >= 13, `the main help lists ${commands.length} commands: ${commands.join(', ')}`);
  for (const c of commands) {
    const h = await runCli([c, '--help']);
    t.equal(h.code, 0, `${c} --help exits 0`);
    t.match(h.stdout, new RegExp(`^Usage: talkbridge ${c}`), `${c} --help prints its usage`);
    noCrash(`${c} --help`, h);
  }

  const ch = await runCli(['channel', 'new', 'base']);
  noCrash('channel new', ch);
  t.equal(ch.code, 0, `channel new exits 0 ${ch.stderr}`);
  t.match(ch.stdout, /key: "1\.[A-Za-z0-9_-]{43}"/, 'the key');
  t.match(ch.stdout, /http:\/\/localhost:8080\/#channel=base&key=1\./, 'the invite link');
  t.match(ch.stdout, /[█▀▄]{7}/, 'the QR code is drawn');
  const keyFile = path.join(tmp, `k-${Date.now()}.key`);
  const withFile = await runCli(['channel', 'new', 'ops', '--key-file', keyFile, '--web', 'https://kit.local:8443/', '--broker', 'wss://kit.local:8443/mqtt']);
  t.equal(withFile.code, 0, withFile.stderr);
  const inv = await runCli(['channel', 'invite', 'ops', '--key-file', keyFile, '--web', 'https://kit.local:8443/']);
  noCrash('channel invite', inv);
  t.equal(inv.code, 0, inv.stderr);
  t.match(inv.stdout, /[█▀▄]{7}/, 'channel invite draws the QR code too');

  const cc = await runCli(['check-config', '-']);
  noCrash('check-config -', cc);
  t.equal(cc.code, 0);
  t.equal(cc.stdout, '-: ok (1 channel: base)\n', 'the built-in defaults are a valid config');
  const print = await runCli(['check-config', '--print', '-']);
  t.equal(print.code, 0);
  t.match(print.stdout, /channels:\n {2}- name: base/);

  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const st = await runCli(['status', '--broker', broker.url]);
  noCrash('status', st);
  t.equal(st.code, 1, 'status with nothing published exits 1');
  t.equal(st.stderr, `talkbridge: no gateway status under talkbridge/v1/_gateways on ${broker.url}\n`);

  const dev = await runCli(['devices']);
  noCrash('devices', dev);
  t.equal(dev.code, 0, dev.stderr);
  for (const s of ['Sound cards', 'Serial ports', 'USB HID devices', 'GPIO chips']) t.match(dev.stdout, s);
});
