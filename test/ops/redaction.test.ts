/**
 * Broker URLs never show their login (issue #16): not in the retained status topic (on the kit's
 * broker, nor in the copy its uplink publishes upstream), not on /healthz, not in the logs, not
 * in `check-config --print`, not in the command line's messages. A config or a flag with a
 * password in a URL is refused; one that slips past (a hand-made config) is still never shown.
 * And the uplink publishes upstream the kit's own status only, never another gateway's.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { startDaemon } from '../../gateway/src/app/daemon.js';
import { ConfigSchema } from '../../gateway/src/config/schema.js';
import { redactUrl } from '../../gateway/src/net/redact.js';
import { type TestBroker, freePort, startMosquitto } from '../helpers/brokers.js';
import { runCli, startCli } from '../helpers/cli.js';
import { sleep, waitFor } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-redact-'));

/** The latest message per topic under a filter, as text, and every message seen (`all`). */
async function record(t: { teardown(fn: () => unknown): void }, broker: TestBroker, filter: string) {
  const c = await mqtt.connectAsync(broker.url, { clientId: `rec-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
  t.teardown(() => c.endAsync(true));
  const got = new Map<string, string>();
  const all: string[] = [];
  c.on('message', (topic, payload) => (got.set(topic, payload.toString()), all.push(payload.toString())));
  await c.subscribeAsync(filter, { qos: 1 });
  return Object.assign(got, { all });
}

t.test('redactUrl drops the whole userinfo, however it is written, and nothing else', async (t) => {
  t.equal(redactUrl('mqtt://user:pass@host:1883'), 'mqtt://host:1883');
  t.equal(redactUrl('wss://alice@broker.example.org/mqtt?x=1'), 'wss://broker.example.org/mqtt?x=1');
  t.equal(redactUrl('mqtts://u:p@ss@host'), 'mqtts://host', 'an unescaped @ in the password: up to the last @');
  t.equal(redactUrl('ws://u:p%40ss@[::1]:8080/mqtt'), 'ws://[::1]:8080/mqtt');
  t.equal(redactUrl('mqtt://host:1883'), 'mqtt://host:1883', 'no login: unchanged');
  t.equal(redactUrl('wss://host/mqtt/a@b'), 'wss://host/mqtt/a@b', 'an @ in the path is not a login');
  t.equal(
    redactUrl('cannot connect to any of 2 brokers: mqtt://a:b@x:1: refused; wss://c:d@y/mqtt: refused'),
    'cannot connect to any of 2 brokers: mqtt://x:1: refused; wss://y/mqtt: refused',
    'URLs inside a message',
  );
  t.equal(redactUrl(null), null);
});

t.test('a password in a broker URL is refused by the config check and by the command line, and never echoed', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['broker: {url: "mqtt://kit:Hunter2pw@127.0.0.1:1883"}\n', /broker\.url: a password in the URL/],
    ['broker: {urls: ["mqtt://127.0.0.1:1883", "wss://kit:Hunter2pw@example.org/mqtt"]}\n', /broker\.urls\[1\]: a password in the URL/],
    ['uplink: {url: "mqtts://kit:Hunter2pw@example.org"}\n', /uplink\.url: a password in the URL.*uplink\.passwordFile/],
  ];
  for (const [yaml, re] of cases) {
    const f = path.join(tmp, `bad-${Math.random().toString(16).slice(2)}.yaml`);
    writeFileSync(f, yaml);
    const r = await runCli(['check-config', f]);
    t.equal(r.code, 1, `refused: ${yaml.trim()}`);
    t.match(r.stderr, re);
    t.notMatch(r.stderr + r.stdout, /Hunter2pw/, 'the password is not repeated');
  }
  const env = await runCli(['check-config', '-'], { env: { TALKBRIDGE_BROKER_URL: 'mqtt://kit:Hunter2pw@127.0.0.1:1883' } });
  t.equal(env.code, 1, 'from the environment too');
  t.match(env.stderr, /broker\.url: a password in the URL/);

  for (const cmd of [['status'], ['listen', '--channel', 'base', '--out', path.join(tmp, 'x.wav')], ['send', '--channel', 'base', path.join(tmp, 'x.wav')]]) {
    const r = await runCli([...cmd, '--broker', 'mqtt://kit:Hunter2pw@127.0.0.1:1']);
    t.equal(r.code, 2, `${cmd[0]} refuses it`);
    t.match(r.stderr, /no password in the URL/);
    t.notMatch(r.stderr, /Hunter2pw/);
  }
  const inv = await runCli(['channel', 'new', 'base', '--no-qr', '--broker', 'wss://kit:Hunter2pw@example.org/mqtt']);
  t.equal(inv.code, 2, 'an invite link never carries a login');
  t.notMatch(inv.stdout + inv.stderr, /Hunter2pw/);

  // A user name alone is accepted (MQTT.js and net/connect take it), but not shown either.
  const ok = path.join(tmp, 'user.yaml');
  writeFileSync(ok, 'broker: {urls: ["mqtt://kituser@127.0.0.1:1883", "wss://kituser@example.org/mqtt"]}\nuplink: {url: "mqtts://kituser@example.org:8883"}\n');
  const p = await runCli(['check-config', '--print', ok]);
  t.equal(p.code, 0, p.stderr);
  t.notMatch(p.stdout, /kituser/, 'check-config --print hides the user name in URLs');
  t.match(p.stdout, /mqtt:\/\/127\.0\.0\.1:1883/);
  t.match(p.stdout, /mqtts:\/\/example\.org:8883/);

  // An error message that quotes the URL (net/connect.ts) loses the login on its way out.
  const port = await freePort();
  const err = await runCli(['status', '--broker', `mqtt://kituser@127.0.0.1:${port}`]);
  t.equal(err.code, 1);
  t.match(err.stderr, new RegExp(`cannot connect to broker mqtt://127\\.0\\.0\\.1:${port}`));
  t.notMatch(err.stderr, /kituser/);
});

t.test('a kit with logins in its broker and uplink URLs shows none of them; the uplink forwards its own status only', async (t) => {
  const local = await startMosquitto();
  const upstream = await startMosquitto();
  t.teardown(() => Promise.all([local.stop(), upstream.stop()]));
  const localUrl = local.url.replace('mqtt://', 'mqtt://kituser@');
  const upUrl = upstream.url.replace('mqtt://', 'mqtt://kituser@');
  const httpPort = await freePort();
  const config = path.join(tmp, 'kit.yaml');
  writeFileSync(
    config,
    [
      'gateway: {id: kit1, name: Kit One}',
      `broker: {urls: ["${localUrl}"], reconnectMs: 200}`,
      `uplink: {url: "${upUrl}", reconnectMs: 200}`,
      'embeddedBroker: {enabled: false}',
      `http: {port: ${httpPort}}`,
      'channels: [{name: base}]',
    ].join('\n'),
  );
  // Another gateway shares the kit's broker: its status is not the kit's to publish upstream.
  const other = await mqtt.connectAsync(local.url, { reconnectPeriod: 0 });
  await other.publishAsync('talkbridge/v1/_gateways/gw-other/status', JSON.stringify({ v: 1, online: true, id: 'gw-other', name: 'Other', radios: [], channels: [] }), { qos: 1, retain: true });
  const onLocal = await record(t, local, 'talkbridge/v1/_gateways/+/status');
  const onUpstream = await record(t, upstream, 'talkbridge/v1/_gateways/+/status');

  const daemon = startCli(['run', '--config', config, '--log-level', 'debug']);
  t.teardown(() => daemon.proc.kill('SIGKILL'));
  await daemon.waitFor(/"event":"ready"/, 30000);
  await daemon.waitFor(/"event":"uplink".*"side":"remote","state":"online"/, 30000);
  // Another gateway's status changes while the uplink is up: still not forwarded.
  await other.publishAsync('talkbridge/v1/_gateways/gw-other/status', JSON.stringify({ v: 1, online: false, id: 'gw-other', name: 'Other', radios: [], channels: [] }), { qos: 1, retain: true });
  await other.endAsync();

  const kitTopic = 'talkbridge/v1/_gateways/kit1/status';
  const upDoc = await waitFor(() => onUpstream.get(kitTopic), 10000, "the kit's status upstream");
  // The first document may predate the uplink's connection; the status is republished every 2 s.
  const localDoc = await waitFor(
    () => {
      const d = onLocal.get(kitTopic);
      return d && (JSON.parse(d) as { uplink?: { connected?: boolean } }).uplink?.connected ? d : undefined;
    },
    10000,
    "the kit's status locally, with the uplink connected",
  );
  const health = await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).text();
  await sleep(1000); // a status publish or two more, and anything the uplink might still forward

  t.match(
    JSON.parse(localDoc),
    { online: true, broker: local.url, channels: [{ channel: 'base', connected: true, broker: local.url }], uplink: { connected: true, broker: upstream.url } },
    'the status names the brokers, without the login',
  );
  t.match(JSON.parse(upDoc), { id: 'kit1', online: true, broker: local.url }, 'the copy upstream too');
  t.match(JSON.parse(health), { status: 'ok', channels: [{ broker: local.url }], uplink: { broker: upstream.url } }, '/healthz too');
  t.same([...onUpstream.keys()], [kitTopic], "upstream holds the kit's status and no other gateway's");
  t.ok(onLocal.has('talkbridge/v1/_gateways/gw-other/status'), "(the other gateway did publish on the kit's broker)");

  daemon.proc.kill('SIGTERM');
  const out = await daemon.result;
  t.match(out.stdout, /joined channel base on mqtt:\/\/127\.0\.0\.1/, 'the logs name the broker');
  for (const [what, text] of [
    ['local status', onLocal.all.join('\n')],
    ['upstream status', onUpstream.all.join('\n')],
    ['/healthz', health],
    ['logs', out.stdout + out.stderr],
  ] as const) {
    t.notMatch(text, /kituser/, `${what}: no login in any URL`);
  }
});

t.test('a config with passwords in its URLs that got past the check (made by hand) still shows none', async (t) => {
  const broker = await startMosquitto(); // allow_anonymous: any login is let in
  const upstream = await startMosquitto();
  t.teardown(() => Promise.all([broker.stop(), upstream.stop()]));
  const httpPort = await freePort();
  const config = ConfigSchema.parse({
    gateway: { id: 'kit2' },
    broker: { url: broker.url, reconnectMs: 200 },
    uplink: { url: upstream.url, reconnectMs: 200 },
    embeddedBroker: { enabled: false },
    http: { port: httpPort },
  });
  // As `run` would receive it from a tampered `check-config --json`.
  config.broker.url = broker.url.replace('mqtt://', 'mqtt://kit2:S3cretPw@');
  config.uplink!.url = upstream.url.replace('mqtt://', 'mqtt://kit2:S3cretPw@');
  let logs = '';
  const log = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => ((logs += c), cb()) }));
  const onBroker = await record(t, broker, 'talkbridge/v1/_gateways/+/status');
  const onUpstream = await record(t, upstream, 'talkbridge/v1/_gateways/+/status');
  const daemon = await startDaemon(config, log);
  t.teardown(() => daemon.stop());
  await waitFor(() => daemon.uplink?.status().connected, 15000, 'uplink connected');
  await waitFor(() => onUpstream.get('talkbridge/v1/_gateways/kit2/status'), 10000, 'status upstream');
  const health = await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).text();
  t.match(JSON.parse(health), { status: 'ok', channels: [{ broker: broker.url }], uplink: { connected: true, broker: upstream.url } });
  await daemon.stop();
  const status = [...onBroker.all, ...onUpstream.all].join('\n');
  t.match(status, new RegExp(`"broker":"${broker.url}"`));
  for (const [what, text] of [
    ['status topic (local and upstream)', status],
    ['/healthz', health],
    ['logs', logs],
  ] as const) {
    t.notMatch(text, /S3cretPw/, `${what}: no password`);
    t.notMatch(text, /kit2:/, `${what}: no login`);
  }
});
