/**
 * Real brokers for tests: a Mosquitto process on a free loopback port, or the embedded aedes broker
 * in-process. Both are stopped by the test's teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startEmbeddedBroker } from '../../gateway/src/broker/embedded.js';

export interface TestBroker {
  url: string;
  port: number;
  /** Stops the broker (tests of broker loss call this mid-over). */
  stop(): Promise<void>;
  /** Starts it again on the same port (Mosquitto only). */
  restart?(): Promise<void>;
}

export function mosquittoPath(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(p)) return p;
  return null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error(`nothing listening on ${port} after ${ms} ms`);
}

export async function startMosquitto(extraConf = ''): Promise<TestBroker> {
  return startMosquittoOn(await freePort(), extraConf);
}

/** Mosquitto on a given port (a test that needs the broker to appear where a client already waits). */
export async function startMosquittoOn(port: number, extraConf = ''): Promise<TestBroker> {
  const bin = mosquittoPath();
  if (!bin) throw new Error('mosquitto is not installed (apt-get install mosquitto); `npm test` installs it when run as root');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-mosq-'));
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nmax_queued_messages 1000\n${extraConf}\n`);
  let proc: ChildProcess;
  const start = async () => {
    proc = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<never>((_, rej) => proc.once('exit', (c) => rej(new Error(`mosquitto exited (${c}): ${err}`))));
    await Promise.race([waitForPort(port, 5000), exited]);
  };
  await start();
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await gone;
  };
  return { url: `mqtt://127.0.0.1:${port}`, port, stop, restart: start };
}

export async function startAedes(): Promise<TestBroker> {
  const b = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }) });
  return { url: `mqtt://127.0.0.1:${b.tcp!.port}`, port: b.tcp!.port, stop: () => b.close() };
}
