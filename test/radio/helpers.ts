/** Fake OS boundaries for the radio driver tests: temp trees, fake executables, polling waits. */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export function tempDir(t: Teardown, prefix = 'tb-radio-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
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
    constructor(readonly n: number, readonly direction: string, readonly edge?: string) {
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
