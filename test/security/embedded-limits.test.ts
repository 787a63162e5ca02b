/**
 * The embedded broker's bounds (broker/limits.ts), on the real broker with real MQTT.js clients:
 * oversized publishes and packets, retained messages per channel and in all, the gateway's own
 * client ids, and failed logins per address and from everywhere; and the web client's list of who
 * is online through a flood of made-up presences.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import http from 'node:http';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { startEmbeddedBroker, type EmbeddedOptions } from '../../gateway/src/broker/embedded.js';
import { embeddedTeam, internalLogin } from '../../gateway/src/broker/auth.js';
import { LIMITS, LoginThrottle, RetainedIndex, addressKey, ownClientIds } from '../../gateway/src/broker/limits.js';
import { MAX_PACKET_BYTES } from '../../gateway/shared/channel/packet.js';
import { startDaemon } from '../../gateway/src/app/daemon.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { MAX_SHOWN_ONLINE, onlineShown } from '../../gateway/web/src/view.js';
import { ConfigSchema } from '../../gateway/src/config/schema.js';
import { freePort } from '../helpers/brokers.js';
import { PASSWORDS, PREFIX, writeTeam } from './access-cases.js';

const team = writeTeam();
const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function broker(t: Test, o: Partial<EmbeddedOptions> & { secured?: boolean } = {}) {
  const auth = o.secured ? { team: await embeddedTeam({ teamFile: team.file }, PREFIX), internal: internalLogin('pi-north') } : null;
  const b = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, log: silent, auth, ...o });
  t.teardown(() => b.close());
  return { b, port: b.tcp!.port, url: `mqtt://127.0.0.1:${b.tcp!.port}` };
}

/**
 * One connection attempt, from a chosen loopback address (all of 127/8 is this machine): resolves
 * with the CONNACK's return code (0 = in) and the client, which the test's teardown ends.
 */
async function attempt(t: Test, port: number, o: IClientOptions = {}, from = '127.0.0.1'): Promise<{ code: number; client: MqttClient }> {
  const client = new mqtt.MqttClient(() => net.connect({ host: '127.0.0.1', port, localAddress: from }), { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...o });
  t.teardown(() => client.endAsync(true));
  const code = await new Promise<number>((resolve) => {
    client.once('connect', () => resolve(0));
    client.once('error', (err) => resolve(Number((err as { code?: number }).code ?? -1)));
    client.once('close', () => resolve(-1));
  });
  return { code, client };
}

async function connected(t: Test, url: string, o: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...o });
  t.teardown(() => c.endAsync(true));
  return c;
}

/** What a fresh subscriber to `filter` receives (the retained messages) once nothing more came for `quietMs`. */
async function collect(t: Test, url: string, filter: string, quietMs: number, o: IClientOptions = {}): Promise<Map<string, Buffer>> {
  const c = await connected(t, url, o);
  const got = new Map<string, Buffer>();
  let last = Date.now();
  c.on('message', (topic, payload) => {
    got.set(topic, payload);
    last = Date.now();
  });
  await c.subscribeAsync(filter, { qos: 0 });
  // A loaded machine may deliver thousands of retained messages slowly: wait for quiet, not a fixed time.
  const until = Date.now() + 20_000;
  while (Date.now() - last < quietMs && Date.now() < until) await sleep(50);
  return got;
}

const P = PREFIX;
/** aedes keeps its connected clients by id; its typings do not say so. */
const clientIds = (aedes: object) => Object.keys((aedes as { clients: Record<string, unknown> }).clients);

t.test('oversized publishes on talkbridge topics are dropped, without costing the connection', async (t) => {
  const { b, url } = await broker(t, { secured: true });
  const bob = await connected(t, url, { username: 'bob', password: PASSWORDS.bob });
  const alice = await connected(t, url, { username: 'alice', password: PASSWORDS.alice });
  let closed = 0;
  bob.on('close', () => closed++);
  alice.on('close', () => closed++);
  const watch = await connected(t, url, { username: 'watch', password: PASSWORDS.watch });
  const live = new Map<string, number>();
  watch.on('message', (topic, p) => live.set(topic, p.length));
  await watch.subscribeAsync(`${P}/base/+/+`, { qos: 1 });

  // A listen-only member may publish its presence, retained: not a 16 KiB one.
  await bob.publishAsync(`${P}/base/presence/bob`, Buffer.alloc(16 * 1024, 0x20), { qos: 1, retain: true });
  await alice.publishAsync(`${P}/base/audio/alice`, Buffer.alloc(MAX_PACKET_BYTES + 1, 1), { qos: 1 });
  await alice.publishAsync(`${P}/base/control/alice`, Buffer.alloc(LIMITS.payloadBytes.control + 1, 0x20), { qos: 1 });
  // At the bounds, everything goes through.
  await alice.publishAsync(`${P}/base/audio/alice`, Buffer.alloc(MAX_PACKET_BYTES, 2), { qos: 1 });
  await alice.publishAsync(`${P}/base/presence/alice`, Buffer.alloc(LIMITS.payloadBytes.presence, 0x20), { qos: 1, retain: true });
  while (!live.has(`${P}/base/presence/alice`)) await sleep(20);
  t.same(
    [...live.entries()].sort(),
    [
      [`${P}/base/audio/alice`, MAX_PACKET_BYTES],
      [`${P}/base/presence/alice`, LIMITS.payloadBytes.presence],
    ],
    'only the publishes within their bounds arrived',
  );
  const retained = await collect(t, url, `${P}/base/+/+`, 300, { username: 'watch', password: PASSWORDS.watch });
  t.same([...retained.keys()], [`${P}/base/presence/alice`], 'a newcomer gets no oversized retained presence');
  t.equal(closed, 0, 'nobody was disconnected');
  t.equal(b.limits.publishesTooLarge, 3, 'counted');
});

t.test('a packet announcing more than the bound closes the connection before its body is read', async (t) => {
  const { b, port, url } = await broker(t);
  // 64 MiB announced (a retained presence), body never sent: today's aedes waits for all of it.
  const sock = net.connect(port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  const closedAt = new Promise<void>((r) => sock.once('close', () => r()));
  sock.on('error', () => {});
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const connect = Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, 0]);
  const len = 64 * 1024 * 1024;
  const varint: number[] = [];
  for (let x = len; ; ) {
    const d = x % 128;
    x = Math.floor(x / 128);
    varint.push(x > 0 ? d | 0x80 : d);
    if (x === 0) break;
  }
  sock.write(Buffer.concat([connect, Buffer.from([0x31, ...varint]), Buffer.from([0, 5]), Buffer.from('a/b/c'), Buffer.alloc(1000)]));
  const closed = await Promise.race([closedAt.then(() => true), sleep(3000).then(() => false)]);
  t.ok(closed, 'the broker closed the connection on the announcement');
  t.equal(b.limits.packetsTooLarge, 1, 'counted');

  // A real client publishing 1 MB: its connection closes and nobody receives it.
  const sub = await connected(t, url);
  let got = 0;
  sub.on('message', () => got++);
  await sub.subscribeAsync('#');
  const big = await connected(t, url);
  const gone = new Promise<void>((r) => big.once('close', () => r()));
  big.publish(`${P}/base/presence/x`, Buffer.alloc(1024 * 1024), { qos: 0, retain: true });
  await gone;
  await sub.publishAsync(`${P}/base/presence/y`, 'after', { qos: 1 });
  while (got < 1) await sleep(20);
  await sleep(100);
  t.equal(got, 1, 'only the message after it arrived');
  t.equal(b.limits.packetsTooLarge, 2);
});

t.test('over WebSocket, the same packet bound holds, and ws no longer buffers 100 MiB messages', async (t) => {
  const { b } = await broker(t);
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  b.attachWebSocket(server, '/mqtt');
  const ws = `ws://127.0.0.1:${(server.address() as net.AddressInfo).port}/mqtt`;
  const c = await connected(t, ws);
  const gone = new Promise<void>((r) => c.once('close', () => r()));
  c.publish(`${P}/base/presence/x`, Buffer.alloc(LIMITS.packetBytes * 3), { qos: 0, retain: true });
  const closed = await Promise.race([gone.then(() => true), sleep(3000).then(() => false)]);
  t.ok(closed, 'closed');
  const ok = await connected(t, ws);
  await ok.publishAsync(`${P}/base/presence/y`, Buffer.alloc(LIMITS.payloadBytes.presence), { qos: 1, retain: true });
  t.ok(ok.connected, 'a presence within bounds over WebSocket is fine');
});

t.test('retained messages: at most retainedPerChannel per channel and retainedTotal in all', async (t) => {
  const { b, url } = await broker(t);
  const c = await connected(t, url);
  // Made-up presences, as anyone can publish on an open broker.
  const publishAll = async (channel: string, n: number) => {
    for (let i = 0; i < n; i++) c.publish(`${P}/${channel}/presence/u${i}`, '{"v":1}', { qos: 0, retain: true });
    await c.publishAsync(`${P}/${channel}/control/flush`, 'x', { qos: 1 });
  };
  await publishAll('base', LIMITS.retainedPerChannel + 100);
  let held = await collect(t, url, `${P}/base/presence/+`, 500);
  t.equal(held.size, LIMITS.retainedPerChannel, 'a channel holds retainedPerChannel');
  t.equal(b.limits.retainedRefused, 100, 'the rest were counted');
  // Clearing one (a Last Will, a leave) makes room for a newcomer.
  await c.publishAsync(`${P}/base/presence/u0`, '', { qos: 1, retain: true });
  await c.publishAsync(`${P}/base/presence/newcomer`, '{"v":1}', { qos: 1, retain: true });
  held = await collect(t, url, `${P}/base/presence/+`, 500);
  t.ok(held.has(`${P}/base/presence/newcomer`) && !held.has(`${P}/base/presence/u0`), 'a cleared slot is reused');
  t.equal(held.size, LIMITS.retainedPerChannel);

  for (const ch of ['c1', 'c2', 'c3', 'c4']) await publishAll(ch, LIMITS.retainedPerChannel);
  held = await collect(t, url, `${P}/+/presence/+`, 500);
  t.equal(held.size, LIMITS.retainedTotal, 'the broker holds retainedTotal in all');
  t.equal(b.limits.retainedRefused, 100 + LIMITS.retainedPerChannel * 5 - LIMITS.retainedTotal, 'counted');
});

t.test('retained bytes in all are bounded too', async (t) => {
  const { b, url } = await broker(t, { limits: { retainedBytes: 64 * 1024 } });
  const c = await connected(t, url);
  for (let i = 0; i < 40; i++) await c.publishAsync(`${P}/base/presence/u${i}`, Buffer.alloc(4000, 0x20), { qos: 1, retain: true });
  const held = await collect(t, url, `${P}/base/presence/+`, 300);
  t.equal(held.size, 16, '16 × 4,000 bytes fit in 64 KiB, the 17th does not');
  t.equal(b.limits.retainedRefused, 24);
});

const OWNER = { id: 'pi-north', channels: ['base', 'ops'] };

t.test("the gateway's client ids are refused to everyone but its own login (open broker)", async (t) => {
  const { b, port } = await broker(t, { owner: OWNER });
  const own = await attempt(t, port, { clientId: 'tb-pi-north:status', username: b.internal.username, password: b.internal.password });
  t.equal(own.code, 0, "the gateway's own login gets its id");
  let kicked = 0;
  own.client.on('close', () => kicked++);
  for (const id of ['tb-pi-north:status', 'tb-pi-north-base', 'tb-pi-north-ops', 'tb-pi-north:uplink-local', 'tb-pi-north:anything']) {
    const r = await attempt(t, port, { clientId: id });
    t.equal(r.code, 2, `${id}: CONNACK 2, identifier rejected`);
    const guess = await attempt(t, port, { clientId: id, username: 'pi-north', password: 'a guess' });
    t.equal(guess.code, 2, `${id}: also with the gateway's name as a username`);
  }
  await sleep(100);
  t.equal(kicked, 0, "the gateway's connection was never taken over");
  t.equal(b.limits.clientIdsRefused, 10);
  // A web user named like the gateway: tb-<sender>, the sender being name + random.
  t.equal((await attempt(t, port, { clientId: 'tb-pi-north-1a2b3c4d' })).code, 0, 'a look-alike id is not reserved');
  t.equal((await attempt(t, port, { clientId: 'tb-pi-north-1a2b3c4d-base' })).code, 0);
});

t.test("with auth: a team login is refused the gateway's ids, unless it is the gateway's", async (t) => {
  const { b, port } = await broker(t, { secured: true, owner: OWNER });
  t.equal((await attempt(t, port, { clientId: 'tb-pi-north-base', username: 'alice', password: PASSWORDS.alice })).code, 2, 'alice is refused');
  t.equal((await attempt(t, port, { clientId: 'tb-pi-north-base', username: 'pi-north', password: 'wrong' })).code, 4, "the gateway's team login with a wrong password: bad password");
  t.equal((await attempt(t, port, { clientId: 'tb-pi-north-base', username: 'pi-north', password: PASSWORDS['pi-north'] })).code, 0, "the gateway's team login (broker.url pointing here) may");
  t.equal((await attempt(t, port, { clientId: 'tb-pi-north:status', username: b.internal.username, password: b.internal.password })).code, 0, 'the internal login may');
  t.equal((await attempt(t, port, { clientId: 'tb-1a2b3c4d-alice-base', username: 'alice', password: PASSWORDS.alice })).code, 0, "alice's own ids are hers");
});

t.test('a real daemon: every client id it uses on its broker is refused to outsiders, and it stays connected', async (t) => {
  const port = await freePort();
  const config = ConfigSchema.parse({
    embeddedBroker: { port },
    http: { enabled: false },
    gateway: { id: 'gw-limits', name: 'Limits' },
    channels: [{ name: 'base' }, { name: 'ops' }],
    log: { level: 'silent' },
  });
  const daemon = await startDaemon(config, silent);
  t.teardown(() => daemon.stop());
  const ids = clientIds(daemon.broker!.aedes);
  t.same(ids.sort(), ['tb-gw-limits-base', 'tb-gw-limits-ops', 'tb-gw-limits:status'], 'the ids the daemon uses');
  let offline = 0;
  for (const c of daemon.channels) c.client.on('offline', () => offline++);
  for (const id of ids) t.equal((await attempt(t, port, { clientId: id })).code, 2, `${id} refused to an outsider`);
  await sleep(200);
  t.equal(offline, 0, 'no channel of the daemon went offline');
  t.ok(
    daemon.channels.every((c) => c.client.connected),
    'all connected',
  );
  t.same(clientIds(daemon.broker!.aedes).sort(), ids, 'the daemon still holds its ids');
});

t.test('failed logins: a few typos cost nothing, then the address waits, and its answers stop depending on the password', async (t) => {
  const { b, port } = await broker(t, { secured: true });
  const start = Date.now();
  for (let i = 0; i < 3; i++) t.equal((await attempt(t, port, { username: 'alice', password: `typo-${i}` })).code, 4, 'a typo: bad password');
  t.equal((await attempt(t, port, { username: 'alice', password: PASSWORDS.alice })).code, 0, 'in after three typos');
  t.ok(Date.now() - start < 2000, `quickly (${Date.now() - start} ms)`);

  // A guesser from one address, as fast as it can: only the free failures are ever checked.
  const codes = new Map<number, number>();
  const until = Date.now() + 500;
  while (Date.now() < until) {
    const { code, client } = await attempt(t, port, { username: 'alice', password: `guess-${codes.size}-${Math.random()}` });
    client.end(true);
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  const checked = codes.get(4) ?? 0;
  t.ok(checked <= LIMITS.login.freeFailures, `passwords checked in half a second: ${checked} (free failures left: ${LIMITS.login.freeFailures - 3}), throttled: ${codes.get(3)}`);
  t.ok((codes.get(3) ?? 0) > 10, 'the rest were refused unchecked (CONNACK 3, server unavailable)');
  t.equal((await attempt(t, port, { username: 'alice', password: PASSWORDS.alice })).code, 3, 'while the address waits, even the right password is refused');
  t.equal(b.limits.loginsThrottled, (codes.get(3) ?? 0) + 1, 'counted');
  // The waits double from backoffMs: the right password gets in once they pass.
  const deadline = Date.now() + LIMITS.login.backoffMs * 2 ** 3 + 2000;
  let code = -1;
  while (Date.now() < deadline && (code = (await attempt(t, port, { username: 'alice', password: PASSWORDS.alice })).code) !== 0) await sleep(250);
  t.equal(code, 0, 'in after the wait');
  // Another address was never affected.
  t.equal((await attempt(t, port, { username: 'bob', password: PASSWORDS.bob }, '127.0.0.2')).code, 0, 'another address gets in at once');
});

t.test('failed logins from many addresses are bounded in all; addresses that logged in before still get in', async (t) => {
  const { b, port } = await broker(t, { secured: true });
  t.equal((await attempt(t, port, { username: 'bob', password: PASSWORDS.bob }, '127.0.1.1')).code, 0, 'bob logs in once');
  const codes = new Map<number, number>();
  const start = Date.now();
  // 12 addresses × their free failures: twice the global burst.
  for (let a = 0; a < 12; a++) {
    for (let i = 0; i < LIMITS.login.freeFailures; i++) {
      const { code, client } = await attempt(t, port, { username: 'alice', password: `guess-${a}-${i}` }, `127.0.2.${a + 1}`);
      client.end(true);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  }
  const seconds = (Date.now() - start) / 1000;
  const allowed = LIMITS.login.globalBurst + seconds * LIMITS.login.globalPerSecond + 1;
  t.ok((codes.get(4) ?? 0) <= allowed, `checked ${codes.get(4)} in ${seconds.toFixed(1)} s (burst ${LIMITS.login.globalBurst} + ${LIMITS.login.globalPerSecond}/s)`);
  t.ok((codes.get(3) ?? 0) >= 60 - allowed, `throttled ${codes.get(3)}`);
  t.equal((await attempt(t, port, { username: 'bob', password: PASSWORDS.bob }, '127.0.1.1')).code, 0, 'a known address is not held up by the global bound');
  t.equal((await attempt(t, port, { username: b.internal.username, password: b.internal.password }, '127.0.2.1')).code, 0, "the gateway's own login is never throttled");
});

t.test('the bounds keep their own memory bounded', async (t) => {
  let now = 0;
  const th = new LoginThrottle({ ...LIMITS.login, globalPerSecond: 1e9 }, () => now);
  for (let i = 0; i < 100_000; i++) {
    const k = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    th.failed(k);
    th.succeeded(`s${i}`);
    now += 1;
  }
  t.same(th.tracked, { failing: LIMITS.login.trackedAddresses, known: LIMITS.login.knownAddresses }, 'both maps stay at their bounds');
  now += LIMITS.login.forgetMs + 1;
  t.equal(th.check('10.1.134.159'), null, 'an address is forgiven after forgetMs');

  const idx = new RetainedIndex(LIMITS);
  for (let i = 0; i < 100_000; i++) idx.retain(`p/c${i}/presence/u`, `p/c${i}`, 10);
  t.equal(idx.size, LIMITS.retainedTotal);

  t.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64', 'IPv6 counts per /64');
  t.equal(addressKey('2001:db8:1:2:ffff:1:2:3'), '2001:db8:1:2::/64');
  t.equal(addressKey('::1'), '0:0:0:0::/64');
  t.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7', 'IPv4-mapped is IPv4');
  t.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');

  const own = ownClientIds('x'.repeat(64), ['base']);
  t.ok(own(`tb-${'x'.repeat(61)}`), 'ids cut at 64 characters, as the daemon cuts them');
});

t.test("the web client's online list stays bounded through a flood of made-up presences", async (t) => {
  const { url } = await broker(t);
  const me = await openChannel({ url, prefix: P, channel: 'base', name: 'Me', source: 'web', silenceMs: 1000 });
  t.teardown(() => me.close());
  const flood = await connected(t, url);
  const n = MAX_SHOWN_ONLINE + 150;
  for (let i = 0; i < n; i++) flood.publish(`${P}/base/presence/fake-${i}`, JSON.stringify({ v: 1, name: `Fake ${i}`, source: 'web', since: Date.now(), software: 'x' }), { qos: 0, retain: true });
  await flood.publishAsync(`${P}/base/control/flush`, 'x', { qos: 1 });
  const online = me.session.online;
  for (let i = 0; i < 100 && !(online.has(me.session.sender) && online.size >= MAX_SHOWN_ONLINE); i++) await sleep(50);
  const { shown, total } = onlineShown(online, me.session.sender);
  t.ok(total >= MAX_SHOWN_ONLINE, `the session knows ${total}`);
  t.equal(shown.length, Math.min(total, MAX_SHOWN_ONLINE), `the page shows at most ${MAX_SHOWN_ONLINE}`);
  t.ok(
    shown.some(([s]) => s === me.session.sender),
    'ourselves included',
  );
  const others = [...online.keys()].filter((s) => s !== me.session.sender);
  t.same(new Set(shown.map(([s]) => s).filter((s) => s !== me.session.sender)), new Set(others.slice(-(MAX_SHOWN_ONLINE - 1))), 'the most recent arrivals; the oldest dropped');

  // Ourselves first in, the list full of later arrivals: still shown.
  const m = new Map<string, { name: string }>([['me', { name: 'Me' }]]);
  for (let i = 0; i < 1000; i++) m.set(`s${i}`, { name: `S${i}` });
  const v = onlineShown(m, 'me');
  t.equal(v.shown.length, MAX_SHOWN_ONLINE);
  t.equal(v.total, 1001);
  t.ok(v.shown.some(([s]) => s === 'me') && v.shown.some(([s]) => s === 's999') && !v.shown.some(([s]) => s === 's0'));
});
