// The system packages the tests and benchmarks need, and a way to get them: installed with apt when
// we are root on Debian/Ubuntu, otherwise named exactly so a user can install them.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** [command or file that proves the package is there, Debian package] */
export const TEST_DEPS = [
  ['mosquitto', 'mosquitto'],
  ['socat', 'socat'],
  ['arecord', 'alsa-utils'],
  ['sox', 'sox'],
  // Headless browser for the web client's end-to-end tests, driven by playwright-core.
  ['/usr/bin/chromium', 'chromium'],
  // The same tests in Firefox ESR (puppeteer-core over WebDriver BiDi; a PulseAudio null sink as its
  // sound output) and WebKitGTK (WebKitWebDriver and MiniBrowser on an Xvfb display).
  ['/usr/bin/firefox-esr', 'firefox-esr'],
  ['pulseaudio', 'pulseaudio'],
  ['/usr/bin/WebKitWebDriver', 'webkit2gtk-driver'],
  ['Xvfb', 'xvfb'],
  // Radio driver tests: pty pairs (socat, above), FIFOs and fake tools in bash, finding a holder process.
  ['bash', 'bash'],
  ['mkfifo', 'coreutils'],
  ['pgrep', 'procps'],
  // Operations tests: systemd-notify and systemd-analyze verify/security on the unit; python3 holds
  // the AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET.
  ['systemd-notify', 'systemd'],
  ['systemd-analyze', 'systemd'],
  ['python3', 'python3'],
];
export const BENCH_DEPS = [
  ['opusenc', 'opus-tools'],
  ['mosquitto', 'mosquitto'],
  // `bench -- svxlink`: SvxLink side by side (two nodes, one reflector) in a network namespace, and
  // the fake sound cards talkbridge's daemons run there.
  ['svxlink', 'svxlink-server'],
  ['svxreflector', 'svxreflector'],
  ['ip', 'iproute2'],
  ['python3', 'python3'],
];

function have(cmd) {
  if (cmd.startsWith('/')) return existsSync(cmd);
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) if (existsSync(`${dir}/${cmd}`)) return true;
  return false;
}

export function ensure(deps, what) {
  const missing = [...new Set(deps.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  if (isRoot && have('apt-get')) {
    console.error(`[${what}] installing system packages: ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
    // Debian starts mosquitto as a service on install; the tests start their own brokers.
    if (missing.includes('mosquitto')) spawnSync('sh', ['-c', 'service mosquitto stop >/dev/null 2>&1 || systemctl stop mosquitto >/dev/null 2>&1 || true']);
    return;
  }
  console.error(`[${what}] missing system packages. Install them with:\n\n  sudo apt-get install ${missing.join(' ')}\n`);
  process.exit(1);
}
