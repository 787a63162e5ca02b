/**
 * MQTT 5 "no local": a channel on a broker that speaks MQTT 5 is not sent its own packets back
 * (half of what a talking gateway used to receive); a 3.1.1-only broker (the embedded aedes)
 * refuses MQTT 5 and is asked again in 3.1.1, where our own echo still comes back and is dropped.
 * Real Mosquitto, real aedes, real Opus.
 */
import t from 'tap';
import path from 'node:path';
import { pino } from 'pino';
import { readWav } from '../../gateway/src/audio/wav.js';
import { startEmbeddedBroker } from '../../gateway/src/broker/embedded.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { type OpenChannel, openChannel } from '../../gateway/src/talk/open.js';
import { sendPcm } from '../../gateway/src/talk/send.js';
import { startMosquitto } from '../helpers/brokers.js';
import { FIXTURES } from '../helpers/cli.js';

const prefix = 'talkbridge/v1';

/** A talks one short over to B; counts what each connection received of A's audio. */
async function over(url: string, mqtt5?: boolean) {
  const open = (name: string) => openChannel({ url, prefix, channel: 'nl', name, sender: name, source: 'cli', silenceMs: 1000, ...(mqtt5 === undefined ? {} : { connection: { mqtt5 } }) });
  const a = await open('talker-a');
  const b = await open('hearer-b');
  const audioOf = (ch: OpenChannel) => {
    let n = 0;
    ch.client.on('message', (topic: string) => void (topic === `${prefix}/nl/audio/talker-a` && n++));
    return () => n;
  };
  const aGot = audioOf(a);
  const bGot = audioOf(b);
  let aPlayed = 0;
  a.session.on('overStart', () => aPlayed++);
  const heard = new Promise<void>((r) => b.session.once('overEnd', () => r()));
  const sp = await readWav(path.join(FIXTURES, 'speech-short-16k.wav'));
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 5 });
  const sent = await sendPcm(a.session, enc, { sampleRate: 16000, samples: sp.samples.subarray(0, 16000) }, { framesPerPacket: 2, frameMs: 20, fast: false });
  await heard;
  await new Promise((r) => setTimeout(r, 200));
  const r = { version: a.client.options.protocolVersion, packets: sent.packets, a: aGot(), b: bGot(), aPlayed, selfOnline: a.session.online.has('talker-a') };
  await a.close();
  await b.close();
  return r;
}

t.test('Mosquitto: MQTT 5, and the talker is not sent its own audio back', async (t) => {
  const m = await startMosquitto();
  t.teardown(() => m.stop());
  const r = await over(m.url);
  t.equal(r.version, 5);
  t.equal(r.packets, 25, 'one second at 2 frames per packet');
  t.equal(r.b, r.packets, 'the listener got every packet');
  t.equal(r.a, 0, 'the talker got none of its own');
  t.equal(r.aPlayed, 0);
  t.ok(r.selfOnline, 'its own presence still comes back (subscribed apart, without "no local")');
});

t.test('broker.mqtt5: false keeps a channel on 3.1.1 (its echo comes back and is dropped)', async (t) => {
  const m = await startMosquitto();
  t.teardown(() => m.stop());
  const r = await over(m.url, false);
  t.equal(r.version, 4);
  t.equal(r.b, r.packets);
  t.equal(r.a, r.packets, 'MQTT 3.1.1 has no "no local": the broker echoes every packet');
  t.equal(r.aPlayed, 0, 'and none of it is played');
});

t.test('aedes refuses MQTT 5: the channel asks again in 3.1.1 and works', async (t) => {
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }) });
  t.teardown(() => broker.close());
  const r = await over(`mqtt://127.0.0.1:${broker.tcp!.port}`);
  t.equal(r.version, 4);
  t.equal(r.b, r.packets, 'the listener got every packet');
  t.equal(r.aPlayed, 0, "the talker's own echo is not played");
  t.ok(r.selfOnline);
});
