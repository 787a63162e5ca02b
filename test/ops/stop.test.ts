/**
 * SIGTERM → exit within 1 s in every state, PTT unkeyed (issue #17), with the real daemon: its PTT
 * a CM108 on a FIFO we read, its carrier detect a CM108 on a FIFO we write (or gpiomon, a serial
 * line, VOX on a capture child), its broker a real Mosquitto. Each figure is in the assertion's name.
 * The root cause is shown on its own at the end: a libuv pool thread parked in read() on a silent
 * input makes process.exit() itself wait, and the exit guard (app/exit-guard.ts) ends that wait.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startMosquitto, type TestBroker } from '../helpers/brokers.js';
import { FIXTURES, ROOT, startCli, type RunningCli } from '../helpers/cli.js';
import { KEY, UNKEY, pttFifo, speechInput, writeConfig } from '../bridge/helpers.js';
import { fakeGpioTools, sleep, tempDir, waitFor } from '../radio/helpers.js';
import { installSoundCard } from '../helpers/sound-card.js';

const LIMIT_MS = 1000;
const SPEECH = path.join(FIXTURES, 'speech-16k.wav');

interface Spec {
  cos?: (dir: string) => string;
  audioIn?: (dir: string) => Promise<string> | string;
  extra?: string;
  /** false: nobody opens the CM108 input FIFO for writing. */
  cosWriter?: boolean;
  /** Executables first on the daemon's PATH (fake arecord, gpiomon …). */
  bin?: (binDir: string, dir: string) => void;
}

interface Running {
  dir: string;
  broker: TestBroker;
  ptt: ReturnType<typeof pttFifo>;
  cli: RunningCli;
  /** The chip's side of the carrier-detect FIFO, when there is one. */
  cosWriter: ChildProcess | null;
}

async function start(t: Test, spec: Spec): Promise<Running> {
  const dir = tempDir(t, 'tb-stop-');
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const ptt = pttFifo(dir);
  t.teardown(() => ptt.close());
  const binDir = path.join(dir, 'bin');
  spec.bin?.(binDir, dir);
  const cos = spec.cos?.(dir) ?? '{ type: none }';
  const input = spec.audioIn ? await spec.audioIn(dir) : null;
  const config = writeConfig(dir, {
    id: 'gw-s',
    broker: broker.url,
    radio: `  - name: s
    ptt: { type: cm108, device: ${ptt.path}, watchdogMs: 1000 }
    cos: ${cos}
    audio: { sampleRate: 48000, ${input ? `input: ${input}, ` : ''}output: { type: file, path: ${path.join(dir, 'out.wav')} } }`,
    extra: spec.extra,
  });
  const cosFifo = path.join(dir, 'hidraw-cos');
  let cosWriter: ChildProcess | null = null;
  if (existsSync(cosFifo) && spec.cosWriter !== false) {
    cosWriter = spawn('sh', ['-c', `exec cat > "$1"`, 'writer', cosFifo], { stdio: ['pipe', 'ignore', 'ignore'] });
    t.teardown(() => cosWriter!.kill('SIGKILL'));
  }
  const cli = startCli(['run', '--config', config], { env: { PATH: `${binDir}:${process.env.PATH}` } });
  t.teardown(() => cli.proc.kill('SIGKILL'));
  await cli.waitFor(/"event":"ready"/);
  return { dir, broker, ptt, cli, cosWriter };
}

function cm108Cos(dir: string): string {
  execFileSync('mkfifo', [path.join(dir, 'hidraw-cos')]);
  return `{ type: cm108, device: ${path.join(dir, 'hidraw-cos')}, debounceMs: 0 }`;
}

/** SIGTERM now: the time to the process's exit, and the PTT's last report once the guard has had its say. */
async function stopAndMeasure(t: Test, r: Running, state: string): Promise<number> {
  const at = performance.now();
  const exited = new Promise<number | null>((res) => r.cli.proc.once('exit', (code) => res(code)));
  r.cli.proc.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(5000).then(() => 'hung' as const)]);
  const ms = Math.round(performance.now() - at);
  t.ok(code !== 'hung' && ms <= LIMIT_MS, `${state}: SIGTERM → exit in ${code === 'hung' ? '> 5000' : ms} ms (≤ ${LIMIT_MS})`);
  t.equal(code, 0, `${state}: exit status 0`);
  const out = (await r.cli.result).stdout;
  t.notMatch(out, /"event":"stop-timeout"/, `${state}: stopped cleanly, not by the hard exit`);
  // The guard writes its release as it leaves; give a loaded machine a moment for it.
  await waitFor(() => r.ptt.reports.at(-1)?.hex === UNKEY, 2000, 'unkey').catch(() => undefined);
  t.equal(r.ptt.reports.at(-1)?.hex, UNKEY, `${state}: the PTT's last report is unkey (${r.ptt.reports.map((x) => x.hex).join(' ')})`);
  const stopped = /"event":"stopped","ms":(\d+)/.exec(out);
  t.comment(`${state}: ${ms} ms to exit (the daemon's own stop: ${stopped?.[1] ?? '?'} ms)`);
  return ms;
}

/** A network over into the gateway: keys its transmitter. */
async function keyFromNetwork(t: Test, r: Running, fast = false): Promise<void> {
  const send = startCli(['send', '--broker', r.broker.url, '--channel', 'link', '--name', 'Base', ...(fast ? ['--fast'] : []), SPEECH]);
  t.teardown(() => send.proc.kill('SIGKILL'));
  await waitFor(() => r.ptt.reports.some((x) => x.hex === KEY), 5000, 'PTT keyed');
}

const figures: Array<[string, number]> = [];
const measure = async (t: Test, r: Running, state: string) => figures.push([state, await stopAndMeasure(t, r, state)]);

t.test('idle, CM108 carrier detect silent since the start (issue #17)', async (t) => {
  const r = await start(t, { cos: cm108Cos });
  await sleep(300);
  await measure(t, r, 'idle, CM108 COS silent');
});

t.test('idle, CM108 carrier detect FIFO that no writer ever opened', async (t) => {
  const r = await start(t, { cos: cm108Cos, cosWriter: false });
  await measure(t, r, 'idle, CM108 COS never opened by a writer');
});

t.test('receiving: carrier open on the CM108 input, audio from a file', async (t) => {
  const r = await start(t, { cos: cm108Cos, audioIn: async (dir) => `{ type: file, path: ${(await speechInput(dir, 0.2, 30)).file} }` });
  r.cosWriter!.stdin!.write(Buffer.from([0x02, 0, 0, 0]));
  await r.cli.waitFor(/"to":"rx"/, 5000);
  await sleep(300);
  await measure(t, r, 'receiving');
});

t.test('receiving, then the carrier detect silent again for a while', async (t) => {
  const r = await start(t, { cos: cm108Cos });
  r.cosWriter!.stdin!.write(Buffer.from([0x02, 0, 0, 0]));
  await r.cli.waitFor(/"to":"rx"/, 5000);
  r.cosWriter!.stdin!.write(Buffer.from([0, 0, 0, 0]));
  await r.cli.waitFor(/"from":"rx"/, 5000);
  await sleep(500);
  await measure(t, r, 'after an over, CM108 COS silent');
});

t.test('transmitting: keyed for a network over', async (t) => {
  const r = await start(t, { cos: cm108Cos });
  await keyFromNetwork(t, r);
  await sleep(400);
  t.equal(r.ptt.reports.at(-1)?.hex, KEY, 'keyed when SIGTERM arrives');
  await measure(t, r, 'transmitting (keyed)');
});

t.test('hang: the over has ended, the transmitter is held for the hang time', async (t) => {
  const r = await start(t, { cos: cm108Cos, extra: 'bridge:\n  hangMs: 8000\n' });
  await keyFromNetwork(t, r, true);
  await r.cli.waitFor(/"to":"hang"/, 15000);
  await sleep(200);
  t.equal(r.ptt.reports.at(-1)?.hex, KEY, 'still keyed in the hang when SIGTERM arrives');
  await measure(t, r, 'hang (keyed)');
});

t.test('broker unreachable: killed, the daemon retrying', async (t) => {
  const r = await start(t, { cos: cm108Cos });
  await r.broker.stop();
  await r.cli.waitFor(/"state":"offline"/, 10000);
  await sleep(500);
  await measure(t, r, 'broker unreachable');
});

t.test('ALSA capture that never delivers a byte, VOX carrier detect', async (t) => {
  const r = await start(t, { audioIn: () => '{ type: alsa, device: default }', cos: () => '{ type: vox }', bin: (bin) => installSoundCard(bin, { capture: 'stalled' }) });
  await sleep(300);
  await measure(t, r, 'ALSA capture silent, VOX');
});

t.test('ALSA capture running, VOX carrier detect', async (t) => {
  const r = await start(t, { audioIn: () => '{ type: alsa, device: default }', cos: () => '{ type: vox }', bin: (bin) => installSoundCard(bin, { capture: 'silence' }) });
  await sleep(300);
  await measure(t, r, 'ALSA capture running, VOX');
});

t.test('GPIO carrier detect (libgpiod gpiomon) with no edges', async (t) => {
  const r = await start(t, {
    cos: () => '{ type: gpio, line: 27 }',
    bin: (bin, dir) => {
      const state = path.join(dir, 'gpio');
      fakeGpioTools(bin, state, 2, 'gpiochip0 [pinctrl-rp1] (54 lines)');
      writeFileSync(path.join(state, 'gpiochip0-27'), '0\n');
    },
  });
  await sleep(300);
  await measure(t, r, 'GPIO (gpiomon) COS silent');
});

const socat = ['/usr/bin/socat', '/bin/socat'].find((p) => existsSync(p));
t.test('serial DCD carrier detect on a pseudo-terminal', { skip: !socat && 'socat is not installed' }, async (t) => {
  let pair: ChildProcess | null = null;
  const r = await start(t, {
    cos: (dir) => {
      const tty = path.join(dir, 'ttyCOS');
      pair = spawn(socat!, ['pty,raw,echo=0,link=' + tty, 'pty,raw,echo=0,link=' + path.join(dir, 'ttyRadio')], { stdio: 'ignore' });
      execFileSync('bash', ['-c', `for i in $(seq 100); do [ -e "$1" ] && exit 0; sleep 0.02; done; exit 1`, 'wait', tty]);
      return `{ type: serial, device: ${tty}, line: dcd }`;
    },
  });
  t.teardown(() => pair?.kill('SIGKILL'));
  await sleep(300);
  await measure(t, r, 'serial COS');
});

t.test('figures', async (t) => {
  for (const [state, ms] of figures) t.pass(`${String(ms).padStart(4)} ms  ${state}`);
});

/**
 * The root cause on its own, without the daemon: a pool thread in read() on a silent FIFO (what
 * fs.createReadStream did on the CM108 input) holds process.exit() itself, since Node joins the
 * pool's threads before exiting; a timer cannot help, the main thread is the one waiting. The exit
 * guard, a process outside, ends it.
 */
t.test('a pool thread stuck in read() holds process.exit(); the exit guard ends it', async (t) => {
  const dir = tempDir(t, 'tb-stop-');
  const fifo = path.join(dir, 'silent');
  execFileSync('mkfifo', [fifo]);
  const holder = spawn('bash', ['-c', 'exec 3<>"$1"; exec sleep 1000', 'holder', fifo], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  const script = (guard: boolean) => `
    import { createReadStream } from 'node:fs';
    ${guard ? `import { armExitGuard } from ${JSON.stringify(path.join(ROOT, 'gateway/src/app/exit-guard.ts'))};` : ''}
    const s = createReadStream(${JSON.stringify(fifo)});
    s.on('data', () => undefined);
    s.on('open', () => setTimeout(() => {
      ${guard ? 'armExitGuard(500);' : ''}
      s.destroy();
      console.log('exiting');
      process.exit(0);
    }, 100));`;
  for (const guard of [false, true]) {
    const file = path.join(dir, `exit-${guard}.mts`);
    writeFileSync(file, script(guard));
    const p = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => p.kill('SIGKILL'));
    let at = 0;
    p.stdout!.on('data', (d) => {
      if (!at && String(d).includes('exiting')) at = performance.now();
    });
    const exited = new Promise<{ how: NodeJS.Signals | number | null; ms: number }>((res) => p.once('exit', (code, sig) => res({ how: sig ?? code, ms: Math.round(performance.now() - at) })));
    await waitFor(() => at, 10000, 'the child calling process.exit');
    const r = await Promise.race([exited, sleep(guard ? 3000 : 1500).then(() => ({ how: 'still running', ms: Math.round(performance.now() - at) }))]);
    if (!guard) t.equal(r.how, 'still running', `without the guard, process.exit() is still waiting ${r.ms} ms later`);
    else t.ok(r.how === 'SIGKILL' && r.ms <= LIMIT_MS, `with the guard (500 ms), killed ${r.ms} ms after process.exit() (${r.how})`);
    p.kill('SIGKILL');
  }
});
