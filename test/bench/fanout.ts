/**
 * How many listeners one Mosquitto on this machine serves from one talker: a publisher sends an
 * over's worth of audio-sized packets (25/s, 2 frames per packet) and N subscribers in two
 * processes time each one's broker hop. A size passes with no loss and p99 ≤ 20 ms.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { startMosquitto } from '../helpers/brokers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function worker(url: string, topic: string, n: number) {
  const p = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'fanout-worker.ts'), url, topic, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  const ready = new Promise<void>((resolve, reject) => {
    const check = () => (out.includes('ready') ? resolve() : undefined);
    p.stdout.on('data', check);
    p.once('exit', (c) => reject(new Error(`worker exited ${c}`)));
  });
  const result = new Promise<{ lat: number[]; received: number; seqs: number }>((resolve) => p.once('exit', () => resolve(JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!))));
  return { p, ready, result };
}

export async function benchFanout(sizes = [500, 1000, 2000], seconds = 10): Promise<Array<Record<string, number | string>>> {
  const rows: Array<Record<string, number | string>> = [];
  for (const n of sizes) {
    // max_queued_messages 1000 as in the tests; a fresh broker per size.
    const broker = await startMosquitto('max_connections -1');
    try {
      const topic = 'talkbridge/v1/fan/audio/talker';
      const workers = [worker(broker.url, topic, Math.ceil(n / 2)), worker(broker.url, topic, Math.floor(n / 2))];
      await Promise.all(workers.map((w) => w.ready));
      const pub = await mqtt.connectAsync(broker.url, { queueQoSZero: false });
      const packets = seconds * 25;
      const payload = Buffer.alloc(26 + 2 * 42); // header + two 16 kbit/s frames with length prefixes
      const t0 = performance.now();
      for (let seq = 0; seq < packets; seq++) {
        const wait = t0 + seq * 40 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        payload.writeUInt32BE(seq, 0);
        payload.writeDoubleBE(performance.timeOrigin + performance.now(), 4);
        pub.publish(topic, payload, { qos: 0 });
      }
      await new Promise((r) => setTimeout(r, 1500));
      for (const w of workers) w.p.stdin.end();
      const res = await Promise.all(workers.map((w) => w.result));
      await pub.endAsync();
      const lat = res.flatMap((r) => r.lat).sort((a, b) => a - b);
      const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
      const expected = packets * n;
      const received = res.reduce((a, r) => a + r.received, 0);
      rows.push({
        listeners: n,
        'deliveries expected': expected,
        lost: expected - received,
        'broker hop p50 ms': Number(q(0.5).toFixed(2)),
        'broker hop p99 ms': Number(q(0.99).toFixed(2)),
        'broker hop max ms': Number((lat.at(-1) ?? NaN).toFixed(2)),
        verdict: expected === received && q(0.99) <= 20 ? 'serves (no loss, p99 ≤ 20 ms)' : 'over the limit',
      });
    } finally {
      await broker.stop();
    }
  }
  return rows;
}
