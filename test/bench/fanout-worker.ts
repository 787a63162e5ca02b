// One of the listener processes of the fan-out benchmark: N MQTT.js subscribers on one topic,
// each recording when every packet arrived. Reports per-packet broker-hop latencies on stdin EOF.
import mqtt from 'mqtt';

const [url, topic, nStr] = process.argv.slice(2) as [string, string, string];
const n = Number(nStr);
const now = () => performance.timeOrigin + performance.now();
const lat: number[] = [];
const got = new Map<number, number>();

const clients: mqtt.MqttClient[] = [];
for (let i = 0; i < n; i++) {
  const c = await mqtt.connectAsync(url, { clientId: `fan-${process.pid}-${i}`, reconnectPeriod: 0, queueQoSZero: false, keepalive: 120 });
  await c.subscribeAsync(topic, { qos: 0 });
  c.on('message', (_t, p) => {
    const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
    const seq = v.getUint32(0);
    lat.push(now() - v.getFloat64(4));
    got.set(seq, (got.get(seq) ?? 0) + 1);
  });
  clients.push(c);
}
process.stdout.write('ready\n');
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({ lat, received: lat.length, seqs: got.size }) + '\n');
  for (const c of clients) c.end(true);
  setTimeout(() => process.exit(0), 200);
});
