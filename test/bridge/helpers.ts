/** Two real gateways (`talkbridge run`) around a real Mosquitto, with file audio and a CM108 PTT on a FIFO. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeWav, readWav } from '../../gateway/src/audio/wav.js';
import { resampleAll } from '../../gateway/shared/audio/resample.js';
import { FIXTURES, startCli, type RunningCli } from '../helpers/cli.js';

export const KEY = '0000040400';
export const UNKEY = '0000000400';

export function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tb-bridge-'));
}

/** Speech at 48 kHz with silence around it, as a radio's receiver would deliver it. */
export async function speechInput(dir: string, leadS = 1, trailS = 2): Promise<{ file: string; speech: Int16Array }> {
  const s = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const speech = resampleAll(s.samples, 16000, 48000);
  const all = new Int16Array(Math.round(48000 * (leadS + trailS)) + speech.length);
  all.set(speech, Math.round(48000 * leadS));
  const file = path.join(dir, 'rx.wav');
  writeFileSync(file, encodeWav({ sampleRate: 48000, samples: all }));
  return { file, speech: s.samples };
}

/** Reads 5-byte CM108 reports off a FIFO and timestamps each. */
export function pttFifo(dir: string, name = 'hidraw-b'): { path: string; reports: Array<{ hex: string; at: number }>; proc: ChildProcess; close: () => void } {
  const p = path.join(dir, name);
  execFileSync('mkfifo', [p]);
  const reports: Array<{ hex: string; at: number }> = [];
  // A separate reader: a blocking FIFO read inside node would pin a libuv thread. It holds the
  // FIFO open read-write, so it never sees end-of-file when a writer closes. (A reader that
  // re-opened the FIFO after each end-of-file lost the guard's release now and then: a write
  // landing between cat's end-of-file and its close is discarded with the pipe. That was the
  // one CI failure of the SIGKILL test; a real hidraw node has no such gap.)
  const proc = spawn('bash', ['-c', 'exec 3<>"$1"; exec cat <&3', 'reader', p], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  let pending = Buffer.alloc(0);
  proc.stdout!.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 5) {
      reports.push({ hex: pending.subarray(0, 5).toString('hex'), at: Date.now() });
      pending = pending.subarray(5);
    }
  });
  const close = () => {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
    proc.stdout!.destroy();
  };
  return { path: p, reports, proc, close };
}

/** Samples the size of a growing file: when audio started and stopped arriving. */
export function watchGrowth(file: string): { first: () => number | null; last: () => number | null; stop: () => void } {
  let first: number | null = null;
  let last: number | null = null;
  let size = 0;
  const t = setInterval(() => {
    let s = 0;
    try {
      s = statSync(file).size;
    } catch {
      return;
    }
    if (s > 44 && s > size) {
      first ??= Date.now();
      last = Date.now();
    }
    size = s;
  }, 5);
  return { first: () => first, last: () => last, stop: () => clearInterval(t) };
}

export interface GatewaySpec {
  id: string;
  broker: string;
  channel?: string;
  radio: string;
  extra?: string;
}

export function writeConfig(dir: string, g: GatewaySpec): string {
  const file = path.join(dir, `${g.id}.yaml`);
  writeFileSync(
    file,
    `gateway:
  id: ${g.id}
  name: ${g.id}
broker:
  url: ${g.broker}
embeddedBroker:
  enabled: false
http:
  enabled: false
channels:
  - name: ${g.channel ?? 'link'}
radios:
${g.radio}
${g.extra ?? ''}
`,
  );
  return file;
}

export function runGateway(config: string): RunningCli & { events: () => Array<Record<string, unknown>> } {
  const c = startCli(['run', '--config', config]);
  let out = '';
  c.proc.stdout!.on('data', (d) => (out += d));
  return {
    ...c,
    events: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
