/** One talker, fifty listeners on a real Mosquitto: every one of them receives the whole over. */
import t from 'tap';
import path from 'node:path';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli } from '../helpers/cli.js';
import { openChannel, type OpenChannel } from '../../gateway/src/talk/open.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import type { OverReport } from '../../gateway/shared/channel/session.js';
import { envelopeCorrelation } from '../helpers/audio.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');

t.test('50 listeners all receive the over intact', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const listeners: OpenChannel[] = [];
  for (let i = 0; i < 50; i++) listeners.push(await openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'crowd', name: `L${i}`, source: 'web', silenceMs: 1000 }));
  t.teardown(async () => {
    await Promise.all(listeners.map((l) => l.close()));
  });
  const got = listeners.map(() => ({ pcm: [] as Int16Array[], report: null as OverReport | null }));
  listeners.forEach((l, i) => {
    l.session.on('audio', (f) => got[i]!.pcm.push(f.pcm));
    l.session.on('overEnd', (r) => (got[i]!.report = r));
  });
  const seen = Date.now() + 3000;
  while (listeners[0]!.session.online.size < 50 && Date.now() < seen) await new Promise((r) => setTimeout(r, 20));
  t.equal(listeners[0]!.session.online.size, 50, 'presence shows all 50 listeners');

  const send = await runCli(['send', '--broker', broker.url, '--channel', 'crowd', '--name', 'Dispatcher', SPEECH]);
  t.equal(send.code, 0, send.stderr);
  const packets = Number(send.stdout.match(/in (\d+) packets/)![1]);
  const until = Date.now() + 5000;
  while (got.some((g) => !g.report) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));

  const ref = await readWav(SPEECH);
  let intact = 0;
  for (const [i, g] of got.entries()) {
    const r = g.report;
    if (!r) {
      t.fail(`listener ${i} never finished the over`);
      continue;
    }
    const samples = new Int16Array(g.pcm.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of g.pcm) samples.set(p, o), (o += p.length);
    const { r: corr } = envelopeCorrelation(ref.samples, ref.sampleRate, samples, 16000);
    const whole = r.name === 'Dispatcher' && r.stats.lost === 0 && r.stats.received + r.stats.late === packets && corr >= 0.9;
    if (whole) intact++;
    else t.fail(`listener ${i}: ${JSON.stringify(r.stats)} corr ${corr.toFixed(3)}`);
  }
  t.equal(intact, 50, `all 50 listeners got all ${packets} packets and the speech (intact: ${intact})`);
});
