/**
 * The daemon on its embedded defaults — what `npm start` runs: in-process broker on TCP and on
 * WebSocket (same HTTP port as the web client), a channel joined, /healthz, and a clean stop.
 */
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { envelopeCorrelation } from '../helpers/audio.js';

t.test('run with no config: embedded broker, WebSocket on the HTTP port, a channel, healthz, clean SIGTERM', async (t) => {
  const mqttPort = await freePort();
  const httpPort = await freePort();
  const env = { TALKBRIDGE_EMBEDDED_BROKER_PORT: String(mqttPort), TALKBRIDGE_HTTP_PORT: String(httpPort) };
  const daemon = startCli(['run'], { env });
  t.teardown(() => daemon.proc.kill('SIGKILL'));
  await daemon.waitFor(/"event":"ready"/);
  t.ok(await daemon.waitFor(/"event":"codec","backend":"native"[^\n]*"msg":"Opus: native libopus"/, 1000), 'it says which Opus it uses');

  const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
  t.equal(health.status, 200);
  t.match(await health.json(), { status: 'ok', channels: [{ channel: 'base', connected: true }] });

  // A listener over WebSocket (as browsers connect) and a sender over TCP, through the daemon's broker.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-daemon-'));
  const wav = path.join(dir, 'ws.wav');
  const listener = startCli(['listen', '--broker', `ws://127.0.0.1:${httpPort}/mqtt`, '--channel', 'base', '--out', wav, '--timeout', '30']);
  await listener.waitFor(/listening on channel/);
  const send = await runCli(['send', '--broker', `mqtt://127.0.0.1:${mqttPort}`, '--channel', 'base', '--name', 'Ranger', path.join(FIXTURES, 'speech-16k.wav')]);
  t.equal(send.code, 0, send.stderr);
  const l = await listener.result;
  t.equal(l.code, 0, l.stderr);
  const ref = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const got = await readWav(wav);
  t.ok(envelopeCorrelation(ref.samples, 16000, got.samples, 16000).r >= 0.9, 'speech arrived over WebSocket');

  await daemon.waitFor(/"event":"over-end".*"talker":"Ranger"/);
  daemon.proc.kill('SIGTERM');
  const r = await daemon.result;
  t.equal(r.code, 0, 'SIGTERM stops cleanly with exit 0');
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((x) => JSON.parse(x));
  t.ok(
    lines.every((x) => typeof x.level === 'number' && typeof x.time === 'string'),
    'every log line is JSON',
  );
  t.ok(
    lines.some((x) => x.event === 'listening' && x.service === 'mqtt' && x.url === `mqtt://127.0.0.1:${mqttPort}`),
    'says where MQTT listens',
  );
  t.ok(
    lines.some((x) => x.event === 'listening' && x.service === 'http' && x.websocket === `ws://127.0.0.1:${httpPort}/mqtt`),
    'says where the web port and WebSocket are',
  );
  t.ok(
    lines.some((x) => x.event === 'over-start' && x.talker === 'Ranger' && x.module === 'channel'),
    'logs the over start',
  );
  t.ok(
    lines.some((x) => x.event === 'stopping'),
    'logs the stop',
  );
});

t.test('a port already taken is one clear line', async (t) => {
  const mqttPort = await freePort();
  const httpPort = await freePort();
  const env = { TALKBRIDGE_EMBEDDED_BROKER_PORT: String(mqttPort), TALKBRIDGE_HTTP_PORT: String(httpPort) };
  const first = startCli(['run'], { env });
  t.teardown(() => first.proc.kill('SIGKILL'));
  await first.waitFor(/"event":"ready"/);
  const second = await runCli(['run'], { env });
  t.equal(second.code, 1);
  t.match(second.stderr, new RegExp(`embedded broker: 127\\.0\\.0\\.1:${mqttPort} is already in use`));
  t.notMatch(second.stderr, /\n\s+at /);
});

t.test('a bad config stops the daemon before it starts, listing every problem', async (t) => {
  const r = await runCli(['run'], { env: { TALKBRIDGE_CODEC_BITRATE: 'lots', TALKBRIDGE_HTTP_PORT: '99999' } });
  t.equal(r.code, 1);
  t.match(r.stderr, /2 problems/);
  t.match(r.stderr, /codec\.bitrate/);
  t.match(r.stderr, /http\.port/);
});

t.test('a daemon started before its broker keeps waiting (no crash from abandoned attempts), then joins', async (t) => {
  const port = await freePort();
  const env = {
    TALKBRIDGE_BROKER_URL: `mqtt://127.0.0.1:${port}`,
    TALKBRIDGE_EMBEDDED_BROKER_ENABLED: 'false',
    TALKBRIDGE_HTTP_ENABLED: 'false',
    TALKBRIDGE_BROKER_CONNECT_TIMEOUT_MS: '600',
    TALKBRIDGE_BROKER_RECONNECT_MS: '200',
  };
  const d = startCli(['run'], { env });
  t.teardown(() => d.proc.kill('SIGKILL'));
  await d.waitFor(/"state":"waiting"/);
  // Several attempts fail and their CONNACK timers (600 ms) run out while we wait.
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(d.proc.exitCode, null, 'still running');
  const { startMosquittoOn } = await import('../helpers/brokers.js');
  const broker = await startMosquittoOn(port);
  t.teardown(() => broker.stop());
  await d.waitFor(/"event":"ready"/, 15000);
  d.proc.kill('SIGTERM');
  const r = await d.result;
  t.equal(r.code, 0);
  t.notMatch(r.stdout, /"event":"crash"/);
});
