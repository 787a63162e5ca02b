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
  const line = r.stdout.match(new RegExp(`over 1: Field ${fpp} \\(cli\\) \\d+\\.\\d+ s, packets (\\d+) received / (\\d+) lost / (\\d+) late`));
  t.ok(line, `one line for the over: ${r.stdout.trim()}`);
  const [received, lost, late] = (line ?? []).slice(1).map(Number) as [number, number, number];
  t.equal(lost, 0, 'nothing lost on loopback TCP');
  // A shared, noisy CI machine may deliver a packet or two after its playout deadline while the
  // jitter buffer is still small; it grows, and such packets are counted, never played late.
  t.ok(late <= Math.max(2, received * 0.02), `at most 2% late (${late} of ${received + late})`);
  const ref = await readWav(input);
  const got = await readWav(out);
  t.equal(got.sampleRate, 16000, 'written as 16 kHz mono');
  const durIn = ref.samples.length / ref.sampleRate;
  const durOut = got.samples.length / got.sampleRate;
  t.ok(Math.abs(durOut - durIn) < 0.1, `duration kept: ${durIn.toFixed(2)} s in, ${durOut.toFixed(2)} s out`);
  const { r: corr, lagMs } = envelopeCorrelation(ref.samples, ref.sampleRate, got.samples, got.sampleRate);
  t.ok(corr >= 0.9, `speech envelope correlation ${corr.toFixed(3)} ≥ 0.9 (lag ${lagMs} ms)`);
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
