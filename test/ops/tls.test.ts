/**
 * `talkbridge tls init/show`: the team CA and server certificate, checked with the real openssl
 * (verify, SANs, name constraints) the way a phone would check them; re-running keeps the CA;
 * keys are 0600; bad input and bad http.tls settings give one clear line each.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-tls-'));

function openssl(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

/** The SANs as openssl prints them, e.g. ['DNS:kit.test', 'IP Address:10.42.0.1']. */
function sans(cert: string): string[] {
  const r = openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', cert]);
  return r.out.split('\n')[1]!.trim().split(', ');
}

const mode = (f: string) => statSync(f).mode & 0o777;

t.test('init: a CA and a server certificate that openssl verifies, for exactly the hosts asked', async (t) => {
  const dir = path.join(tmp, 'kit');
  const r = await runCli(['tls', 'init', '--dir', dir, '--host', 'kit.test', '--host', '10.42.0.1', '--host', 'raspberrypi.local,127.0.0.1', '--name', 'Rescue team 7']);
  t.equal(r.code, 0, r.stderr);
  const f = (n: string) => path.join(dir, n);
  const v = openssl(['verify', '-CAfile', f('ca.crt'), f('server.crt')]);
  t.equal(v.code, 0, `openssl verify: ${v.out.trim()}`);
  t.same(sans(f('server.crt')), ['DNS:kit.test', 'IP Address:10.42.0.1', 'DNS:raspberrypi.local', 'IP Address:127.0.0.1'], 'SANs are the hosts given, in order');
  t.equal(mode(f('ca.key')), 0o600, 'ca.key is 0600');
  t.equal(mode(f('server.key')), 0o600, 'server.key is 0600');
  t.equal(mode(dir), 0o700, 'the directory is 0700');

  const ca = openssl(['x509', '-noout', '-text', '-in', f('ca.crt')]).out;
  t.match(ca, /Subject: O ?= ?talkbridge, CN ?= ?Rescue team 7/, 'the CA carries the team name');
  t.match(ca, /CA:TRUE, pathlen:0/, 'a CA that cannot make other CAs');
  const nc = /Name Constraints: critical\s+Permitted:\n((?:\s+(?:DNS|IP):.*\n)+)/.exec(ca)?.[1]?.trim().split(/\s+/) ?? [];
  for (const want of ['DNS:local', 'DNS:localhost', 'DNS:kit.test', 'IP:10.0.0.0/255.0.0.0', 'IP:192.168.0.0/255.255.0.0', 'IP:127.0.0.0/255.0.0.0']) t.ok(nc.includes(want), `the CA permits ${want}`);
  t.notOk(nc.includes('DNS:raspberrypi.local'), 'a .local host is covered by DNS:local, not added');
  t.notOk(
    nc.some((n) => n.startsWith('IP:0.0.0.0')),
    'and no catch-all address range',
  );
  const srv = openssl(['x509', '-noout', '-text', '-in', f('server.crt')]).out;
  t.match(srv, /TLS Web Server Authentication/, 'serverAuth');
  t.match(srv, /CA:FALSE/, 'not a CA');
  const days = (Date.parse(/Not After : (.*)/.exec(srv)![1]!) - Date.parse(/Not Before: (.*)/.exec(srv)![1]!)) / 86400e3;
  t.ok(days <= 825, `server certificate valid ${days} days (≤ 825, or iOS refuses it)`);

  const fp = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', f('ca.crt')])
    .out.trim()
    .split('=')[1]!;
  t.ok(r.stdout.includes(fp), `prints the CA fingerprint ${fp}`);
  t.match(r.stdout, /tls:\n\s+cert: .*server\.crt\n\s+key: .*server\.key\n\s+ca: .*ca\.crt/, 'prints the config lines');
  t.notMatch(r.stdout + r.stderr, /PRIVATE KEY/, 'never prints a key');

  // A certificate for a name outside the constraints is refused by openssl even if the CA signs it:
  // that is what protects phones from a stolen CA key.
  const evil = path.join(tmp, 'evil');
  const cnf = path.join(tmp, 'evil.cnf');
  writeFileSync(cnf, '[req]\nprompt=no\ndistinguished_name=dn\n[dn]\nCN=bank.example\n[x]\nsubjectAltName=DNS:bank.example\n');
  t.equal(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${evil}.key`, '-out', `${evil}.csr`, '-config', cnf]).code, 0);
  t.equal(
    openssl(['x509', '-req', '-in', `${evil}.csr`, '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-set_serial', '5', '-days', '1', '-extfile', cnf, '-extensions', 'x', '-out', `${evil}.crt`]).code,
    0,
  );
  const bad = openssl(['verify', '-CAfile', f('ca.crt'), `${evil}.crt`]);
  t.not(bad.code, 0, 'openssl rejects a bank.example certificate signed by the team CA');
  t.match(bad.out, /permitted subtree violation/);

  const show = await runCli(['tls', 'show', '--dir', dir]);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stdout, /name\s+Rescue team 7/);
  t.match(show.stdout, /limited to IP:10\.0\.0\.0\/8, .*DNS:local, DNS:localhost, DNS:kit\.test/);
  t.match(show.stdout, /names\s+DNS:kit\.test, IP:10\.42\.0\.1, DNS:raspberrypi\.local, IP:127\.0\.0\.1/);
  t.match(show.stdout, /issued by the team CA: yes/);
});

t.test('re-running keeps the CA and re-issues the server certificate', async (t) => {
  const dir = path.join(tmp, 'rerun');
  t.equal((await runCli(['tls', 'init', '--dir', dir, '--host', 'kit.test'])).code, 0);
  const f = (n: string) => path.join(dir, n);
  const ca1 = readFileSync(f('ca.crt'));
  const caKey1 = readFileSync(f('ca.key'));
  const srv1 = readFileSync(f('server.crt'));
  const r = await runCli(['tls', 'init', '--dir', dir, '--host', 'kit.test', '--host', '192.168.4.1']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /kept the team CA/);
  t.same(readFileSync(f('ca.crt')), ca1, 'ca.crt unchanged');
  t.same(readFileSync(f('ca.key')), caKey1, 'ca.key unchanged');
  t.not(readFileSync(f('server.crt')).equals(srv1), true, 'server.crt re-issued');
  t.same(sans(f('server.crt')), ['DNS:kit.test', 'IP Address:192.168.4.1'], 'with the new host list');
  t.equal(openssl(['verify', '-CAfile', f('ca.crt'), f('server.crt')]).code, 0, 'still verifies against the kept CA');
  t.equal(mode(f('server.key')), 0o600);

  // Outside the CA's constraints: refused before anything is replaced.
  const srv2 = readFileSync(f('server.crt'));
  const out = await runCli(['tls', 'init', '--dir', dir, '--host', 'talk.example.org']);
  t.equal(out.code, 1);
  t.match(out.stderr, /^talkbridge: the team CA is name-constrained and does not cover talk\.example\.org: .*--new-ca/);
  t.same(readFileSync(f('server.crt')), srv2, 'the working certificate is left alone');

  // --new-ca with --permit: a new CA that covers the domain.
  const n = await runCli(['tls', 'init', '--dir', dir, '--new-ca', '--permit', 'example.org', '--host', 'talk.example.org']);
  t.equal(n.code, 0, n.stderr);
  t.match(n.stdout, /created the team CA/);
  t.not(readFileSync(f('ca.crt')).equals(ca1), true, 'a new CA');
  t.equal(openssl(['verify', '-CAfile', f('ca.crt'), f('server.crt')]).code, 0);

  // The CA key moved off the kit: re-issuing says what is missing.
  const lonely = path.join(tmp, 'nokey');
  t.equal((await runCli(['tls', 'init', '--dir', lonely, '--host', 'kit.test'])).code, 0);
  spawnSync('rm', [path.join(lonely, 'ca.key')]);
  const nk = await runCli(['tls', 'init', '--dir', lonely, '--host', 'kit.test']);
  t.equal(nk.code, 1);
  t.match(nk.stderr, /^talkbridge: .*ca\.crt is there but its key .*ca\.key is not: copy the CA key back/);
  t.match((await runCli(['tls', 'show', '--dir', lonely])).stdout, /key\s+not here/);
});

t.test('default hosts: this machine, .local, localhost and the hotspot addresses', async (t) => {
  const dir = path.join(tmp, 'defaults');
  const r = await runCli(['tls', 'init', '--dir', dir]);
  t.equal(r.code, 0, r.stderr);
  const s = sans(path.join(dir, 'server.crt'));
  const host = os.hostname().toLowerCase();
  for (const want of [`DNS:${host}`, `DNS:${host}.local`, 'DNS:localhost', 'IP Address:10.42.0.1', 'IP Address:192.168.4.1', 'IP Address:10.3.141.1'])
    t.ok(s.includes(want), `${want} in ${s.join(', ')}`);
  const mine = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a?.family === 'IPv4')
    .map((a) => `IP Address:${a!.address}`);
  for (const ip of mine) t.ok(s.includes(ip), `this machine's ${ip}`);
  t.equal(openssl(['verify', '-CAfile', path.join(dir, 'ca.crt'), path.join(dir, 'server.crt')]).code, 0);

  // A CA made for other names (or before the machine was renamed): defaults it does not cover
  // are left out, with a note, rather than failing a re-issue.
  const other = path.join(tmp, 'defaults-kept');
  t.equal((await runCli(['tls', 'init', '--dir', other, '--host', 'kit.test'])).code, 0);
  const again = await runCli(['tls', 'init', '--dir', other]);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, new RegExp(`^left out ${host.replace(/[.]/g, '\\.')}\\b.*the team CA does not cover`, 'm'));
  const s2 = sans(path.join(other, 'server.crt'));
  t.ok(s2.includes(`DNS:${host}.local`) && !s2.includes(`DNS:${host}`), `${host}.local kept, bare ${host} left out: ${s2.join(', ')}`);
  t.equal(openssl(['verify', '-CAfile', path.join(other, 'ca.crt'), path.join(other, 'server.crt')]).code, 0);
});

t.test('bad input: one line, usage errors exit 2', async (t) => {
  writeFileSync(path.join(tmp, 'a-file'), '');
  const cases: Array<[string[], number, RegExp]> = [
    [['tls', 'init', '--dir', path.join(tmp, 'x'), '--host', 'not a host'], 2, /"not a host" is not a host name or IP address/],
    [['tls', 'init', '--dir', path.join(tmp, 'x'), '--host', '*.wild.test'], 2, /is not a host name or IP address/],
    [['tls', 'init', '--dir', path.join(tmp, 'x'), '--permit', '10.0.0.0/99'], 2, /prefix is longer than the address/],
    [['tls', 'init', '--dir', path.join(tmp, 'x'), '--name', 'bad$name'], 2, /--name "bad\$name"/],
    [['tls', 'frobnicate'], 2, /unknown tls action "frobnicate"/],
    [['tls', 'show', '--dir', path.join(tmp, 'empty')], 2, /no certificates in/],
    [['tls', 'init', '--dir', path.join(tmp, 'a-file', 'tls'), '--host', 'kit.test'], 1, /cannot create .*a-file\/tls: ENOTDIR/],
  ];
  for (const [args, code, re] of cases) {
    const r = await runCli(args);
    t.equal(r.code, code, `${args.join(' ')} → ${code}`);
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('http.tls in the config: unreadable or mismatched files are named with their path', async (t) => {
  const a = path.join(tmp, 'cfg-a');
  const b = path.join(tmp, 'cfg-b');
  t.equal((await runCli(['tls', 'init', '--dir', a, '--host', 'kit.test'])).code, 0);
  t.equal((await runCli(['tls', 'init', '--dir', b, '--host', 'kit.test'])).code, 0);
  const cfg = (name: string, tls: string, extra = '') => {
    const p = path.join(tmp, `${name}.yaml`);
    writeFileSync(p, `http:\n  tls: ${tls}\n${extra}`);
    return p;
  };
  const check = async (file: string) => runCli(['check-config', file]);

  let r = await check(cfg('good', `{ cert: ${a}/server.crt, key: ${a}/server.key, ca: ${a}/ca.crt }`, '  redirectPort: 8081\n'));
  t.equal(r.code, 0, r.stderr);

  r = await check(cfg('missing', `{ cert: ${a}/nope.crt, key: ${a}/server.key }`));
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`http\\.tls\\.cert: cannot read ${a}/nope\\.crt: no such file`));

  r = await check(cfg('mismatch', `{ cert: ${a}/server.crt, key: ${b}/server.key }`));
  t.equal(r.code, 1);
  t.match(r.stderr, /http\.tls\.key: .*is not the key of .*server\.crt/);

  r = await check(cfg('other-ca', `{ cert: ${a}/server.crt, key: ${a}/server.key, ca: ${b}/ca.crt }`));
  t.equal(r.code, 1);
  t.match(r.stderr, /http\.tls\.ca: .*server\.crt was not issued by .*cfg-b\/ca\.crt/);

  r = await check(cfg('swapped', `{ cert: ${a}/ca.crt, key: ${a}/ca.key }`));
  t.equal(r.code, 1);
  t.match(r.stderr, /http\.tls\.cert: .*ca\.crt is a CA certificate/);

  r = await check(cfg('not-pem', `{ cert: ${a}/server.key, key: ${a}/server.key }`));
  t.equal(r.code, 1);
  t.match(r.stderr, /http\.tls\.cert: .*server\.key is not a PEM certificate/);

  if (process.getuid?.() !== 0) {
    chmodSync(`${a}/server.key`, 0);
    r = await check(cfg('unreadable', `{ cert: ${a}/server.crt, key: ${a}/server.key }`));
    t.match(r.stderr, /http\.tls\.key: cannot read .*permission denied/);
    chmodSync(`${a}/server.key`, 0o600);
  }

  r = await runCli(['check-config', cfg('redirect-alone', 'null', '  redirectPort: 8081\n')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /http\.redirectPort: redirectPort needs http\.tls/);

  const printed = await runCli(['check-config', '--print', cfg('print', `{ cert: ${a}/server.crt, key: ${a}/server.key }`)]);
  t.equal(printed.code, 0);
  t.notMatch(printed.stdout, /PRIVATE KEY|BEGIN/, 'check-config --print shows paths, never key material');
});
