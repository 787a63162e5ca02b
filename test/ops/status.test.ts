import t from 'tap';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { type GatewayStatusJson, startMonitor, statusClientId, statusWill } from '../../gateway/src/app/status.js';
import { statusFilter, statusTopic } from '../../gateway/shared/channel/topics.js';
import { connect, disconnect } from '../../gateway/src/net/connect.js';
import { startMosquitto } from '../helpers/brokers.js';
import { runCli, startCli } from '../helpers/cli.js';
import { FakeBridge, FakeChannel } from './fakes.js';
import { sleep, waitFor } from './helpers.js';

interface Seen {
  doc: GatewayStatusJson;
  retain: boolean;
  topic: string;
}

async function observe(t: { teardown(fn: () => unknown): void }, url: string, filter: string): Promise<{ seen: Seen[]; client: MqttClient }> {
  const client = await mqtt.connectAsync(url, { clientId: `obs-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
  t.teardown(() => client.endAsync());
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) => {
    if (payload.length) seen.push({ doc: JSON.parse(payload.toString()) as GatewayStatusJson, retain: packet.retain, topic });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { seen, client };
}

const ID = { prefix: 'tb/v1', gatewayId: 'gw-a', name: 'Hill top', version: 'talkbridge/0.1' };

t.test('retained status topic on Mosquitto: online, events rate-limited, levels, Last Will on a killed connection, offline on stop', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  t.equal(statusTopic(ID.prefix, ID.gatewayId), 'tb/v1/_gateways/gw-a/status');
  const obs = await observe(t, broker.url, statusFilter(ID.prefix));

  const client = await connect({ url: broker.url, clientId: statusClientId(ID.gatewayId), will: statusWill(ID), reconnectMs: 200, keepaliveSeconds: 5 });
  t.teardown(() => disconnect(client));
  const hf = new FakeBridge('hf');
  const base = new FakeChannel('base');
  const monitor = startMonitor({ ...ID, bridges: [hf], channels: [base], client, minIntervalMs: 100, levelsMs: 400, defaultMetrics: false });
  t.teardown(() => monitor.stop());

  await waitFor(() => obs.seen.length >= 1, 3000, 'the first status');
  const first = obs.seen[0]!;
  t.equal(first.topic, 'tb/v1/_gateways/gw-a/status');
  t.match(first.doc, { v: 1, online: true, id: 'gw-a', name: 'Hill top', version: 'talkbridge/0.1' });
  t.type(first.doc.since, 'number');
  t.same(first.doc.radios[0], {
    radio: 'hf',
    state: 'idle',
    ptt: false,
    cos: false,
    audioOk: true,
    over: null,
    rx: { peakDb: -30, rmsDb: -42, clipped: 0 },
    tx: null,
    counters: { ...hf.counters },
  });
  t.same(first.doc.channels, [{ channel: 'base', connected: true, encrypted: false, talking: null }]);

  // An over: the status follows within the rate limit.
  let mark = obs.seen.length;
  base.talk('Alice');
  hf.transmit({ direction: 'channel-to-radio', channel: 'base', stream: 's1', talker: 'Alice', since: 1700000000000 });
  const keyed = await waitFor(() => obs.seen.slice(mark).find((s) => s.doc.radios[0]?.ptt), 2000, 'PTT in the status');
  t.match(keyed.doc.radios[0], { state: 'tx', ptt: true, over: { direction: 'channel-to-radio', channel: 'base', talker: 'Alice', since: 1700000000000 } });
  t.same(keyed.doc.channels[0], { channel: 'base', connected: true, encrypted: false, talking: 'Alice' });

  // A burst of 50 events is coalesced, not 50 publishes.
  await sleep(150);
  mark = obs.seen.length;
  for (let i = 0; i < 50; i++) {
    hf.st.cos = i % 2 === 0;
    hf.emit('cos', hf.st.cos);
  }
  await sleep(300);
  const burst = obs.seen.length - mark;
  t.ok(burst >= 1 && burst <= 4, `${burst} publishes for 50 events in 300 ms`);

  // Levels go out periodically with no event at all.
  hf.st.rxLevels = { peakDb: -6.02, rmsDb: -18.26, clipped: 3, samples: 960 };
  mark = obs.seen.length;
  const lv = await waitFor(() => obs.seen.slice(mark).find((s) => s.doc.radios[0]?.rx?.rmsDb === -18.3), 2000, 'new levels');
  t.same(lv.doc.radios[0]!.rx, { peakDb: -6, rmsDb: -18.3, clipped: 3 });

  // A late subscriber gets the latest document, retained.
  const late = await observe(t, broker.url, statusTopic(ID.prefix, ID.gatewayId));
  await waitFor(() => late.seen.length >= 1, 2000, 'retained status');
  t.equal(late.seen[0]!.retain, true, 'retained');
  t.equal(late.seen[0]!.doc.online, true);

  // The connection dies without a DISCONNECT: the broker publishes the Will; the client reconnects and says online again.
  const sinceBefore = obs.seen.at(-1)!.doc.since!;
  mark = obs.seen.length;
  (client as unknown as { stream: { destroy(): void } }).stream.destroy();
  const will = await waitFor(() => obs.seen.slice(mark).find((s) => !s.doc.online), 5000, 'the Last Will');
  t.same(will.doc, { v: 1, online: false, id: 'gw-a', name: 'Hill top', version: 'talkbridge/0.1', radios: [], channels: [] }, 'the Will is the offline document');
  const back = await waitFor(() => obs.seen.slice(mark).find((s, i, a) => s.doc.online && a.slice(0, i).some((x) => !x.doc.online)), 5000, 'online after reconnect');
  t.ok(back.doc.since! > sinceBefore, 'since is the new connection');

  // A clean stop publishes offline itself (the broker drops the Will on a normal disconnect).
  mark = obs.seen.length;
  await monitor.stop();
  await disconnect(client);
  const off = await waitFor(() => obs.seen.slice(mark).find((s) => !s.doc.online), 3000, 'offline on stop');
  t.type(off.doc.updated, 'number');
  const after = await observe(t, broker.url, statusTopic(ID.prefix, ID.gatewayId));
  await waitFor(() => after.seen.length >= 1, 2000, 'retained offline');
  t.equal(after.seen[0]!.doc.online, false, 'the retained status says offline');
});

t.test('talkbridge status prints one line per gateway, follows with --watch, survives garbage', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const client = await connect({ url: broker.url, clientId: statusClientId(ID.gatewayId), will: statusWill(ID) });
  t.teardown(() => disconnect(client));
  const hf = new FakeBridge('hf');
  const base = new FakeChannel('base');
  const monitor = startMonitor({ ...ID, bridges: [hf], channels: [base], client, minIntervalMs: 50, levelsMs: 60000, defaultMetrics: false });
  t.teardown(() => monitor.stop());
  const junk = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  await junk.publishAsync('tb/v1/_gateways/junk/status', 'not json {', { qos: 1, retain: true });
  await junk.publishAsync('tb/v1/_gateways/gw-b/status', JSON.stringify({ v: 1, online: false, id: 'gw-b', name: 'Valley\nfake line' }), { qos: 1, retain: true });
  await junk.endAsync();
  await sleep(200);

  const r = await runCli(['status', '--broker', broker.url, '--prefix', 'tb/v1']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, 3, 'three gateways, one line each');
  t.equal(lines[0], `gw-a (Hill top): online talkbridge/0.1 | broker ${broker.url} | radio hf: idle, PTT off, COS closed, rx -42 dBFS | channel base: connected`);
  t.equal(lines[1], 'gw-b (Valley?fake line): OFFLINE', 'control characters cannot forge lines');
  t.match(lines[2], /^junk: unreadable status \(.+\)$/);

  const one = await runCli(['status', '--broker', broker.url, '--prefix', 'tb/v1', '--gateway', 'nobody']);
  t.equal(one.code, 1);
  t.equal(one.stderr, `talkbridge: no gateway status for nobody under tb/v1/_gateways on ${broker.url}\n`);

  const w = startCli(['status', '--broker', broker.url, '--prefix', 'tb/v1', '--gateway', 'gw-a', '--watch']);
  t.teardown(() => w.proc.kill('SIGKILL'));
  await w.waitFor(/gw-a \(Hill top\): online/);
  base.talk('Alice');
  hf.transmit({ direction: 'channel-to-radio', channel: 'base', stream: 's1', talker: 'Alice', since: Date.now() });
  const line = await w.waitFor(/\d\d:\d\d:\d\d gw-a .*PTT ON.*\n/);
  t.match(line, /radio hf: tx, PTT ON, COS closed, transmitting Alice from base, rx -42 dBFS \| channel base: connected, Alice talking/);
  await monitor.stop();
  await w.waitFor(/\d\d:\d\d:\d\d gw-a \(Hill top\): OFFLINE talkbridge\/0\.1\n/);
  w.proc.kill('SIGINT');
  const done = await w.result;
  t.equal(done.code, 0);

  const bad = await runCli(['status']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--broker is required/);
  const badGw = await runCli(['status', '--broker', broker.url, '--gateway', 'a/b']);
  t.equal(badGw.code, 2);
  t.match(badGw.stderr, /sender id "a\/b" is not valid/);
});
