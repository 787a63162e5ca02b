/**
 * The talk channel end to end, as a user runs it: `talkbridge send` a speech WAV, `talkbridge
 * listen` writes what it received, and the speech must come out — against a real Mosquitto and
 * against the embedded aedes broker, at 1, 2 and 3 frames per packet.
 */
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import { JITTER_DEFAULTS } from '../../gateway/shared/channel/jitter.js';
import { type TestBroker, startAedes, startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';
import { envelopeCorrelation } from '../helpers/audio.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const STEREO = path.join(FIXTURES, 'speech-44k1-stereo.wav');

async function roundTrip(t: Test, broker: TestBroker, channel: string, fpp: number, input = SPEECH) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tb-listen-'));
  const out = path.join(dir, 'over.wav');
  const listener = startCli(['listen', '--broker', broker.url, '--channel', channel, '--out', out, '--overs', '1', '--timeout', '40']);
  await listener.waitFor(/listening on channel/);
  const send = await runCli(['send', '--broker', broker.url, '--channel', channel, '--name', `Field ${fpp}`, '--frames-per-packet', String(fpp), input]);
  t.equal(send.code, 0, `send exits 0 (${send.stderr.trim()})`);
  t.match(send.stdout, /sent \d+\.\d+ s in \d+ packets/);
  const r = await listener.result;
  t.equal(r.code, 0, `listen exits 0 after one over (${r.stderr.trim()})`);
  const line = r.stdout.match(new RegExp(`over 1: Field ${fpp} \\(cli\\) \\d+\\.\\d+ s, packets (\\d+) received / (\\d+) lost / (\\d+) late, (\\d+) frames concealed`));
  t.ok(line, `one line for the over: ${r.stdout.trim()}`);
  const [received, lost, late, concealed] = (line ?? []).slice(1).map(Number) as [number, number, number, number];
  t.equal(lost, 0, 'nothing lost on loopback TCP');
  // Late packets are scheduling, not transport: six CLI processes and the broker share the cores
  // here, and the listener's buffer starts at minDelayMs and grows only after a packet has come
  // later than that (by design: it counts and conceals it, never plays it late). One stall costs
  // about its length in audio whatever the packing, so the budget is in milliseconds, not packets
  // (a 100 ms stall is 3 packets at 40 ms, which a 2 % budget refused). It is the buffer's maximum
  // depth: jitter beyond that is what the buffer is documented not to absorb.
  const packetMs = fpp * 20;
  t.ok(late * packetMs <= JITTER_DEFAULTS.maxDelayMs, `at most ${JITTER_DEFAULTS.maxDelayMs} ms of audio late (${late} of ${received + late} packets, ${late * packetMs} ms)`);
  t.ok(concealed * 20 <= late * packetMs + JITTER_DEFAULTS.maxDelayMs, `concealed only for late packets and buffer growth (${concealed} frames)`);
  const ref = await readWav(input);
  const got = await readWav(out);
  t.equal(got.sampleRate, 16000, 'written as 16 kHz mono');
  const durIn = ref.samples.length / ref.sampleRate;
  const durOut = got.samples.length / got.sampleRate;
  // Each frame the buffer grew by is a concealed frame added to the over (late ones replace theirs).
  const grownS = (concealed * 20) / 1000;
  t.ok(durOut - durIn > -0.1 && durOut - durIn < 0.1 + grownS, `duration kept: ${durIn.toFixed(2)} s in, ${durOut.toFixed(2)} s out (${concealed} frames concealed)`);
  const { r: corr, lagMs } = envelopeCorrelation(ref.samples, ref.sampleRate, got.samples, got.sampleRate);
  // An over played whole is held to 0.9. Concealment within the budgets above costs more than its
  // share: 120-200 ms of silence plus five 20 ms stretches scores 0.87 at one alignment, and a run
  // with 3 packets late scored 0.84. 0.8 still fails noise (< 0.3), other speech (< 0.6) and half
  // the over missing (0.51); a truncated over fails the duration check above.
  const bar = concealed === 0 ? 0.9 : 0.8;
  t.ok(corr >= bar, `speech envelope correlation ${corr.toFixed(3)} ≥ ${bar} (lag ${lagMs} ms, ${concealed} frames concealed)`);
}

for (const [name, start] of [
  ['mosquitto', startMosquitto],
  ['aedes', startAedes],
] as const) {
  t.test(`send → listen through ${name}`, async (t) => {
    const broker = await start();
    t.teardown(() => broker.stop());
    // The three packings run side by side on their own channels.
    await Promise.all([1, 2, 3].map((fpp) => t.test(`${fpp} frame(s) per packet`, (t) => roundTrip(t, broker, `${name}-fpp${fpp}`, fpp))));
  });
}

t.test('a 44.1 kHz stereo WAV is mixed down and resampled on the way', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  await roundTrip(t, broker, 'stereo', 2, STEREO);
});
