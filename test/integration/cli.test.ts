/** The CLI as a user meets it: help for everything, and one clear line — never a stack — for mistakes. */
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/brokers.js';

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
  h.write('RIFF', 0); h.writeUInt32LE(136, 4); h.write('WAVE', 8); h.write('fmt ', 12); h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(8000, 24); h.writeUInt32LE(8000, 28); h.writeUInt16LE(1, 32); h.writeUInt16LE(8, 34);
  h.write('data', 36); h.writeUInt32LE(100, 40);
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
  for (const re of [/broker\.url: must be an mqtt/, /broker: Unrecognized key: "colour"/, /channels\[0\]\.name: channel name "no\/slash"/, /codec\.frameMs: must be 10, 20, 40 or 60/, /codec\.framesPerPacket/]) t.match(r.stderr, re);
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
