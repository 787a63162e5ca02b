/**
 * Sender → listener through Mosquitto on loopback, measured per packet from capture time (the
 * sender's timestamp of its first sample) to playout at the listener, with the real CLI processes.
 * A byte-counting TCP proxy between the sender and the broker gives the bytes on the wire.
 */
import net from 'node:net';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { startMosquitto, freePort } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { formatKey, generateKey } from '../../gateway/shared/crypto/keys.js';

async function countingProxy(target: number): Promise<{ port: number; bytes: () => number; close: () => void }> {
  let up = 0;
  const port = await freePort();
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect(target, '127.0.0.1');
    upstream.setNoDelay(true);
    client.on('data', (d) => {
      up += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { port, bytes: () => up, close: () => server.close() };
}

export async function benchLatency(): Promise<Array<Record<string, number | string>>> {
  const broker = await startMosquitto();
  const rows: Array<Record<string, number | string>> = [];
  try {
    const key = formatKey(generateKey(1));
    for (const [fpp, encrypted] of [
      [1, false],
      [2, false],
      [3, false],
      [2, true],
    ] as const) {
      const keyArgs = encrypted ? ['--key', key] : [];
      const proxy = await countingProxy(broker.port);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-lat-'));
      // Three overs per setting, so the jitter buffer's learning across overs shows.
      const listener = startCli(['listen', '--broker', broker.url, '--channel', `lat${fpp}`, '--out', dir, '--overs', '3', '--timeout', '60', '--latency', ...keyArgs]);
      await listener.waitFor(/listening on channel/);
      let packets = 0;
      let seconds = 0;
      const base = proxy.bytes();
      for (let i = 0; i < 3; i++) {
        const s = await runCli([
          'send',
          '--broker',
          `mqtt://127.0.0.1:${proxy.port}`,
          '--channel',
          `lat${fpp}`,
          '--name',
          'bench',
          '--frames-per-packet',
          String(fpp),
          ...keyArgs,
          path.join(FIXTURES, 'speech-16k.wav'),
        ]);
        const m = s.stdout.match(/sent ([\d.]+) s in (\d+) packets/);
        if (!m) throw new Error(`send failed: ${s.stderr}`);
        seconds += Number(m[1]);
        packets += Number(m[2]);
      }
      const bytes = proxy.bytes() - base;
      const r = await listener.result;
      proxy.close();
      const lat = r.stdout.match(/p50 ([\d.]+) p95 ([\d.]+) max ([\d.]+)/);
      const lost = [...r.stdout.matchAll(/(\d+) lost \/ (\d+) late/g)].reduce((a, m) => a + Number(m[1]) + Number(m[2]), 0);
      // Per PUBLISH, TCP/IPv4 with timestamps adds 52 bytes on the wire (no TLS here).
      const ipOverhead = 52 * packets;
      rows.push({
        framesPerPacket: fpp,
        channel: encrypted ? 'encrypted' : 'clear',
        'latency p50 ms': Number(lat?.[1]),
        'latency p95 ms': Number(lat?.[2]),
        'latency max ms': Number(lat?.[3]),
        'lost+late packets': lost,
        'MQTT bytes/s (sender → broker)': Math.round(bytes / seconds),
        'kbit/s on the wire incl. TCP/IP headers': Number((((bytes + ipOverhead) * 8) / seconds / 1000).toFixed(1)),
      });
    }
  } finally {
    await broker.stop();
  }
  return rows;
}
