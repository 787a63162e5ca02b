/**
 * A receiver whose event loop stalls (a GC pause, a busy Pi) past a frame's due time must not
 * conceal frames whose packet already sits unread in its socket: Node runs overdue timers before
 * it reads sockets, so playout has to let pending input in first. Real Mosquitto, real Opus.
 */
import t from 'tap';
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import type { OverReport } from '../../gateway/shared/channel/session.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { openChannel } from '../../gateway/src/talk/open.js';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';

t.test('a stalled receiver reads the packet that came during the stall before concealing', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const open = (name: string) => openChannel({ url: broker.url, prefix: 'talkbridge/v1', channel: 'stall', name, sender: name, source: 'cli', silenceMs: 1000 });
  const talker = await open('talker');
  const listener = await open('listener');
  t.teardown(async () => {
    await talker.close();
    await listener.close();
  });
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const sp = await readWav(path.join(FIXTURES, 'speech-16k.wav'));
  const frame = (i: number) => enc.encode(sp.samples.slice(16000 + i * 320, 16000 + (i + 1) * 320));
  const ended = new Promise<OverReport>((r) => listener.session.once('overEnd', r));
  const first = new Promise<void>((r) => listener.client.on('message', (topic: string) => topic.includes('/audio/') && r()));

  const over = talker.session.talk({ sampleRate: 16000, frameMs: 20, framesPerPacket: 2 });
  if ('busy' in over) throw new Error('busy');
  over.send([frame(0), frame(1)]);
  await first;
  // The second packet leaves now (MQTT.js writes on the next tick) and reaches the listener's
  // socket while the whole process is stalled past the first frames' due times.
  over.send([frame(2), frame(3)], true);
  await new Promise((r) => setImmediate(r));
  const until = performance.now() + 150;
  while (performance.now() < until);

  const r = await ended;
  t.match(r.stats, { played: 4, late: 0, lost: 0 }, `played whole (${JSON.stringify(r.stats)})`);
});
