/** Overs shorter than the jitter buffer's delay: their END arrives before playout starts, and they must still play whole. */
import t from 'tap';
import path from 'node:path';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { readWav } from '../../gateway/src/audio/wav.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import type { OverReport } from '../../gateway/shared/channel/session.js';

t.test('50 back-to-back 80 ms overs sent as fast as possible all play whole', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const open = (name: string, jitter?: { minDelayMs: number }) => openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'short', name, source: 'cli', silenceMs: 1000, jitter });
  const talker = await open('talker');
  // 60 ms of buffer, not the 10 ms minimum: the whole over, END included, is in before playout
  // starts (the case under test) even when this shared machine stalls a process for tens of ms
  // between the two packets, which once made the second one late (CI, session 8).
  const listener = await open('listener', { minDelayMs: 60 });
  t.teardown(async () => {
    await talker.close();
    await listener.close();
  });
  const reports: OverReport[] = [];
  listener.session.on('overEnd', (r) => reports.push(r));
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const sp = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const pcm = { sampleRate: 16000, samples: sp.samples.subarray(16000, 16000 + 1280) };
  for (let i = 0; i < 50; i++) {
    const r = await sendPcm(talker.session, enc, pcm, { framesPerPacket: 2, frameMs: 20, fast: true });
    t.equal(r.status, 'done');
    await new Promise((res) => setTimeout(res, 150));
  }
  await new Promise((res) => setTimeout(res, 500));
  t.equal(reports.length, 50, 'every over was played');
  const bad = reports.filter((r) => !(r.reason === 'done' && r.stats.played === 4 && r.stats.lost === 0));
  t.same(
    bad.map((r) => ({ reason: r.reason, ...r.stats })),
    [],
    'each whole: 4 frames, nothing lost',
  );
});
