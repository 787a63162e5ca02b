/**
 * `talkbridge acl` against the real Mosquitto: the generated ACL and password files (and the
 * dynamic-security JSON) loaded into a real broker give the answers decide() gives, case by case;
 * logins are checked by Mosquitto's own PBKDF2 code; the real CLI sends and listens through it;
 * bad team files give one clear line each.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type TestBroker, startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { decide } from '../../gateway/src/broker/access.js';
import { loadTeam } from '../../gateway/src/broker/team.js';
import { CASES, PASSWORDS, describe, giveToMosquitto, loginError, runCases, writeTeam } from './access-cases.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const DYNSEC = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const team = writeTeam();
const out = path.join(team.dir, 'out');

t.before(async () => {
  const r = await runCli(['acl', team.file, '--out', out, '--format', 'both']);
  if (r.code !== 0) throw new Error(`talkbridge acl failed: ${r.stderr}`);
});

t.test('talkbridge acl: summary and mosquitto.conf lines, no password printed, secret files 0600', async (t) => {
  const r = await runCli(['acl', team.file, '--out', out, '--format', 'both']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /6 users on prefix talkbridge\/v1/);
  t.match(r.stdout, /bob\s+listen\s+base \(listen\)/);
  t.match(r.stdout, /allow_anonymous false/);
  t.match(r.stdout, new RegExp(`acl_file ${out}/talkbridge.acl`));
  t.match(r.stdout, new RegExp(`password_file ${out}/talkbridge.passwd`));
  for (const pw of Object.values(PASSWORDS)) t.notOk((r.stdout + r.stderr).includes(pw), 'no password in the output');
  const passwd = readFileSync(path.join(out, 'talkbridge.passwd'), 'utf8');
  for (const pw of Object.values(PASSWORDS)) t.notOk(passwd.includes(pw), 'no clear password in the password file');
  t.match(passwd, /^alice:\$7\$1000\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}$/m);
  t.equal(statSync(path.join(out, 'talkbridge.passwd')).mode & 0o777, 0o600);
  t.equal(statSync(path.join(out, 'dynamic-security.json')).mode & 0o777, 0o600);
  const acl = readFileSync(path.join(out, 'talkbridge.acl'), 'utf8');
  t.notMatch(acl, /#\s*$|topic \w+ #|\/#/m, 'no # rule anywhere');
});

t.test('decide() gives the table its answers', async (t) => {
  const { model } = loadTeam(team.file);
  for (const c of CASES) {
    const d = decide(model, c.user, c.kind, c.kind === 'publish' ? c.topic : c.filter);
    t.equal(d.allow, c.allowed, `${describe(c)}: ${c.why} (${d.reason})`);
  }
});

async function mosquittoWithAcl(): Promise<TestBroker> {
  giveToMosquitto(path.join(out, 'talkbridge.acl'), path.join(out, 'talkbridge.passwd'));
  // The helper's base config allows anonymous clients; a later allow_anonymous wins.
  return startMosquitto(`allow_anonymous false\nacl_file ${out}/talkbridge.acl\npassword_file ${out}/talkbridge.passwd\n`);
}

t.test('Mosquitto with the generated acl_file + password_file', async (t) => {
  const broker = await mosquittoWithAcl();
  t.teardown(() => broker.stop());

  t.equal(await loginError(broker.url, 'alice', PASSWORDS.alice), null, "Mosquitto accepts alice's password (from passwordFile) hashed by us");
  t.equal(await loginError(broker.url, 'pi-north', PASSWORDS['pi-north']), null, 'and an inline one');
  t.match(await loginError(broker.url, 'alice', 'wrong-password'), /not authori[sz]ed|bad user/i, 'a wrong password is refused');
  t.match(await loginError(broker.url, undefined, undefined), /not authori[sz]ed/i, 'anonymous is refused');

  const outcomes = await runCases(broker.url);
  for (const o of outcomes) t.equal(o.got, o.c.allowed, `${describe(o.c)}: ${o.c.why}`);
});

t.test('the real CLI through the ACL: a talk user is heard, a listen-only user is not, bad logins are one line', async (t) => {
  const broker = await mosquittoWithAcl();
  t.teardown(() => broker.stop());
  const pw = (u: string) => {
    const f = path.join(team.dir, `${u}.cli.pw`);
    writeFileSync(f, PASSWORDS[u] + '\n', { mode: 0o600 });
    return f;
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-acl-cli-'));

  // bob (listen-only) hears alice.
  const heard = path.join(dir, 'heard.wav');
  const listen = startCli(['listen', '-b', broker.url, '-c', 'base', '--username', 'bob', '--password-file', pw('bob'), '--out', heard, '--timeout', '60']);
  await listen.waitFor(/listening on channel base/);
  const send = await runCli(['send', '-b', broker.url, '-c', 'base', '--username', 'alice', '--password-file', pw('alice'), SPEECH]);
  t.equal(send.code, 0, send.stderr);
  const l = await listen.result;
  t.equal(l.code, 0, l.stderr);
  t.match(l.stdout + l.stderr, /over 1: talkbridge-cli \(cli\)/);
  t.ok(existsSync(heard) && statSync(heard).size > 3 * 32000, 'the whole over (about 4.9 s) was written');

  // alice listens; bob's send goes nowhere (the broker drops it), so alice times out with no over.
  const silent = startCli(['listen', '-b', broker.url, '-c', 'base', '--username', 'alice', '--password-file', pw('alice'), '--out', path.join(dir, 'none.wav'), '--timeout', '4']);
  await silent.waitFor(/listening on channel base/);
  const bobSend = await runCli(['send', '-b', broker.url, '-c', 'base', '--username', 'bob', '--password-file', pw('bob'), '--fast', SPEECH]);
  t.equal(bobSend.code, 0, 'Mosquitto drops the publish without telling the client (MQTT 3.1.1)');
  const s = await silent.result;
  t.equal(s.code, 4, `no over reached alice: ${s.stdout}${s.stderr}`);
  t.notMatch(s.stdout, /over 1/);

  // Wrong password / no login: one line, no stack, exit 1.
  const bad = await runCli(['send', '-b', broker.url, '-c', 'base', '--username', 'alice', '--password-file', pw('bob'), '--fast', SPEECH]);
  t.equal(bad.code, 1);
  t.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  t.match(bad.stderr, /talkbridge: cannot connect to broker .*not authorized|bad username or password/);
  const none = await runCli(['send', '-b', broker.url, '-c', 'base', '--fast', SPEECH]);
  t.equal(none.code, 1);
  t.match(none.stderr, /^talkbridge: cannot connect to broker .*not authorized .*username and password/);
  const fromEnv = await runCli(['send', '-b', broker.url, '-c', 'base', '--username', 'alice', '--fast', SPEECH], { env: { TALKBRIDGE_BROKER_PASSWORD: PASSWORDS.alice } });
  t.equal(fromEnv.code, 0, `the password from TALKBRIDGE_BROKER_PASSWORD: ${fromEnv.stderr}`);
  const missing = await runCli(['send', '-b', broker.url, '-c', 'base', '--username', 'alice', '--password-file', '/nonexistent/pw', '--fast', SPEECH]);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'talkbridge: --password-file: cannot read password file /nonexistent/pw: no such file\n');
});

t.test('Mosquitto with the generated dynamic-security JSON', { skip: existsSync(DYNSEC) ? false : 'dynamic security plugin not installed' }, async (t) => {
  // The plugin rewrites its file; give it a copy.
  const dsFile = path.join(team.dir, 'dynsec-copy.json');
  writeFileSync(dsFile, readFileSync(path.join(out, 'dynamic-security.json')), { mode: 0o600 });
  giveToMosquitto(dsFile);
  const broker = await startMosquitto(`allow_anonymous false\nplugin ${DYNSEC}\nplugin_opt_config_file ${dsFile}\n`);
  t.teardown(() => broker.stop());
  t.equal(await loginError(broker.url, 'bob', PASSWORDS.bob), null, 'the plugin accepts our PBKDF2 hashes');
  t.match(await loginError(broker.url, 'bob', 'nope-nope'), /not authori[sz]ed|bad user/i);
  const outcomes = await runCases(broker.url);
  for (const o of outcomes) t.equal(o.got, o.c.allowed, `${describe(o.c)}: ${o.c.why}`);
});

t.test('bad team files: one clear error naming what is wrong', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-badteam-'));
  const bad: Array<[string, string, RegExp]> = [
    ['role', 'users:\n  alice: { role: boss, channels: [base], password: "12345678" }\n', /users\.alice\.role: must be one of listen, talk, gateway, admin/],
    ['channel', 'users:\n  alice: { channels: ["Base Camp"], password: "12345678" }\n', /users\.alice\.channels/],
    ['username', 'users:\n  "al/ice": { channels: [base], password: "12345678" }\n', /users\.al\/ice: sender id "al\/ice" is not valid.*\(a username is also the sender id\)/],
    ['short', 'users:\n  alice: { channels: [base], password: "short" }\n', /users\.alice\.password: a broker password must have at least 8 characters/],
    ['both', 'users:\n  alice: { channels: [base], password: "12345678", passwordFile: x }\n', /users\.alice\.passwordFile: give only one of password, passwordFile/],
    ['pwfile', 'users:\n  alice: { channels: [base], passwordFile: missing.pw }\n', /users\.alice\.passwordFile: cannot read .*missing\.pw: ENOENT/],
    ['nousers', 'prefix: talkbridge/v1\nusers: {}\n', /users: list at least one user/],
    ['extra', 'users:\n  alice: { channels: [base], pasword: "12345678" }\n', /users\.alice: Unrecognized key: "pasword"/],
    ['yaml', 'users: [\n', /YAML:/],
    ['prefix', 'prefix: "a/#"\nusers:\n  alice: { channels: [base] }\n', /prefix: topic prefix "a\/#" is not valid/],
  ];
  for (const [name, text, re] of bad) {
    const f = path.join(dir, `${name}.yaml`);
    writeFileSync(f, text);
    const r = await runCli(['acl', f, '--out', path.join(dir, 'out')]);
    t.equal(r.code, 1, `${name}: exit 1`);
    t.match(r.stderr, re, name);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  const missing = await runCli(['acl', path.join(dir, 'nope.yaml'), '--out', dir]);
  t.equal(missing.stderr, `talkbridge: cannot read team file ${path.join(dir, 'nope.yaml')}: no such file\n`);
  const usage = await runCli(['acl', team.file]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--out is required/);
});
