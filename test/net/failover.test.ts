/**
 * Broker failover as a team uses it: everyone has the same list of brokers; the first is killed
 * in the middle of an over; the next over goes through the second and is heard. Against real
 * Mosquitto processes, with the real CLI and a real daemon.
 */
import t from 'tap';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { freePort, startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { connect, disconnect } from '../../gateway/src/net/connect.js';
import { brokerOf } from '../../gateway/src/net/failover.js';
import { UserError } from '../../gateway/src/core/errors.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
/** 2.5 s: for the overs before and after a switch, which need only be heard whole. */
const SHORT = path.join(FIXTURES, 'speech-short-16k.wav');

t.test('send/listen with two brokers: the first dies mid-over, the next over goes through the second', async (t) => {
  const a = await startMosquitto();
  const b = await startMosquitto();
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-failover-'));
  // Both spellings of a list: the flag repeated, and a comma list.
  const listener = startCli(['listen', '--broker', a.url, '--broker', b.url, '--channel', 'failover', '--out', dir, '--overs', '0', '--timeout', '120']);
  t.teardown(() => listener.proc.kill('SIGKILL'));
  await listener.waitFor(new RegExp(`listening on channel failover at ${a.url}`));
  const both = `${a.url},${b.url}`;

  const first = await runCli(['send', '--broker', both, '--channel', 'failover', '--name', 'Before', SHORT]);
  t.equal(first.code, 0, `first over sent (${first.stderr.trim()})`);
  await listener.waitFor(/over 1: Before/, 20000);

  // An over in real time; the first broker is killed 1.5 s into it.
  const middleOver = startCli(['send', '--broker', both, '--channel', 'failover', '--name', 'Middle', SPEECH]);
  await new Promise((r) => setTimeout(r, 1500));
  const killedAt = Date.now();
  await a.stop();
  await listener.waitFor(new RegExp(`switched to broker ${b.url.replace(/\./g, '\\.')}`), 30000);
  t.comment(`listener on the second broker ${Date.now() - killedAt} ms after the first was killed`);
  const m = await middleOver.result;
  t.equal(m.code, 0, `the sender of the over in progress is not stopped by the switch (${m.stderr.trim()})`);

  const after = await runCli(['send', '--broker', both, '--channel', 'failover', '--name', 'After', SHORT]);
  t.equal(after.code, 0, `next over sent through the second broker (${after.stderr.trim()})`);
  const line = await listener.waitFor(/over \d+: After \(cli\) [^\n]*/, 20000);
  t.match(line, /packets \d+ received \/ 0 lost/, `heard in full: ${line}`);
  listener.proc.kill('SIGTERM');
  const r = await listener.result;
  t.equal(r.code, 0, `listen stops cleanly (${r.stderr.trim()})`);
  const file = readdirSync(dir).find((f) => f.endsWith('-After.wav'));
  t.ok(file, 'the over after the switch was written');
  const ref = await readWav(SHORT);
  const got = await readWav(path.join(dir, file!));
  const { r: corr } = envelopeCorrelation(ref.samples, ref.sampleRate, got.samples, got.sampleRate);
  t.ok(corr >= 0.9, `speech after the switch: envelope correlation ${corr.toFixed(3)} ≥ 0.9`);
  // Nothing sent while no broker carried it is replayed later as a stale over.
  const overs = r.stdout.split('\n').filter((l) => /^over \d+:/.test(l));
  t.comment(overs.join('\n'));
  // Talking goes on after a switch: the rest of the over that was cut arrives through the second broker.
  const middle = overs.filter((l) => /: Middle /.test(l));
  const middleReceived = middle.reduce((a, l) => a + Number(/packets (\d+) received/.exec(l)?.[1] ?? 0), 0);
  const sentMiddle = Number(/in (\d+) packets/.exec(m.stdout)?.[1]);
  t.equal(middle.length, 1, 'the over in progress stayed one over across the switch');
  t.ok(middleReceived > sentMiddle / 2, `and went on through the second broker: ${middleReceived} of ${sentMiddle} packets heard (the first 1.5 s went through the first)`);
  t.ok(overs.filter((l) => /: After /.test(l)).length === 1, 'the last over arrived once');
  t.ok(overs.filter((l) => /: Before /.test(l)).length === 1, 'the first over was not replayed');
});

t.test('a daemon with broker.urls follows the list; healthz, the status topic and `talkbridge status` name the active broker', async (t) => {
  const a = await startMosquitto();
  const b = await startMosquitto();
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const httpPort = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-failover-d-'));
  const config = path.join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'gateway: {id: kit1, name: Kit One}',
      `broker: {urls: ["${a.url}", "${b.url}"], reconnectMs: 200}`,
      'embeddedBroker: {enabled: false}',
      `http: {port: ${httpPort}}`,
      'channels: [{name: base}]',
    ].join('\n'),
  );
  const daemon = startCli(['run', '--config', config]);
  t.teardown(() => daemon.proc.kill('SIGKILL'));
  await daemon.waitFor(/"event":"ready"/, 30000);
  const health = async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json() as Promise<{ status: string; channels: Array<{ broker: string; connected: boolean }> }>;
  t.match(await health(), { status: 'ok', channels: [{ channel: 'base', connected: true, broker: a.url }] }, 'healthz: on the first broker');
  const st = await runCli(['status', '--broker', a.url, '--gateway', 'kit1']);
  t.match(st.stdout, new RegExp(`kit1 \\(Kit One\\): online .*\\| broker ${a.url}`), `status names the broker: ${st.stdout.trim()}`);

  await a.stop();
  await daemon.waitFor(/"event":"broker".*"switched":true/, 30000);
  // The status connection switches on its own, moments apart from the channel's.
  let h = await health();
  for (let i = 0; i < 100 && h.status !== 'ok'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    h = await health();
  }
  t.match(h, { status: 'ok', channels: [{ connected: true, broker: b.url }] }, 'healthz: on the second broker');
  // `status` takes the same list: the first broker is gone, it reads the second.
  const both = ['status', '--broker', `${a.url},${b.url}`, '--gateway', 'kit1'];
  let st2 = await runCli(both);
  for (let i = 0; i < 20 && !st2.stdout.includes(`broker ${b.url}`); i++) {
    await new Promise((r) => setTimeout(r, 250));
    st2 = await runCli(both);
  }
  t.match(st2.stdout, new RegExp(`kit1 \\(Kit One\\): online .*\\| broker ${b.url}`), `status on the second broker names it: ${st2.stdout.trim()}`);

  // Talking through the daemon's broker list: a listener and a sender on the second broker.
  const wav = path.join(dir, 'over.wav');
  const listener = startCli(['listen', '--broker', `${a.url},${b.url}`, '--channel', 'base', '--out', wav, '--timeout', '60']);
  t.teardown(() => listener.proc.kill('SIGKILL'));
  await listener.waitFor(/listening on channel/, 20000);
  const send = await runCli(['send', '--broker', `${a.url},${b.url}`, '--channel', 'base', '--name', 'Ranger', SPEECH]);
  t.equal(send.code, 0, send.stderr);
  await daemon.waitFor(/"event":"over-end".*"talker":"Ranger"/, 20000);
  t.equal((await listener.result).code, 0, 'heard on the second broker');

  daemon.proc.kill('SIGTERM');
  const r = await daemon.result;
  t.equal(r.code, 0, 'stops cleanly');
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((x) => JSON.parse(x) as Record<string, unknown>);
  const sw = lines.find((x) => x.event === 'broker' && x.switched === true);
  t.match(sw, { url: b.url, from: a.url, module: 'channel' }, 'the switch is logged with both URLs');
});

t.test('connect(): every URL in turn, one clear error naming each when none answers; order kept when several do', async (t) => {
  const p1 = await freePort();
  const p2 = await freePort();
  const err = await connect({ url: [`mqtt://127.0.0.1:${p1}`, `mqtt://127.0.0.1:${p2}`], clientId: 'x', connectTimeoutMs: 2000 }).catch((e: unknown) => e);
  t.type(err, UserError);
  t.match((err as Error).message, new RegExp(`cannot connect to any of 2 brokers: mqtt://127\\.0\\.0\\.1:${p1}: connection refused .*; mqtt://127\\.0\\.0\\.1:${p2}: connection refused`));

  const b = await startMosquitto();
  t.teardown(() => b.stop());
  const retries: string[] = [];
  const c = await connect({ url: [`mqtt://127.0.0.1:${p1}`, b.url], clientId: 'y', onRetry: (_e, _n, ms, next) => retries.push(`${ms} ${next}`) });
  t.equal(brokerOf(c), b.url, 'connected to the second');
  t.same(retries, [`0 ${b.url}`], 'went on to the next broker at once');
  await disconnect(c);

  // Back on the first when the second dies, once the first is up: the list is tried in order.
  const a = await startMosquitto();
  t.teardown(() => a.stop());
  const c2 = await connect({ url: [a.url, b.url], clientId: 'z', reconnectMs: 100 });
  t.equal(brokerOf(c2), a.url);
  await a.stop();
  await new Promise<void>((r) => c2.once('connect', () => r()));
  t.equal(brokerOf(c2), b.url, 'moved to the second');
  await a.restart!();
  t.equal(brokerOf(c2), b.url, 'stays on a broker that works');
  await b.stop();
  await new Promise<void>((r) => c2.once('connect', () => r()));
  t.equal(brokerOf(c2), a.url, 'and back to the first when the second fails');
  await disconnect(c2);
});

t.test('one client hops across protocols: mqtt → ws with a path (aedes) → mqtts with a pinned CA', async (t) => {
  const { readFileSync } = await import('node:fs');
  const http = await import('node:http');
  const { pino } = await import('pino');
  const { startEmbeddedBroker } = await import('../../gateway/src/broker/embedded.js');
  const { giveToMosquitto, makePki } = await import('../security/access-cases.js');
  const mqtt = (await import('mqtt')).default;

  const a = await startMosquitto();
  // The embedded broker's WebSocket answers on /mqtt only: a hop that lost the path would fail.
  const aedes = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }) });
  const server = http.createServer((_q, s) => s.writeHead(404).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  aedes.attachWebSocket(server, '/mqtt');
  const wsUrl = `ws://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}/mqtt`;
  const pki = makePki();
  giveToMosquitto(pki.ca, pki.serverCert, pki.serverKey);
  const tlsPort = await freePort();
  const c = await startMosquitto(`listener ${tlsPort} 127.0.0.1\ncafile ${pki.ca}\ncertfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\n`);
  const tlsUrl = `mqtts://localhost:${tlsPort}`;
  t.teardown(async () => {
    await Promise.all([a.stop(), c.stop(), aedes.close()]);
    server.closeAllConnections();
    server.close();
  });

  // MQTT 5 where the broker speaks it: aedes refuses it, and is asked again in 3.1.1 on that hop.
  const client = await connect({ url: [a.url, wsUrl, tlsUrl], clientId: 'hopper', reconnectMs: 100, tls: { ca: readFileSync(pki.ca) }, mqtt5: true });
  t.teardown(() => disconnect(client));
  const got: string[] = [];
  client.on('message', (_topic, payload) => got.push(payload.toString()));
  await client.subscribeAsync('hop/t', { qos: 1 });
  const say = async (url: string, text: string) => {
    const p = await mqtt.connectAsync(url, { clientId: `say-${text}` });
    // The subscription is renewed moments after the CONNACK: repeat until it is heard.
    for (let i = 0; i < 50 && !got.includes(text); i++) {
      await p.publishAsync('hop/t', text, { qos: 1 });
      await new Promise((r) => setTimeout(r, 100));
    }
    await p.endAsync();
    t.ok(got.includes(text), `heard "${text}" through ${brokerOf(client)}`);
  };
  t.equal(brokerOf(client), a.url);
  t.equal(client.options.protocolVersion, 5, 'Mosquitto: MQTT 5');
  await say(a.url, 'over mqtt');

  const switched = () => new Promise<void>((r) => client.once('connect', () => r()));
  let next = switched();
  await a.stop();
  await next;
  t.equal(brokerOf(client), wsUrl, 'second: WebSocket, path kept');
  t.equal(client.options.protocolVersion, 4, 'aedes refused MQTT 5: the same broker again in 3.1.1');
  await say(`mqtt://127.0.0.1:${aedes.tcp!.port}`, 'over ws');

  next = switched();
  await aedes.close();
  server.closeAllConnections();
  await next;
  t.equal(brokerOf(client), tlsUrl, 'third: TLS, the pinned CA and the host name checked');
  t.equal(client.options.protocolVersion, 5, 'back to MQTT 5 on a broker that speaks it');
  await say(c.url, 'over mqtts');
});

t.test('bad broker lists are one clear line each, with their path', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-failover-bad-'));
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, ['broker: {url: "mqtt://a:1", urls: ["mqtt://b:1", "http://c"]}', 'uplink: {username: kit, urls: []}'].join('\n'));
  const r = await runCli(['check-config', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, /broker\.urls\[1\]: must be an mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URL/);
  t.match(r.stderr, /broker\.urls: give either url or urls, not both/);
  t.match(r.stderr, /uplink\.urls: give at least one URL/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const s = await runCli(['send', '--broker', 'mqtt://127.0.0.1:1,ftp://x', '--channel', 'base', SPEECH]);
  t.equal(s.code, 2, 'a bad URL in a --broker list is a usage error');
  t.match(s.stderr, /^talkbridge: --broker must be an mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URL, got "ftp:\/\/x"\n$/);
  const p1 = await freePort();
  const p2 = await freePort();
  const l = await runCli(['listen', '--broker', `mqtt://127.0.0.1:${p1}`, '--broker', `mqtt://127.0.0.1:${p2}`, '--channel', 'base', '--out', path.join(dir, 'x.wav')]);
  t.equal(l.code, 1);
  t.match(
    l.stderr,
    new RegExp(`^talkbridge: cannot connect to any of 2 brokers: mqtt://127\\.0\\.0\\.1:${p1}: connection refused .*; mqtt://127\\.0\\.0\\.1:${p2}: connection refused .*\\n$`),
    'none answering: one line naming each',
  );
});
