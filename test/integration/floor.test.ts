/**
 * Floor control on a real Mosquitto: two `talkbridge send`s started together — everyone hears
 * exactly one over and the other sender reports busy; and the same arbitration between five
 * in-process talkers.
 */
import t from 'tap';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import type { OverReport } from '../../gateway/shared/channel/session.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');

t.test('two sends started together: every listener hears one over, the other sender is busy', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const listeners = [0, 1, 2].map(() => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-floor-'));
    return { dir, cli: startCli(['listen', '--broker', broker.url, '--channel', 'ops', '--out', dir, '--overs', '0', '--timeout', '9']) };
  });
  await Promise.all(listeners.map((l) => l.cli.waitFor(/listening on channel/)));
  const [a, b] = await Promise.all([
    runCli(['send', '--broker', broker.url, '--channel', 'ops', '--name', 'Alpha', SPEECH]),
    runCli(['send', '--broker', broker.url, '--channel', 'ops', '--name', 'Bravo', SPEECH]),
  ]);
  const codes = [a.code, b.code].sort();
  t.same(codes, [0, 3], `one sender completes, the other exits 3 (busy): ${a.code} ${a.stderr.trim()} / ${b.code} ${b.stderr.trim()}`);
  const loser = a.code === 3 ? a : b;
  const winner = a.code === 3 ? 'Bravo' : 'Alpha';
  t.match(loser.stderr, new RegExp(`channel ops is busy: ${winner} is talking`));
  for (const l of listeners) {
    const r = await l.cli.result;
    const overs = r.stdout.split('\n').filter((x) => x.startsWith('over '));
    t.equal(overs.length, 1, `listener heard exactly one over: ${overs.join(' | ')}`);
    t.match(overs[0], new RegExp(`over 1: ${winner} \\(cli\\) 4\\.\\d+ s`), 'the winner, whole');
    t.equal(readdirSync(l.dir).length, 1, 'one WAV file written');
  }
});

t.test('five talkers keying at the same instant agree on one winner', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const pcm = await readWav(SPEECH);
  const pcm1s = { sampleRate: pcm.sampleRate, samples: pcm.samples.subarray(0, pcm.sampleRate) };
  const talkers = await Promise.all([0, 1, 2, 3, 4].map((i) => openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'sar', name: `T${i}`, source: 'cli', silenceMs: 1000 })));
  const listener = await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'sar', name: 'L', source: 'cli', silenceMs: 1000 });
  t.teardown(async () => {
    for (const c of [...talkers, listener]) await c.close();
  });
  const heard: OverReport[] = [];
  const heardBy = new Map<string, string[]>();
  for (const c of [...talkers, listener]) {
    heardBy.set(c.session.sender, []);
    c.session.on('overEnd', (r) => {
      heardBy.get(c.session.sender)!.push(r.name);
      if (c === listener) heard.push(r);
    });
  }
  await new Promise((r) => setTimeout(r, 200));
  const encoders = await Promise.all(talkers.map(() => createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 })));
  // Same event-loop turn: all five STARTs leave before any is heard back.
  const results = await Promise.all(talkers.map((c, i) => sendPcm(c.session, encoders[i]!, pcm1s, { framesPerPacket: 2, frameMs: 20, fast: false })));
  const done = results.filter((r) => r.status === 'done');
  t.equal(done.length, 1, `exactly one talker kept the floor: ${results.map((r) => r.status).join(', ')}`);
  t.equal(results.filter((r) => r.status === 'busy').length, 4, 'the other four were told busy');
  const winnerName = `T${results.findIndex((r) => r.status === 'done')}`;
  await new Promise((r) => setTimeout(r, 1500));
  t.same(
    heard.map((h) => h.name),
    [winnerName],
    'the listener played only the winner',
  );
  for (const [sender, names] of heardBy) {
    if (sender === listener.session.sender) continue;
    t.notOk(
      names.some((n) => n !== winnerName),
      `${sender} never played a loser's over (${names.join(',')})`,
    );
  }
});
