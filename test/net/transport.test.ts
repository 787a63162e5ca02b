/**
 * The MQTT transports net/transport.ts builds: plain TCP, and through a SOCKS5 proxy when
 * MQTTJS_SOCKS_PROXY names one (how a gateway reaches a broker over Tor where the broker is
 * blocked). The proxy here is a small SOCKS5 server of the test's own, speaking RFC 1928 to the real
 * client; the broker is a real Mosquitto. TLS and WebSocket are covered by broker-tls.test.ts and
 * failover.test.ts.
 */
import t from 'tap';
import net from 'node:net';
import { connect, disconnect } from '../../gateway/src/net/connect.js';
import path from 'node:path';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli } from '../helpers/cli.js';

/** A minimal SOCKS5 proxy (no authentication, CONNECT only); records the targets it was asked for. */
async function socks5(): Promise<{ port: number; targets: string[]; close(): Promise<void> }> {
  const targets: string[] = [];
  const server = net.createServer((c) => {
    c.once('data', (hello) => {
      if (hello[0] !== 5) return void c.destroy();
      c.write(Buffer.from([5, 0]));
      c.once('data', (req) => {
        let host: string;
        let at: number;
        if (req[3] === 1) [host, at] = [[...req.subarray(4, 8)].join('.'), 8];
        else if (req[3] === 3) [host, at] = [req.subarray(5, 5 + req[4]!).toString(), 5 + req[4]!];
        else return void c.destroy();
        const port = req.readUInt16BE(at);
        targets.push(`${host}:${port}`);
        const up = net.createConnection({ host, port }, () => {
          c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          c.pipe(up).pipe(c);
        });
        up.on('error', () => c.destroy());
        c.on('error', () => up.destroy());
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, targets, close: () => new Promise((r) => server.close(() => r())) };
}

async function roundTrip(url: string) {
  const c = await connect({ url, clientId: `tr-${Math.random().toString(16).slice(2, 8)}` });
  await c.subscribeAsync('tr/x');
  const got = new Promise<string>((r) => c.once('message', (_t, p) => r(p.toString())));
  await c.publishAsync('tr/x', 'hello');
  const text = await got;
  await disconnect(c);
  return text;
}

t.test('mqtt:// straight, and through a SOCKS5 proxy named by MQTTJS_SOCKS_PROXY', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  t.equal(await roundTrip(broker.url), 'hello', 'plain TCP');

  const proxy = await socks5();
  t.teardown(() => proxy.close());
  process.env.MQTTJS_SOCKS_PROXY = `socks5://127.0.0.1:${proxy.port}`;
  t.teardown(() => void delete process.env.MQTTJS_SOCKS_PROXY);
  t.equal(await roundTrip(broker.url), 'hello', 'through the proxy');
  t.same(proxy.targets, [new URL(broker.url).host], 'the proxy carried the connection to the broker');

  // The CLI as users run it (the bundle): `talkbridge send` through the same proxy.
  const r = await runCli(['send', '--broker', broker.url, '--channel', 'tr', path.join(FIXTURES, 'speech-short-16k.wav')], { env: { MQTTJS_SOCKS_PROXY: process.env.MQTTJS_SOCKS_PROXY } });
  t.equal(r.code, 0, `talkbridge send through the proxy: ${r.stderr.trim()}`);
  t.equal(proxy.targets.length, 2, 'its connection went through the proxy too');
});

t.test('credentials written in the URL are used, percent-decoded, unless given apart', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-tr-'));
  execFileSync('mosquitto_passwd', ['-c', '-b', path.join(dir, 'passwd'), 'field@kit', 'p:ss/word']);
  // Mosquitto started as root reads its files as the mosquitto user.
  chmodSync(dir, 0o755);
  chmodSync(path.join(dir, 'passwd'), 0o644);
  const broker = await startMosquitto(`allow_anonymous false\npassword_file ${path.join(dir, 'passwd')}\n`);
  t.teardown(() => broker.stop());
  const u = new URL(broker.url);
  t.equal(await roundTrip(`mqtt://${encodeURIComponent('field@kit')}:${encodeURIComponent('p:ss/word')}@${u.host}`), 'hello', 'user:password@ in the URL');
  await t.rejects(connect({ url: broker.url, clientId: 'anon' }), /not authorized|bad username/, 'without them the broker refuses');
});

t.test('a broker URL nobody speaks is refused with the reason', async (t) => {
  await t.rejects(connect({ url: 'http://127.0.0.1:1883', clientId: 'x' }), /unsupported scheme http:\/\//);
});
