/** Helpers for the operations tests: a real sd_notify datagram socket, temp dirs, polling waits. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export function tempDir(t: Teardown, prefix = 'tb-ops-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(fn: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// A plain recv() (no ancillary buffer) makes the kernel close the pipe fd that systemd-notify's
// BARRIER=1 carries, which is exactly what releases the sender, as systemd itself does.
const RECORDER = `
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": sys.argv[1]}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"t": time.monotonic() * 1000, "msg": data.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifyMessage {
  /** Arrival, monotonic ms on the recorder's clock. */
  t: number;
  vars: Record<string, string>;
  raw: string;
}

export interface NotifySocket {
  path: string;
  /** Every datagram except systemd-notify's BARRIER=1 synchronisation messages. */
  messages: NotifyMessage[];
  barriers: number;
}

/** A real AF_UNIX SOCK_DGRAM socket (a python3 process) recording what systemd would receive. */
export async function startNotifySocket(t: Teardown): Promise<NotifySocket> {
  const sock = path.join(tempDir(t, 'tb-notify-'), 'notify.sock');
  const proc = spawn('python3', ['-c', RECORDER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => proc.kill('SIGKILL'));
  const out: NotifySocket = { path: sock, messages: [], barriers: 0 };
  const lines = createInterface({ input: proc.stdout });
  await new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (c) => reject(new Error(`notify recorder exited (${c})`)));
    lines.on('line', (l) => {
      const j = JSON.parse(l) as { listening?: string; t?: number; msg?: string };
      if (j.listening) return resolve();
      const raw = j.msg ?? '';
      if (raw === 'BARRIER=1') {
        out.barriers++;
        return;
      }
      const vars: Record<string, string> = {};
      for (const kv of raw.split('\n')) {
        const i = kv.indexOf('=');
        if (i > 0) vars[kv.slice(0, i)] = kv.slice(i + 1);
      }
      out.messages.push({ t: j.t ?? 0, vars, raw });
    });
  });
  return out;
}
