import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from './helpers.js';

const SYSTEMD = path.join(ROOT, 'systemd');
const unitText = readFileSync(path.join(SYSTEMD, 'talkbridge.service'), 'utf8');

/** [section, key] → values, comments dropped; enough of systemd's syntax for this unit. */
function parseUnit(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    const i = line.indexOf('=');
    if (i < 0) throw new Error(`not a unit line: ${line}`);
    const k = `${section}.${line.slice(0, i)}`;
    out.set(k, [...(out.get(k) ?? []), line.slice(i + 1)]);
  }
  return out;
}

function which(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/bin'])) if (existsSync(path.join(d, cmd))) return path.join(d, cmd);
  return null;
}

t.test('talkbridge.service carries every directive the issue asks for', async (t) => {
  const u = parseUnit(unitText);
  const one = (k: string) => u.get(`Service.${k}`)?.at(-1);
  t.equal(one('Type'), 'notify');
  t.equal(one('NotifyAccess'), 'all', 'systemd-notify children may notify');
  t.match(one('WatchdogSec'), /^\d+s?$/);
  t.equal(one('Restart'), 'on-failure');
  t.match(one('RestartSec'), /^\d+s?$/);
  t.equal(u.get('Unit.StartLimitIntervalSec')?.[0], '0', 'never gives up restarting');
  t.match(one('ExecStart'), /^\/usr\/local\/bin\/talkbridge run --config \/etc\/talkbridge\/config\.yaml$/);
  t.equal(one('ExecStopPost'), '/usr/local/bin/talkbridge reset --config /etc/talkbridge/config.yaml');
  t.equal(one('KillMode'), 'mixed', 'SIGTERM to the daemon only, so its PTT guards unkey on their own');
  t.equal(one('User'), 'talkbridge');
  t.same(one('SupplementaryGroups')?.split(/\s+/).sort(), ['audio', 'dialout', 'gpio']);
  for (const [k, v] of [
    ['ProtectSystem', 'strict'],
    ['StateDirectory', 'talkbridge'],
    ['ConfigurationDirectory', 'talkbridge'],
    ['RuntimeDirectory', 'talkbridge'],
    ['NoNewPrivileges', 'yes'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['ProtectKernelTunables', 'yes'],
    ['ProtectKernelModules', 'yes'],
    ['ProtectKernelLogs', 'yes'],
    ['ProtectControlGroups', 'yes'],
    ['LockPersonality', 'yes'],
    ['DevicePolicy', 'closed'],
  ] as const) {
    t.equal(one(k), v, `${k}=${v}`);
  }
  t.ok(one('RestrictAddressFamilies')?.split(/\s+/).includes('AF_UNIX'), 'AF_UNIX kept (sd_notify, ALSA)');
  const devices = (u.get('Service.DeviceAllow') ?? []).map((d) => d.split(/\s+/)[0]);
  for (const d of ['char-alsa', 'char-gpiochip', 'char-hidraw', 'char-ttyUSB', 'char-ttyACM', 'char-ttyAMA']) t.ok(devices.includes(d), `DeviceAllow=${d}`);
  t.equal(u.has('Service.MemoryDenyWriteExecute'), false, 'no MemoryDenyWriteExecute (V8 JIT)');
  t.equal(u.has('Service.PrivateDevices'), false, 'no PrivateDevices (would hide /dev/snd)');
  t.equal(u.get('Install.WantedBy')?.[0], 'multi-user.target');
});

const analyze = which('systemd-analyze');
t.test('systemd-analyze verify and security', { skip: !analyze && 'systemd-analyze is not installed (apt-get install systemd): only the text checks above ran' }, async (t) => {
  if (!analyze) return;
  // verify insists the ExecStart binaries exist; point them at a stand-in, change nothing else.
  const dir = tempDir(t);
  const fake = path.join(dir, 'talkbridge');
  writeFileSync(fake, '#!/bin/sh\n');
  chmodSync(fake, 0o755);
  const unit = path.join(dir, 'talkbridge.service');
  writeFileSync(unit, unitText.replaceAll('/usr/local/bin/talkbridge', fake));
  const v = spawnSync(analyze, ['verify', unit], { encoding: 'utf8' });
  t.equal(v.status, 0, v.stderr);
  t.equal(v.stderr, '', 'no warnings (an unknown or misspelt key is only a warning)');

  // The check above must be able to fail: a misspelt directive is reported.
  writeFileSync(unit, unitText.replaceAll('/usr/local/bin/talkbridge', fake).replace('ProtectHome=yes', 'ProtectHom=yes'));
  const bad = spawnSync(analyze, ['verify', unit], { encoding: 'utf8' });
  t.match(bad.stderr, /Unknown key 'ProtectHom'/);

  writeFileSync(unit, unitText.replaceAll('/usr/local/bin/talkbridge', fake));
  const s = spawnSync(analyze, ['security', '--offline=yes', unit], { encoding: 'utf8' });
  const m = /Overall exposure level for talkbridge\.service: ([\d.]+)/.exec(s.stdout + s.stderr);
  t.ok(m, 'security reports an exposure level');
  t.ok(Number(m?.[1]) <= 4, `exposure ${m?.[1]} ≤ 4.0 ("OK" on systemd's scale)`);
});

t.test('udev rules: CM108 family, SSS and AIOC hidraw nodes for the audio group', async (t) => {
  const rules = readFileSync(path.join(SYSTEMD, '99-talkbridge.rules'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const ids: string[] = [];
  for (const r of rules) {
    const kv = Object.fromEntries(
      r
        .split(/,\s*/)
        .map((p) => /^([A-Z]+(?:\{\w+\})?)(==|=)"([^"]*)"$/.exec(p)!)
        .map((m) => [m[1]! + m[2]!, m[3]!]),
    );
    t.equal(kv['SUBSYSTEM=='], 'hidraw', r);
    t.equal(kv['GROUP='], 'audio');
    t.equal(kv['MODE='], '0660');
    ids.push([kv['ATTRS{idVendor}=='], kv['ATTRS{idProduct}==']].filter(Boolean).join(':'));
  }
  t.same(ids.sort(), ['0c76', '0d8c', '1209:7388']);
});

t.test('install.sh: bash -n, --dry-run with a temp prefix changes nothing, idempotent with an existing config', async (t) => {
  const script = path.join(SYSTEMD, 'install.sh');
  t.equal(spawnSync('bash', ['-n', script]).status, 0, 'bash -n');
  const prefix = path.join(tempDir(t), 'root');
  const r = spawnSync(script, ['--dry-run', '--prefix', prefix], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const steps = r.stdout.split('\n').filter((l) => l.startsWith('+ '));
  const at = (re: RegExp) => steps.findIndex((s) => re.test(s));
  t.ok(at(/npm ci/) >= 0 && at(/npm prune --omit=dev/) > at(/npm ci/), 'npm ci, then npm prune --omit=dev');
  t.ok(at(new RegExp(`env -C ${prefix}/opt/talkbridge npm ci`)) >= 0, 'in /opt/talkbridge under the prefix');
  t.ok(at(new RegExp(`ln -sfn /opt/talkbridge/gateway/bin/talkbridge.js ${prefix}/usr/local/bin/talkbridge$`)) >= 0, 'the talkbridge command the unit runs');
  t.ok(at(new RegExp(`install -D -m 0644 .*/systemd/talkbridge.service ${prefix}/etc/systemd/system/talkbridge.service$`)) >= 0, 'unit');
  t.ok(at(new RegExp(`install -D -m 0644 .*/systemd/99-talkbridge.rules ${prefix}/etc/udev/rules.d/99-talkbridge.rules$`)) >= 0, 'udev rules');
  t.ok(at(new RegExp(`install -m 0640 .*/systemd/config.example.yaml ${prefix}/etc/talkbridge/config.yaml$`)) >= 0, 'default config');
  t.equal(at(/useradd|systemctl|udevadm/), -1, 'a staged (prefix) install leaves the running system alone');
  t.equal(existsSync(prefix), false, '--dry-run created nothing');

  mkdirSync(path.join(prefix, 'etc/talkbridge'), { recursive: true });
  writeFileSync(path.join(prefix, 'etc/talkbridge/config.yaml'), 'gateway: { id: mine }\n');
  const again = spawnSync(script, ['--dry-run', '--prefix', prefix], { encoding: 'utf8' });
  t.equal(again.status, 0);
  t.match(again.stdout, /config\.yaml exists, left as it is/);
  t.notMatch(again.stdout, /config\.example\.yaml/, 'an existing config is never replaced');
  t.same(readdirSync(prefix), ['etc'], 'still nothing written by --dry-run');

  const system = spawnSync(script, ['--dry-run'], { encoding: 'utf8' });
  t.equal(system.status, 0, system.stderr);
  t.match(system.stdout, /useradd --system .*talkbridge|talkbridge exists/, 'the service user');
  t.match(system.stdout, /\+ systemctl enable talkbridge\.service/);
  t.match(system.stdout, /\+ systemctl restart talkbridge\.service/);
  t.notMatch(spawnSync(script, ['--dry-run', '--no-start'], { encoding: 'utf8' }).stdout, /systemctl restart/, '--no-start does not start');

  const bad = spawnSync(script, ['--frobnicate'], { encoding: 'utf8' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown option --frobnicate/);
});

t.test('install.sh --help prints its usage, and an unsupported Node is refused with how to get one', async (t) => {
  const script = path.join(SYSTEMD, 'install.sh');
  const help = spawnSync(script, ['--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /^Installs talkbridge as a systemd service/);
  t.match(help.stdout, /--no-start {6}enable the service but do not/);
  t.notMatch(help.stdout, /set -euo|SRC=|#/, 'the usage only, no script');

  // Raspberry Pi OS bookworm's own nodejs.
  const bin = path.join(tempDir(t), 'bin');
  mkdirSync(bin);
  writeFileSync(
    path.join(bin, 'node'),
    `#!/bin/sh\ncase "$1" in -v) echo v18.19.0 ;; -e) exec ${process.execPath} -e "Object.defineProperty(process.versions, 'node', { value: '18.19.0' }); $2" ;; esac\n`,
  );
  chmodSync(path.join(bin, 'node'), 0o755);
  const old = spawnSync(script, ['--dry-run', '--prefix', path.join(tempDir(t), 'root')], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  t.equal(old.status, 1, 'refused');
  t.match(old.stderr, /Node\.js v18\.19\.0 is too old/);
  t.match(old.stderr, /bookworm \(12\): its own nodejs is 18, too old/, 'says what to do on bookworm');
  t.match(old.stderr, /deb\.nodesource\.com\/setup_22\.x/);
  t.match(old.stderr, /trixie \(13\): {3}sudo apt-get install nodejs npm/, 'and on trixie');
  t.equal(old.stdout.includes('npm ci'), false, 'before doing anything');
});

t.test('install.sh --kit stages the field kit: hotspot, names, the team CA and certificate, a valid kit config', async (t) => {
  const script = path.join(SYSTEMD, 'install.sh');
  const dir = tempDir(t);
  const prefix = path.join(dir, 'root');
  // npm at the OS boundary: the staged code gets this checkout's node_modules instead of a download.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\ncase "$1" in ci) ln -sfn ${path.join(ROOT, 'node_modules')} node_modules ;; esac\nexit 0\n`);
  chmodSync(path.join(bin, 'npm'), 0o755);
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, TB_WIFI_PASSPHRASE: 'a long passphrase' };
  const kit = (...extra: string[]) => spawnSync(script, ['--prefix', prefix, '--no-start', '--kit', '--ssid', 'RESCUE7', '--hostname', 'talk7', ...extra], { encoding: 'utf8', env });

  const r = kit();
  t.equal(r.status, 0, r.stderr);
  const nm = path.join(prefix, 'etc/NetworkManager/system-connections/talkbridge-hotspot.nmconnection');
  t.equal(statSync(nm).mode & 0o777, 0o600, 'the hotspot keyfile is private (it holds the passphrase; NetworkManager ignores a readable one)');
  const conn = readFileSync(nm, 'utf8');
  for (const line of ['mode=ap', 'ssid=RESCUE7', 'key-mgmt=wpa-psk', 'psk=a long passphrase', 'method=shared', 'address1=10.42.0.1/24']) t.ok(conn.split('\n').includes(line), line);
  t.equal(readFileSync(path.join(prefix, 'etc/NetworkManager/dnsmasq-shared.d/talkbridge.conf'), 'utf8').trim(), 'address=/talk.lan/10.42.0.1');

  const tls = path.join(prefix, 'etc/talkbridge/tls');
  const verify = spawnSync('openssl', ['verify', '-CAfile', path.join(tls, 'ca.crt'), path.join(tls, 'server.crt')], { encoding: 'utf8' });
  t.match(verify.stdout, /server\.crt: OK/, 'the certificate is signed by the team CA');
  const names = execFileSync('openssl', ['x509', '-in', path.join(tls, 'server.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
  for (const n of ['DNS:talk7.local', 'DNS:talk.lan', 'IP Address:10.42.0.1']) t.match(names, n, `the certificate covers ${n}`);

  const config = path.join(prefix, 'etc/talkbridge/config.yaml');
  const text = readFileSync(config, 'utf8');
  t.match(text, /^# talkbridge field kit/);
  t.match(text, /port: 8443\n {2}redirectPort: 8080/);
  // Checked as it will be read once installed at /: its certificate paths are the staged files.
  const atRoot = path.join(dir, 'config-at-root.yaml');
  writeFileSync(atRoot, text.replaceAll('/etc/talkbridge/tls/', `${tls}/`));
  const check = await runCli(['check-config', '--json', atRoot]);
  t.equal(check.code, 0, check.stderr);
  const parsed = JSON.parse(check.stdout) as { http: { tls: unknown; port: number }; embeddedBroker: { host: string } };
  t.equal(parsed.http.port, 8443);
  t.ok(parsed.http.tls, 'HTTPS on');
  t.equal(parsed.embeddedBroker.host, '0.0.0.0', 'the broker listens on the Wi-Fi too');

  writeFileSync(config, text.replace('name: base', 'name: rescue'));
  const again = kit();
  t.equal(again.status, 0, again.stderr);
  t.match(readFileSync(config, 'utf8'), /name: rescue/, 'a second run leaves the (edited) config alone');
  t.ok(existsSync(path.join(prefix, 'etc/talkbridge/kit.example.yaml')), 'and puts the kit config beside it');

  const noSsid = spawnSync(script, ['--dry-run', '--prefix', prefix, '--kit'], { encoding: 'utf8', env });
  t.equal(noSsid.status, 2);
  t.match(noSsid.stderr, /--kit needs --ssid/);
  const shortPsk = spawnSync(script, ['--dry-run', '--prefix', prefix, '--kit', '--ssid', 'X'], { encoding: 'utf8', env: { ...env, TB_WIFI_PASSPHRASE: 'short' } });
  t.equal(shortPsk.status, 2);
  t.match(shortPsk.stderr, /8 to 63 printable ASCII characters/);
  // The keyfile is line-based: a newline in either value would add a line of the caller's choosing.
  const injected = spawnSync(script, ['--dry-run', '--prefix', prefix, '--kit', '--ssid', 'X'], { encoding: 'utf8', env: { ...env, TB_WIFI_PASSPHRASE: 'long enough\n[ipv4]\nmethod=disabled' } });
  t.equal(injected.status, 2, 'a passphrase with a newline is refused');
  const badSsid = spawnSync(script, ['--dry-run', '--prefix', prefix, '--kit', '--ssid', 'KIT\nmode=infrastructure'], { encoding: 'utf8', env });
  t.equal(badSsid.status, 2, 'so is an SSID with one');
  t.match(badSsid.stderr, /--ssid is 1 to 32 printable ASCII characters/);
});

t.test('the default config install.sh ships is valid', async (t) => {
  const r = await runCli(['check-config', path.join(SYSTEMD, 'config.example.yaml')]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ok \(1 channel: base\)/);
});

t.test('pm2 ecosystem file: runs the daemon, long enough kill timeout, pm2 not a dependency', async (t) => {
  const file = path.join(SYSTEMD, 'ecosystem.config.cjs');
  const eco = createRequire(import.meta.url)(file) as { apps: Array<Record<string, unknown>> };
  const app = eco.apps[0]!;
  t.equal(app.name, 'talkbridge');
  t.equal(app.script, path.join(ROOT, 'gateway/bin/talkbridge.js'));
  t.ok(existsSync(app.script as string), 'script exists');
  t.same(app.args, ['run', '--config', '/etc/talkbridge/config.yaml']);
  t.ok((app.kill_timeout as number) > 5000, "longer than the daemon's 5 s stop");
  t.equal(app.autorestart, true);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  t.notOk(pkg.dependencies?.pm2 ?? pkg.devDependencies?.pm2 ?? pkg.optionalDependencies?.pm2, 'pm2 is not a dependency');
  t.match(readFileSync(file, 'utf8'), /AGPL/);
  t.equal(execFileSync(process.execPath, ['--check', file]).length, 0, 'node --check');
});
