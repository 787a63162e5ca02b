/**
 * What a rescue group deploys, on a laptop: two gateways on one channel through a real Mosquitto.
 * Gateway A's radio hears speech (file audio, VOX carrier detect); gateway B transmits it (file
 * audio out, CM108 PTT on a FIFO we read). B keys before the audio and unkeys after the hang time.
 */
import t from 'tap';
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import { startMosquitto } from '../helpers/brokers.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { KEY, UNKEY, pttFifo, runGateway, speechInput, tmp, watchGrowth, writeConfig, sleep } from './helpers.js';

t.test('speech into gateway A comes out of gateway B, keyed around it', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const dir = tmp();
  const input = await speechInput(dir);
  const fifo = pttFifo(dir);
  t.teardown(() => fifo.close());
  const out = path.join(dir, 'b-out.wav');
  const b = runGateway(
    writeConfig(dir, {
      id: 'gw-b',
      broker: broker.url,
      radio: `  - name: b
    ptt: { type: cm108, device: ${fifo.path}, watchdogMs: 1000 }   # the watchdog has its own test (safety.test.ts)
    cos: { type: none }
    audio: { sampleRate: 48000, output: { type: file, path: ${out} } }`,
    }),
  );
  t.teardown(() => b.proc.kill('SIGKILL'));
  await b.waitFor(/"event":"ready"/);
  await sleep(200);
  t.same(
    fifo.reports.map((r) => r.hex),
    [UNKEY],
    'B drove its PTT idle at start, before anything else',
  );

  const growth = watchGrowth(out);
  t.teardown(() => growth.stop());
  const a = runGateway(
    writeConfig(dir, {
      id: 'gw-a',
      broker: broker.url,
      radio: `  - name: a
    ptt: { type: none }
    cos: { type: vox, thresholdDb: -35, attackMs: 20, hangMs: 500 }
    audio: { sampleRate: 48000, input: { type: file, path: ${input.file} } }`,
    }),
  );
  t.teardown(() => a.proc.kill('SIGKILL'));
  await a.waitFor(/"event":"ready"/);
  await b.waitFor(/"event":"ptt".*"on":false/, 15000);
  await sleep(300);

  const keyAt = fifo.reports.find((r) => r.hex === KEY)?.at;
  const unkeyAt = fifo.reports.filter((r) => r.hex === UNKEY).at(-1)?.at;
  t.ok(keyAt, 'B keyed');
  t.same(
    fifo.reports.map((r) => r.hex),
    [UNKEY, KEY, UNKEY],
    'exactly one key-up and one release, exact CM108 reports',
  );
  const first = growth.first();
  const last = growth.last();
  t.ok(first && keyAt! <= first, `keyed ${first! - keyAt!} ms before the first audio reached the radio`);
  t.ok(unkeyAt! >= last!, 'unkeyed only after the audio');
  t.ok(unkeyAt! - last! <= 500 + 400, `unkeyed ${unkeyAt! - last!} ms after the audio (hang 500 ms)`);

  for (const g of [a, b]) g.proc.kill('SIGTERM');
  const [ra, rb] = await Promise.all([a.result, b.result]);
  t.equal(ra.code, 0);
  t.equal(rb.code, 0);
  const got = await readWav(out);
  t.equal(got.sampleRate, 48000);
  const { r } = envelopeCorrelation(input.speech, 16000, got.samples, 48000);
  t.ok(r >= 0.9, `speech envelope correlation ${r.toFixed(3)} ≥ 0.9`);

  const ev = b.events();
  const states = ev.filter((e) => e.event === 'state').map((e) => `${e.from}>${e.to}`);
  t.same(states, ['idle>tx', 'tx>hang', 'hang>idle'], 'B: idle → tx → hang → idle');
  t.ok(
    ev.some((e) => e.event === 'ptt' && e.on === true && /over [0-9a-f]{16} from gw-a on link/.test(String(e.reason))),
    'PTT on logged with its reason',
  );
  const evA = a.events();
  t.ok(
    evA.some((e) => e.event === 'cos' && e.open === true),
    'A logged carrier open',
  );
  t.same(
    evA.filter((e) => e.event === 'state').map((e) => `${e.from}>${e.to}`),
    ['idle>rx', 'rx>idle'],
    'A: idle → rx → idle',
  );
});
