/**
 * The embedded broker with embeddedBroker.auth: the same table of cases gives the same answers
 * as decide() and as Mosquitto with the generated files; what it does beyond Mosquitto's acl_file
 * (refusing "#" outright, no retained audio, a denied publish does not cost the connection); a real
 * daemon whose own clients log in with its internal credential while the team logs in with theirs;
 * and the warning an open broker gives when it listens beyond loopback.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { freePort } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { startEmbeddedBroker } from '../../gateway/src/broker/embedded.js';
import { embeddedTeam, internalLogin } from '../../gateway/src/broker/auth.js';
import { PASSWORDS, PREFIX, describe, loginError, runCases, writeTeam } from './access-cases.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const team = writeTeam();

function capture() {
  const lines: Array<{ level: number; msg?: string } & Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, log: pino({ level: 'debug' }, stream) };
}

async function securedBroker(t: Test) {
  const cap = capture();
  const internal = internalLogin('pi-north');
  const b = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, log: cap.log, auth: { team: await embeddedTeam({ teamFile: team.file }, PREFIX), internal } });
  t.teardown(() => b.close());
  return { url: `mqtt://127.0.0.1:${b.tcp!.port}`, broker: b, internal, ...cap };
}

t.test('embedded broker: the same table of cases, the same answers', async (t) => {
  const { url, broker, lines } = await securedBroker(t);
  t.match(await loginError(url, undefined, undefined), /bad user ?name or password/i, 'anonymous is refused');
  t.match(await loginError(url, 'alice', 'wrong-password'), /bad user ?name or password/i, 'a wrong password is refused');
  t.match(await loginError(url, 'mallory', 'whatever-pw'), /bad user ?name or password/i, 'an unknown user is refused');
  t.equal(await loginError(url, 'alice', PASSWORDS.alice), null, 'the password from passwordFile works');

  const outcomes = await runCases(url);
  for (const o of outcomes) t.equal(o.got, o.c.allowed, `${describe(o.c)}: ${o.c.why}`);
  // Beyond Mosquitto's acl_file, which grants "#" and then filters what it delivers: refused outright.
  for (const o of outcomes) if (o.c.kind === 'subscribe' && !o.c.allowed) t.equal(o.suback, 'refused', `SUBACK refuses ${o.c.filter} for ${o.c.user}`);

  t.ok(broker.auth!.loginsRefused >= 3 && broker.auth!.publishesDenied >= 7 && broker.auth!.subscriptionsDenied >= 5, `counted: ${JSON.stringify(broker.auth)}`);
  const text = JSON.stringify(lines);
  t.match(text, /denied publish by bob on talkbridge\/v1\/base\/audio\/bob: listen-only on base/, 'a denial is logged with its reason');
  t.match(text, /refused MQTT login as alice/);
  for (const pw of [...Object.values(PASSWORDS), 'wrong-password', 'whatever-pw']) t.notOk(text.includes(pw), 'no password, right or wrong, in the log');
});

t.test('embedded broker: no retained audio, and a denied publish does not cost the connection', async (t) => {
  const { url } = await securedBroker(t);
  const alice = await mqtt.connectAsync(url, { username: 'alice', password: PASSWORDS.alice, protocolVersion: 4, reconnectPeriod: 0 });
  const bob = await mqtt.connectAsync(url, { username: 'bob', password: PASSWORDS.bob, protocolVersion: 4, reconnectPeriod: 0 });
  t.teardown(() => Promise.all([alice.endAsync(true), bob.endAsync(true)]));
  let closed = 0;
  bob.on('close', () => closed++);
  await alice.publishAsync(`${PREFIX}/base/audio/alice`, 'retained-audio', { qos: 1, retain: true });
  await alice.publishAsync(`${PREFIX}/base/presence/alice`, 'retained-presence', { qos: 1, retain: true });
  await bob.publishAsync(`${PREFIX}/base/audio/bob`, 'denied', { qos: 1 });
  // A newcomer gets retained presence only; its arrival also shows the retained audio would have come first.
  const got: string[] = [];
  bob.on('message', (_t, p) => got.push(p.toString()));
  await bob.subscribeAsync(`${PREFIX}/base/+/+`, { qos: 1 });
  while (!got.includes('retained-presence')) await new Promise((r) => setTimeout(r, 20));
  t.same(got, ['retained-presence'], 'the retained audio was not kept');
  await bob.publishAsync(`${PREFIX}/base/presence/bob`, 'still-here', { qos: 1 });
  while (!got.includes('still-here')) await new Promise((r) => setTimeout(r, 20));
  t.equal(closed, 0, 'bob is still connected after a denied publish (as with Mosquitto)');
});

t.test('an open embedded broker warns when it listens beyond loopback, and not on loopback', async (t) => {
  const open = capture();
  const b = await startEmbeddedBroker({ host: '0.0.0.0', port: 0, log: open.log });
  await b.close();
  t.ok(
    open.lines.some((l) => l.level === 40 && /has no access control: anyone who can reach it can listen and talk/.test(String(l.msg))),
    'warned',
  );
  const local = capture();
  const c = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, log: local.log });
  await c.close();
  t.notOk(
    local.lines.some((l) => l.level >= 40),
    'no warning on loopback',
  );
  const secured = capture();
  const d = await startEmbeddedBroker({ host: '0.0.0.0', port: 0, log: secured.log, auth: { team: await embeddedTeam({ teamFile: team.file }, PREFIX), internal: internalLogin('x') } });
  await d.close();
  t.notOk(
    secured.lines.some((l) => l.level >= 40),
    'no warning with auth',
  );
});

t.test('a real daemon with embeddedBroker.auth: its own clients get in, the team logs in, outsiders do not', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-emb-auth-'));
  const port = await freePort();
  const config = path.join(dir, 'kit.yaml');
  writeFileSync(config, `gateway: { id: pi-north, name: North kit }\nembeddedBroker:\n  port: ${port}\n  auth:\n    teamFile: ${team.file}\nhttp: { enabled: false }\nchannels:\n  - name: base\n`);
  const daemon = startCli(['run', '--config', config]);
  t.teardown(() => daemon.proc.kill('SIGKILL'));
  await daemon.waitFor(/"event":"ready"/, 30000);
  const url = `mqtt://127.0.0.1:${port}`;

  // The daemon's status, published through its internal login, is readable by an admin only.
  const boss = await mqtt.connectAsync(url, { username: 'boss', password: PASSWORDS.boss, protocolVersion: 4, reconnectPeriod: 0 });
  const status = new Promise<string>((r) => boss.on('message', (_t, p) => r(p.toString())));
  await boss.subscribeAsync(`${PREFIX}/_gateways/+/status`, { qos: 1 });
  t.match(JSON.parse(await status), { online: true, name: 'North kit' }, 'gateway status arrived');
  await boss.endAsync();

  const pwFile = (u: string) => {
    const f = path.join(dir, `${u}.pw`);
    writeFileSync(f, PASSWORDS[u]!, { mode: 0o600 });
    return f;
  };
  const heard = path.join(dir, 'heard.wav');
  const listen = startCli(['listen', '-b', url, '-c', 'base', '-u', 'bob', '--password-file', pwFile('bob'), '--out', heard, '--timeout', '60']);
  await listen.waitFor(/listening on channel base/);
  const send = await runCli(['send', '-b', url, '-c', 'base', '-u', 'alice', '--password-file', pwFile('alice'), '--name', 'Alice', SPEECH]);
  t.equal(send.code, 0, send.stderr);
  const l = await listen.result;
  t.equal(l.code, 0, l.stderr);
  t.match(l.stdout, /over 1: Alice \(cli\)/, 'bob heard alice through the secured kit');
  await daemon.waitFor(/"event":"over-end".*"talker":"Alice"/);

  const anon = await runCli(['send', '-b', url, '-c', 'base', '--fast', SPEECH]);
  t.equal(anon.code, 1);
  t.equal(anon.stderr, `talkbridge: cannot connect to broker ${url}: bad username or password (broker.username/passwordFile, --username/--password-file)\n`);
  await daemon.waitFor(/refused MQTT login without a username/);

  daemon.proc.kill('SIGTERM');
  const r = await daemon.result;
  t.equal(r.code, 0);
  t.notMatch(r.stdout, /has no access control/, 'no open-broker warning');
  for (const pw of Object.values(PASSWORDS)) t.notOk(r.stdout.includes(pw), 'no password in the daemon log');
});
