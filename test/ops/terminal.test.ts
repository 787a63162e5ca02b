/**
 * Terminal escape injection: whatever a CLI command prints from the network (a talker's name in
 * `listen` and `send`, a gateway's status document and topic in `status`) reaches the terminal
 * with no C0/C1 control and no bidi override in it: each becomes "?".
 */
import t from 'tap';
import path from 'node:path';
import mqtt from 'mqtt';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';

const SPEECH = path.join(FIXTURES, 'speech-short-16k.wav');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-term-'));
// OSC "set window title" ended by BEL, CSI "clear screen", a C1 CSI (U+009B), a right-to-left override.
const EVIL = '\x1b]0;owned\x07Eve\x1b[2J\u009b31m\u202eevil\u2066';
const SAFE = '?]0;owned?Eve?[2J?31m?evil?';
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

t.test('listen and send print a hostile talker name harmlessly', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const listen = startCli(['listen', '--broker', broker.url, '--channel', 'base', '--out', path.join(tmp, 'x.wav'), '--timeout', '30']);
  t.teardown(() => listen.proc.kill('SIGKILL'));
  await listen.waitFor(/listening on channel/);
  const sender = startCli(['send', '--broker', broker.url, '--channel', 'base', '--name', EVIL, SPEECH]);
  t.teardown(() => sender.proc.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 700)); // Eve's over is under way
  // The channel is busy with Eve's over: a second sender is told who holds it.
  const busy = await runCli(['send', '--broker', broker.url, '--channel', 'base', '--name', 'Bob', SPEECH]);
  t.equal(busy.code, 3, 'busy');
  t.match(busy.stderr, `is busy: ${SAFE} is talking`);
  t.notMatch(busy.stderr, UNSAFE, 'send: no control characters from the network');
  t.equal((await sender.result).code, 0);
  const r = await listen.result;
  t.equal(r.code, 0, 'listen exits 0');
  t.match(r.stdout, `over 1: ${SAFE} (cli) `);
  t.notMatch(r.stdout + r.stderr, UNSAFE, 'listen: no control characters from the network');
});

t.test('status prints hostile documents and topics harmlessly', { timeout: 30000 }, async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  const doc = {
    v: 1,
    online: true,
    id: 'x',
    name: EVIL,
    version: EVIL,
    broker: `mqtt://${EVIL}@h`,
    radios: [{ radio: EVIL, state: EVIL, ptt: true, cos: false, audioOk: true, over: { direction: 'channel-to-radio', channel: EVIL, talker: EVIL }, rx: null, tx: null, counters: {} }],
    channels: [{ channel: EVIL, connected: true, talking: EVIL }],
    uplink: { connected: true, broker: `mqtt://h/${EVIL}`, counters: {} },
  };
  // Mosquitto refuses control characters in topic names, not bidi overrides.
  await c.publishAsync('talkbridge/v1/_gateways/gw\u202eevil\u2069/status', JSON.stringify(doc), { qos: 1, retain: true });
  await c.endAsync();
  const r = await runCli(['status', '--broker', broker.url]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `gw?evil? (${SAFE}): online ${SAFE}`);
  t.match(r.stdout, `transmitting ${SAFE} from ${SAFE}`);
  t.match(r.stdout, `channel ${SAFE}: connected, ${SAFE} talking`);
  t.notMatch(r.stdout + r.stderr, UNSAFE, 'status: no control characters from the network');
  t.equal(r.stdout.trimEnd().split('\n').length, 1, 'one line');
});
