/** Fake OS boundaries for the radio driver tests: temp trees, fake executables, polling waits. */
import tap from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Teardown {
  teardown(fn: () => unknown): void;
  readonly name?: string;
}

/**
 * A temp dir, removed after the test, which also stands for the test in its PTT guards: every
 * guard's environment holds its commands (TB_IDLE, TB_KEY, TB_RESET), and a test's commands and
 * devices live in its temp dir. The teardown (registered first, so it runs last, after the test's
 * own closes and kills) fails the file if a guard naming this dir, or a job a guard started, is
 * still running 3 s later, and kills what it finds.
 */
export function tempDir(t: Teardown, prefix = 'tb-radio-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(async () => {
    await noGuardsLeft(t.name ?? d, d);
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

/** PTT guards, and what they started, whose environment names `marker`: [pid, command line]. */
export function guardProcesses(marker: string): Array<[number, string]> {
  const found: Array<[number, string]> = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (!env.includes('\0TB_HOLD=') || !env.includes(marker)) continue;
      // The guard's own command line carries its whole script: shortened.
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      found.push([pid, args.map((a) => (a.length > 40 ? `${a.slice(0, 16).replace(/\s+/g, ' ')}…` : a)).join(' ')]);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/**
 * Fails the test file (the test itself has ended) if guard processes naming `marker` outlive
 * `graceMs`, and SIGKILLs them: a guard exits on its own, within its write deadline, once its
 * stdin closes, so one still running was never closed or is stuck.
 */
export async function noGuardsLeft(name: string, marker: string, graceMs = 3000): Promise<void> {
  const end = Date.now() + graceMs;
  let left = guardProcesses(marker);
  while (left.length && Date.now() < end) {
    await sleep(50);
    left = guardProcesses(marker);
  }
  if (!left.length) return;
  for (const [pid] of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
  tap.fail(`"${name}" left PTT guard processes running: ${left.map(([pid, cmd]) => `${pid} ${cmd}`).join('; ')}`);
}

export function writeExe(dir: string, name: string, body: string): string {
  mkdirSync(dir, { recursive: true });
  const p = path.join(dir, name);
  writeFileSync(p, body);
  chmodSync(p, 0o755);
  return p;
}

export function readOr(file: string, fallback = ''): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

export async function waitFor<T>(fn: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A sysfs gpio tree with the given chips: { label, base, ngpio }. */
export function fakeSysfs(root: string, chips: Array<{ label: string; base: number; ngpio: number }>): void {
  for (const c of chips) {
    const d = path.join(root, `gpiochip${c.base}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(path.join(d, 'base'), `${c.base}\n`);
    writeFileSync(path.join(d, 'label'), `${c.label}\n`);
    writeFileSync(path.join(d, 'ngpio'), `${c.ngpio}\n`);
  }
}

/**
 * onoff's Gpio at its module edge, backed by the fake sysfs tree: export creates gpioN/value, writes
 * go to that file (where the guard process also writes), `fail` makes the next write throw.
 */
export function fakeGpioClass(root: string) {
  const made: FakeGpio[] = [];
  class FakeGpio {
    static made = made;
    fail: NodeJS.ErrnoException | null = null;
    watchers: Array<(err: Error | null | undefined, v: 0 | 1) => void> = [];
    readonly file: string;
    constructor(
      readonly n: number,
      readonly direction: string,
      readonly edge?: string,
    ) {
      const d = path.join(root, `gpio${n}`);
      mkdirSync(d, { recursive: true });
      this.file = path.join(d, 'value');
      if (direction === 'high' || direction === 'low') writeFileSync(this.file, direction === 'high' ? '1\n' : '0\n');
      made.push(this);
    }
    writeSync(v: 0 | 1): void {
      if (this.fail) throw this.fail;
      writeFileSync(this.file, `${v}\n`);
    }
    readSync(): 0 | 1 {
      return readOr(this.file, '0').trim() === '1' ? 1 : 0;
    }
    watch(cb: (err: Error | null | undefined, v: 0 | 1) => void): void {
      this.watchers.push(cb);
    }
    unwatchAll(): void {
      this.watchers = [];
    }
    unexport(): void {}
  }
  return FakeGpio;
}

/**
 * libgpiod tools (v1 or v2 command line) as bash scripts. Line levels live in $state/<chip>-<line>;
 * every invocation is logged; holders (--mode=signal / v2 default) run until killed, like gpioset.
 */
export function fakeGpioTools(bin: string, state: string, major: 1 | 2, chips = 'gpiochip0 [pinctrl-bcm2711] (58 lines)\ngpiochip1 [raspberrypi-exp-gpio] (8 lines)') {
  mkdirSync(state, { recursive: true });
  writeFileSync(path.join(state, 'chips'), chips + '\n');
  const log = path.join(state, 'log');
  // Builtins only before a failure exit: a real gpioset fails within milliseconds, so must the fake.
  const common = `STATE=${JSON.stringify(state)}\necho "\${0##*/} $*" >> "$STATE/log"\n`;
  writeExe(bin, 'gpiodetect', `#!/bin/bash\n${common}cat "$STATE/chips"\n`);
  writeExe(
    bin,
    'gpioset',
    `#!/bin/bash
${common}
if [ "$1" = --version ]; then echo "gpioset (libgpiod) v${major === 1 ? '1.6.3' : '2.1'}"; exit 0; fi
hold=0
if [ ${major} = 1 ]; then
  if [ "$1" = --mode=signal ]; then hold=1; shift; fi
  chip=$1; spec=$2
else
  hold=1
  [ "$1" = -c ] || { echo "gpioset: expected -c" >&2; exit 2; }
  chip=$2; shift 2
  if [ "$1" = -t ] && [ "$2" = 0 ]; then hold=0; shift 2; fi
  spec=$1
fi
if [ -e "$STATE/busy" ]; then echo "gpioset: error setting the GPIO line values: Device or resource busy" >&2; exit 1; fi
chips=$(<"$STATE/chips")
[[ $'\n'$chips == *$'\n'"$chip "* ]] || { echo "gpioset: cannot find GPIO chip '$chip'" >&2; exit 1; }
echo "\${spec#*=}" > "$STATE/$chip-\${spec%=*}"
if [ $hold = 1 ]; then trap 'kill $s 2>/dev/null; exit 0' TERM INT; sleep 1000 & s=$!; wait $s; fi
exit 0
`,
  );
  writeExe(bin, 'gpioget', `#!/bin/bash\n${common}line="\${@: -1}"; for a in "$@"; do case $a in gpiochip*) chip=$a;; esac; done\ncat "$STATE/$chip-$line" 2>/dev/null || echo 0\n`);
  writeExe(bin, 'gpiomon', `#!/bin/bash\n${common}touch "$STATE/events"\nexec tail -n +1 -s 0.02 -f "$STATE/events"\n`);
  return { log, level: (chip: string, line: number) => readOr(path.join(state, `${chip}-${line}`)).trim() };
}
