/** Runs the real talkbridge CLI (the built gateway/dist) as a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'gateway/bin/talkbridge.js');
export const FIXTURES = path.join(ROOT, 'test/fixtures');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  proc: ChildProcess;
  result: Promise<CliResult>;
  /** Resolves when stdout or stderr has printed text matching re. */
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): RunningCli {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  proc.stdout!.on('data', (d) => ((stdout += d), waiters.forEach((w) => w())));
  proc.stderr!.on('data', (d) => ((stderr += d), waiters.forEach((w) => w())));
  const result = new Promise<CliResult>((resolve) => proc.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return {
    proc,
    result,
    waitFor(re, ms = 10000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = (stdout + stderr).match(re);
          if (m) {
            clearTimeout(t);
            resolve(m[0]);
            return true;
          }
          return false;
        };
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout: ${stdout} stderr: ${stderr}`)), ms);
        if (!check()) waiters.push(() => void check());
        result.then(() => setTimeout(() => check() || (clearTimeout(t), reject(new Error(`process exited before ${re}; stdout: ${stdout} stderr: ${stderr}`))), 10));
      });
    },
  };
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const c = startCli(args, opts);
  const t = setTimeout(() => c.proc.kill('SIGKILL'), opts.timeoutMs ?? 60000);
  return c.result.finally(() => clearTimeout(t));
}
