/**
 * TLS to the broker, on a real Mosquitto with certificates made by openssl in the test: send →
 * listen over mqtts and wss with a pinned CA; the wrong CA, no CA and a missing client certificate
 * each fail with one clear line; a client-certificate listener lets a certificate in; a daemon
 * configured with broker.tls joins over mqtts; config mistakes name their key and path;
 * check-config never prints a secret.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type TestBroker, freePort, startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { BrokerSchema } from '../../gateway/src/net/schema.js';
import { brokerConnection } from '../../gateway/src/net/broker-options.js';
import { giveToMosquitto, makePki } from './access-cases.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const pki = makePki();
let broker: TestBroker;
let tlsUrl: string;
let mtlsUrl: string;
let wssUrl: string;

t.before(async () => {
  const [tls, mtls, wss] = [await freePort(), await freePort(), await freePort()];
  giveToMosquitto(pki.ca, pki.serverCert, pki.serverKey);
  const certs = `cafile ${pki.ca}\ncertfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\n`;
  broker = await startMosquitto(`listener ${tls} 127.0.0.1\n${certs}` + `listener ${mtls} 127.0.0.1\n${certs}require_certificate true\n` + `listener ${wss} 127.0.0.1\nprotocol websockets\n${certs}`);
  tlsUrl = `mqtts://127.0.0.1:${tls}`;
  mtlsUrl = `mqtts://localhost:${mtls}`;
  wssUrl = `wss://127.0.0.1:${wss}`;
});
t.teardown(() => broker.stop());

const oneLine = (t: Test, stderr: string) => t.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);

t.test('send → listen over mqtts and wss with the pinned CA', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-tls-'));
  const viaTls = path.join(dir, 'tls.wav');
  const viaWss = path.join(dir, 'wss.wav');
  const l1 = startCli(['listen', '-b', tlsUrl, '--ca', pki.ca, '-c', 'base', '--out', viaTls, '--timeout', '60']);
  const l2 = startCli(['listen', '-b', wssUrl, '--ca', pki.ca, '-c', 'base', '--out', viaWss, '--timeout', '60']);
  await Promise.all([l1.waitFor(/listening on channel base/), l2.waitFor(/listening on channel base/)]);
  const send = await runCli(['send', '-b', tlsUrl, '--ca', pki.ca, '-c', 'base', '--name', 'Pinned', SPEECH]);
  t.equal(send.code, 0, send.stderr);
  const ref = await readWav(SPEECH);
  for (const [l, file, what] of [
    [l1, viaTls, 'mqtts'],
    [l2, viaWss, 'wss'],
  ] as const) {
    const r = await l.result;
    t.equal(r.code, 0, `${what}: ${r.stderr}`);
    t.match(r.stdout, /over 1: Pinned/);
    const got = await readWav(file);
    t.ok(envelopeCorrelation(ref.samples, 16000, got.samples, 16000).r >= 0.9, `the speech arrived over ${what}`);
  }
});

t.test('the wrong CA, or none, fails with one clear line', async (t) => {
  const wrong = await runCli(['send', '-b', tlsUrl, '--ca', pki.wrongCa, '-c', 'base', '--fast', SPEECH]);
  t.equal(wrong.code, 1);
  t.equal(wrong.stderr, `talkbridge: cannot connect to broker ${tlsUrl}: certificate not trusted — wrong CA? (broker.tls.ca, --ca)\n`);
  // Without --ca only the system's CAs are trusted, and our team CA is not one of them.
  const none = await runCli(['send', '-b', tlsUrl, '-c', 'base', '--fast', SPEECH]);
  t.equal(none.code, 1);
  t.match(none.stderr, /certificate not trusted — wrong CA\?/);
  oneLine(t, none.stderr);
  // mqtts:// to a plain listener.
  const plain = await runCli(['send', '-b', broker.url.replace('mqtt:', 'mqtts:'), '--ca', pki.ca, '-c', 'base', '--fast', SPEECH]);
  t.equal(plain.code, 1);
  t.match(plain.stderr, /the connection closed during the TLS handshake — does this port speak TLS/);
  oneLine(t, plain.stderr);
  // --insecure gets through an untrusted certificate (and says nothing clever about it).
  const insecure = await runCli(['send', '-b', tlsUrl, '--insecure', '-c', 'base', '--fast', SPEECH]);
  t.equal(insecure.code, 0, insecure.stderr);
});

t.test('a client-certificate listener: in with the certificate, a clear refusal without', async (t) => {
  const withCert = await runCli(['send', '-b', mtlsUrl, '--ca', pki.ca, '--cert', pki.clientCert, '--cert-key', pki.clientKey, '-c', 'base', '--fast', SPEECH]);
  t.equal(withCert.code, 0, withCert.stderr);
  t.match(withCert.stdout, /^sent /);
  const without = await runCli(['send', '-b', mtlsUrl, '--ca', pki.ca, '-c', 'base', '--fast', SPEECH]);
  t.equal(without.code, 1);
  t.match(without.stderr, /^talkbridge: cannot connect to broker mqtts:\/\/localhost:\d+: the broker refused the TLS handshake — it may require a client certificate/);
  oneLine(t, without.stderr);
  const halfPair = await runCli(['send', '-b', mtlsUrl, '--ca', pki.ca, '--cert', pki.clientCert, '-c', 'base', '--fast', SPEECH]);
  t.equal(halfPair.code, 1);
  t.equal(halfPair.stderr, 'talkbridge: --cert needs --cert-key too: a client certificate goes with its key\n');
  const notPem = await runCli(['send', '-b', tlsUrl, '--ca', SPEECH, '-c', 'base', '--fast', SPEECH]);
  t.equal(notPem.stderr, `talkbridge: --ca: ${SPEECH} is not a PEM CA certificate (no "-----BEGIN …" block)\n`);
});

t.test('a daemon with broker.tls (pinned CA + client certificate) joins over mqtts and hears an over', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-tls-daemon-'));
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(
    config,
    `gateway: { id: gw-tls }\nbroker:\n  url: ${mtlsUrl}\n  tls: { ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey} }\nembeddedBroker: { enabled: false }\nhttp: { enabled: false }\nchannels:\n  - name: base\n`,
  );
  const daemon = startCli(['run', '--config', config]);
  t.teardown(() => daemon.proc.kill('SIGKILL'));
  await daemon.waitFor(/"event":"ready"/, 30000);
  t.match(await daemon.waitFor(/"event":"joined"[^\n]*/), /mqtts:\/\/localhost/);
  const send = await runCli(['send', '-b', tlsUrl, '--ca', pki.ca, '-c', 'base', '--name', 'Over-TLS', '--fast', SPEECH]);
  t.equal(send.code, 0, send.stderr);
  await daemon.waitFor(/"event":"over-end".*"talker":"Over-TLS"/);
  daemon.proc.kill('SIGTERM');
  t.equal((await daemon.result).code, 0);
});

t.test('a daemon with the wrong CA keeps waiting and says why, once per attempt', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-tls-daemon-'));
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, `broker:\n  url: ${tlsUrl}\n  tls: { ca: ${pki.wrongCa} }\nembeddedBroker: { enabled: false }\nhttp: { enabled: false }\n`);
  const daemon = startCli(['run', '--config', config]);
  t.teardown(() => daemon.proc.kill('SIGKILL'));
  t.match(await daemon.waitFor(/"event":"broker","state":"waiting"[^\n]*/, 30000), /certificate not trusted — wrong CA\?/);
});

t.test('config: TLS and password files are read at start, errors name the key and the path', async (t) => {
  const b = (x: object) => BrokerSchema.parse(x);
  t.throws(() => brokerConnection(b({ tls: { ca: '/nonexistent/ca.pem' } }), tlsUrl), { message: 'broker.tls.ca: cannot read CA certificate /nonexistent/ca.pem: no such file' });
  t.throws(() => brokerConnection(b({ tls: { ca: SPEECH } }), tlsUrl), { message: `broker.tls.ca: ${SPEECH} is not a PEM CA certificate (no "-----BEGIN …" block)` });
  t.throws(() => brokerConnection(b({ tls: { cert: pki.clientCert, key: pki.clientCert } }), tlsUrl), { message: /^broker\.tls\.key: .* is not a PEM private key/ });
  t.throws(() => brokerConnection(b({ username: 'alice', passwordFile: '/nonexistent/pw' }), tlsUrl), { message: 'broker.passwordFile: cannot read password file /nonexistent/pw: no such file' });
  const pw = path.join(pki.dir, 'pw');
  writeFileSync(pw, 'from-a-file\n');
  const c = brokerConnection(b({ username: 'alice', passwordFile: pw, tls: { ca: pki.ca } }), tlsUrl);
  t.equal(c.password, 'from-a-file', 'the trailing newline is not part of the password');
  t.ok(c.tls?.ca?.toString().includes('BEGIN CERTIFICATE'));
  t.equal(c.tls?.rejectUnauthorized, true, 'certificates are verified by default');

  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-tls-cfg-'));
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'broker:\n  url: mqtts://x:8883\n  password: p\n  passwordFile: /x\n  tls: { key: /k.pem, rejectUnauthorised: false }\n');
  const r = await runCli(['check-config', bad]);
  t.equal(r.code, 1);
  t.match(r.stderr, /broker\.passwordFile: give either password or passwordFile, not both/);
  t.match(r.stderr, /broker\.tls: Unrecognized key: "rejectUnauthorised"/);
  t.notMatch(r.stderr, /\n\s+at /);
});

t.test('check-config --print never prints a secret', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-tls-cfg-'));
  const file = path.join(dir, 'kit.yaml');
  writeFileSync(
    file,
    'broker:\n  username: pi\n  password: broker-secret-1\n  tls: { ca: /etc/ca.pem }\n' +
      'embeddedBroker:\n  auth:\n    users:\n      alice: { channels: [base], password: embedded-secret-2 }\n      bob: { role: listen, channels: [base], passwordFile: /run/credentials/bob }\n',
  );
  const r = await runCli(['check-config', '--print', file], { env: { TALKBRIDGE_BROKER_PASSWORD: 'env-secret-3' } });
  t.equal(r.code, 0, r.stderr);
  for (const s of ['broker-secret-1', 'embedded-secret-2', 'env-secret-3']) t.notOk(r.stdout.includes(s), `${s} not printed`);
  t.match(r.stdout, /password: \(hidden\)/);
  t.match(r.stdout, /passwordFile: \/run\/credentials\/bob/, 'file paths are shown: they are not secrets');
});
