import t from 'tap';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { startDaemon } from '../../gateway/src/app/daemon.js';
import { startMonitor } from '../../gateway/src/app/status.js';
import { createMetrics } from '../../gateway/src/app/metrics.js';
import { ConfigSchema } from '../../gateway/src/config/schema.js';
import { startHttpServer } from '../../gateway/src/http/server.js';
import { freePort } from '../helpers/brokers.js';
import { FakeBridge, FakeChannel } from './fakes.js';
import { sleep, waitFor } from './helpers.js';

interface Exposition {
  types: Map<string, string>;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** The Prometheus text format, parsed strictly enough that a malformed line fails the test. */
function parse(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Exposition['samples'] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const ty = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (ty) {
      types.set(ty[1]!, ty[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const v = m[3]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return { types, samples };
}

function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return e.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

t.test('/metrics: names, types, and values that follow bridge and channel events', async (t) => {
  const hf = new FakeBridge('hf');
  const vhf = new FakeBridge('vhf');
  const base = new FakeChannel('base');
  const monitor = startMonitor({
    prefix: 'tb/v1',
    gatewayId: 'gw-a',
    name: 'Hill top',
    version: 'talkbridge/0.1',
    bridges: [hf, vhf],
    channels: [base],
    client: null,
    minIntervalMs: 20,
    levelsMs: 5000,
    createMetrics,
  });
  t.teardown(() => monitor.stop());
  const http = await startHttpServer({ host: '127.0.0.1', port: 0, routes: [monitor.metricsRoute!] });
  t.teardown(() => http.close());
  const url = `http://127.0.0.1:${http.address.port}/metrics`;
  const scrape = async () => {
    const res = await fetch(url);
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    return parse(await res.text());
  };

  const before = await scrape();
  const types: Record<string, string> = {
    talkbridge_info: 'gauge',
    talkbridge_overs_total: 'counter',
    talkbridge_keyed_seconds_total: 'counter',
    talkbridge_timeouts_total: 'counter',
    talkbridge_starvations_total: 'counter',
    talkbridge_ptt_faults_total: 'counter',
    talkbridge_ptt: 'gauge',
    talkbridge_cos: 'gauge',
    talkbridge_radio_state: 'gauge',
    talkbridge_input_level_dbfs: 'gauge',
    talkbridge_channel_connected: 'gauge',
    talkbridge_packets_lost_total: 'counter',
    talkbridge_packets_late_total: 'counter',
    talkbridge_malformed_input_total: 'counter',
    talkbridge_jitter_delay_seconds: 'histogram',
    talkbridge_event_loop_delay_p99_seconds: 'gauge',
    talkbridge_process_resident_memory_bytes: 'gauge',
  };
  for (const [name, type] of Object.entries(types)) t.equal(before.types.get(name), type, `${name} is a ${type}`);
  t.equal(value(before, 'talkbridge_info', { gateway: 'gw-a', name: 'Hill top', version: 'talkbridge/0.1' }), 1);
  t.equal(value(before, 'talkbridge_overs_total', { radio: 'hf', direction: 'channel-to-radio' }), 0);
  t.equal(value(before, 'talkbridge_ptt', { radio: 'hf' }), 0);
  t.equal(value(before, 'talkbridge_radio_state', { radio: 'hf', state: 'idle' }), 1);
  t.equal(value(before, 'talkbridge_radio_state', { radio: 'hf', state: 'tx' }), 0);
  t.equal(value(before, 'talkbridge_input_level_dbfs', { radio: 'vhf' }), -42.04);
  t.equal(value(before, 'talkbridge_channel_connected', { channel: 'base' }), 1);
  t.equal(value(before, 'talkbridge_jitter_delay_seconds_count', { channel: 'base' }), undefined, 'no over yet');

  // An over from the channel, transmitted on hf; meanwhile garbage arrives and the loop stalls.
  hf.st.rxLevels = { peakDb: -3, rmsDb: -12.5, clipped: 2, samples: 960 };
  base.talk('Alice');
  hf.transmit({ direction: 'channel-to-radio', channel: 'base', stream: 's1', talker: 'Alice', since: Date.now() });
  base.session.counters['packet-short'] = 3;
  base.session.counters.control = 1;
  // A 100 ms stall in a task of its own (far above what a loaded CI machine adds by itself).
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      const until = Date.now() + 100;
      while (Date.now() < until);
      resolve();
    }, 20),
  );
  await sleep(60);
  const during = await scrape();
  t.equal(value(during, 'talkbridge_ptt', { radio: 'hf' }), 1, 'PTT on while transmitting');
  t.equal(value(during, 'talkbridge_radio_state', { radio: 'hf', state: 'tx' }), 1);
  t.equal(value(during, 'talkbridge_radio_state', { radio: 'hf', state: 'idle' }), 0);
  t.equal(value(during, 'talkbridge_input_level_dbfs', { radio: 'hf' }), -12.5);
  t.equal(value(during, 'talkbridge_malformed_input_total', { channel: 'base', reason: 'packet-short' }), 3);
  t.equal(value(during, 'talkbridge_malformed_input_total', { channel: 'base', reason: 'control' }), 1);
  const max = value(during, 'talkbridge_event_loop_delay_max_seconds')!;
  t.ok(max >= 0.08 && max < 5, `event-loop max ${max} s saw the 100 ms stall`);
  t.ok(value(during, 'talkbridge_event_loop_delay_p99_seconds')! > 0, 'p99 is exported');

  base.endTalk({ received: 48, lost: 2, late: 1, delayMs: 60 });
  hf.endTransmit(2.5);
  await sleep(60);
  const after = await scrape();
  t.equal(value(after, 'talkbridge_overs_total', { radio: 'hf', direction: 'channel-to-radio' }), 1);
  t.equal(value(after, 'talkbridge_overs_total', { radio: 'hf', direction: 'radio-to-channel' }), 0);
  t.equal(value(after, 'talkbridge_keyed_seconds_total', { radio: 'hf' }), 2.5);
  t.equal(value(after, 'talkbridge_ptt', { radio: 'hf' }), 0, 'PTT off after the over');
  t.equal(value(after, 'talkbridge_packets_received_total', { channel: 'base' }), 48);
  t.equal(value(after, 'talkbridge_packets_lost_total', { channel: 'base' }), 2);
  t.equal(value(after, 'talkbridge_packets_late_total', { channel: 'base' }), 1);
  t.equal(value(after, 'talkbridge_channel_overs_total', { channel: 'base' }), 1);
  t.equal(value(after, 'talkbridge_jitter_delay_seconds_count', { channel: 'base' }), 1);
  t.equal(value(after, 'talkbridge_jitter_delay_seconds_sum', { channel: 'base' }), 0.06);
  t.equal(value(after, 'talkbridge_jitter_delay_seconds_bucket', { channel: 'base', le: '0.04' }), 0);
  t.equal(value(after, 'talkbridge_jitter_delay_seconds_bucket', { channel: 'base', le: '0.06' }), 1);
  const maxAfter = value(after, 'talkbridge_event_loop_delay_max_seconds')!;
  t.ok(maxAfter < max, `the loop-delay window restarts at each scrape (${maxAfter} < ${max})`);

  base.client.connected = false;
  await sleep(10);
  t.equal(value(await scrape(), 'talkbridge_channel_connected', { channel: 'base' }), 0);

  const post = await fetch(url, { method: 'POST' });
  t.equal(post.status, 405);
  t.equal((await fetch(`http://127.0.0.1:${http.address.port}/other`)).status, 404, 'other paths fall through');
});

t.test('healthy(): every channel connected and every radio audio OK; status() is called by the monitor only', async (t) => {
  const hf = new FakeBridge('hf');
  const base = new FakeChannel('base');
  const monitor = startMonitor({ prefix: 'tb/v1', gatewayId: 'gw-a', name: 'A', version: 'x', bridges: [hf], channels: [base], client: null, levelsMs: 50, defaultMetrics: false, createMetrics });
  t.teardown(() => monitor.stop());
  t.equal(monitor.healthy(), true);
  base.client.connected = false;
  t.equal(monitor.healthy(), false, 'a channel down');
  base.client.connected = true;
  hf.st.audioOk = false;
  await sleep(120);
  t.equal(monitor.healthy(), false, 'a sound card gone');
  hf.st.audioOk = true;
  await sleep(120);
  t.equal(monitor.healthy(), true, 'back');
  const calls = hf.statusCalls;
  await monitor.metrics!.text();
  monitor.healthy();
  t.equal(hf.statusCalls, calls, 'scrapes and health checks read the sample, not status()');
});

t.test("a daemon's /metrics counts what its embedded broker refused and what its channel session dropped", async (t) => {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const password = 'correct horse battery';
  const config = ConfigSchema.parse({
    gateway: { id: 'gw-m', name: 'Metrics' },
    embeddedBroker: { port: mqttPort, auth: { users: { alice: { role: 'talk', channels: ['base'], password } } } },
    http: { port: httpPort },
    channels: [{ name: 'base' }],
  });
  const daemon = await startDaemon(config, pino({ level: 'silent' }));
  t.teardown(() => daemon.stop());
  const broker = `mqtt://127.0.0.1:${mqttPort}`;
  const scrape = async () => parse(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text());
  const refused = (e: Exposition, reason: string) => value(e, 'talkbridge_broker_refused_total', { gateway: 'gw-m', reason });

  const before = await scrape();
  t.equal(before.types.get('talkbridge_broker_refused_total'), 'counter');
  for (const r of ['packet-too-large', 'publish-too-large', 'retained-not-kept', 'client-id-refused', 'login-throttled', 'login-refused', 'publish-denied', 'subscribe-denied'])
    t.equal(refused(before, r), 0, `${r} starts at 0`);

  await t.rejects(mqtt.connectAsync(broker, { username: 'alice', password: 'not-the-password', reconnectPeriod: 0 }), 'a wrong password is refused');
  const alice = await mqtt.connectAsync(broker, { username: 'alice', password, reconnectPeriod: 0 });
  t.teardown(() => alice.endAsync(true));
  // Over the protocol's 4,096-byte bound, under the 32 KiB packet bound: dropped, the connection stays.
  await alice.publishAsync('talkbridge/v1/base/audio/alice', Buffer.alloc(5000), { qos: 1 });
  // Reaches the channel session, which drops it: a presence last seen an hour ago.
  const hourAgo = Date.now() - 3_600_000;
  await alice.publishAsync('talkbridge/v1/base/presence/alice', JSON.stringify({ v: 1, name: 'Alice', source: 'cli', since: hourAgo, software: 'test', at: hourAgo }), { qos: 1 });
  await alice.publishAsync('talkbridge/v1/base/audio/alice', Buffer.from([1, 2, 3]), { qos: 1 });

  const after = await waitFor(
    async () => {
      const e = await scrape();
      return value(e, 'talkbridge_malformed_input_total', { channel: 'base', reason: 'packet-short' }) === 1 ? e : null;
    },
    5000,
    'the session drops on /metrics',
  );
  t.equal(refused(after, 'login-refused'), 1, 'the wrong password');
  t.equal(refused(after, 'publish-too-large'), 1, 'the oversized publish');
  t.equal(refused(after, 'packet-too-large'), 0);
  t.equal(value(after, 'talkbridge_malformed_input_total', { channel: 'base', reason: 'stale-presence' }), 1, 'a new drop reason needs no metric of its own');
  t.ok(alice.connected, 'a publish over its bound does not cost the connection');

  // A packet over the 32 KiB bound closes the connection as soon as its length is read.
  const big = await mqtt.connectAsync(broker, { username: 'alice', password, reconnectPeriod: 0 });
  t.teardown(() => big.endAsync(true));
  const closed = new Promise<void>((resolve) => big.once('close', () => resolve()));
  big.publish('talkbridge/v1/base/audio/alice', Buffer.alloc(40_000), { qos: 0 });
  await closed;
  t.equal(refused(await scrape(), 'packet-too-large'), 1, 'the oversized packet');
});

t.test('an open embedded broker has no login series on /metrics', async (t) => {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const config = ConfigSchema.parse({ gateway: { id: 'gw-o', name: 'Open' }, embeddedBroker: { port: mqttPort }, http: { port: httpPort }, channels: [{ name: 'base' }] });
  const daemon = await startDaemon(config, pino({ level: 'silent' }));
  t.teardown(() => daemon.stop());
  const e = parse(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text());
  t.equal(value(e, 'talkbridge_broker_refused_total', { reason: 'publish-too-large' }), 0);
  t.equal(value(e, 'talkbridge_broker_refused_total', { reason: 'login-refused' }), undefined);
});
