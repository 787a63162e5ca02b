import t from 'tap';
import { encodeJson, parseControl, parsePresence } from '../../gateway/shared/channel/control.js';
import { ChannelTopics, makeSenderId, normalizeChannel } from '../../gateway/shared/channel/topics.js';

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const start = { v: 1, type: 'start', stream: '0123456789abcdef', t: 1700000000000, name: 'Ann', source: 'web', priority: 0, sampleRate: 16000, frameMs: 20, framesPerPacket: 2 };

t.test('control messages parse strictly', async (t) => {
  t.match(parseControl(enc(start)), { ok: true, value: start });
  t.match(parseControl(encodeJson({ v: 1, type: 'end', stream: start.stream, reason: 'busy', packets: 3 })), { ok: true, value: { reason: 'busy', packets: 3 } });
  const bad: Array<[unknown, RegExp]> = [
    [{ ...start, v: 2 }, /version/],
    [{ ...start, stream: 'XYZ' }, /stream/],
    [{ ...start, t: -1 }, /start time/],
    [{ ...start, name: 'x'.repeat(65) }, /name/],
    [{ ...start, source: 'radio2' }, /source/],
    [{ ...start, priority: 256 }, /priority/],
    [{ ...start, sampleRate: 44100 }, /sample rate/],
    [{ ...start, frameMs: 30 }, /frame duration/],
    [{ ...start, framesPerPacket: 0 }, /frames per packet/],
    [{ ...start, type: 'hello' }, /unknown control type/],
    [{ v: 1, type: 'end', stream: start.stream, reason: 'bored', packets: 1 }, /end reason/],
    [{ v: 1, type: 'end', stream: start.stream, reason: 'done', packets: 1.5 }, /packet count/],
    [[1, 2], /JSON object/],
  ];
  for (const [m, re] of bad) {
    const r = parseControl(enc(m));
    t.equal(r.ok, false);
    if (!r.ok) t.match(r.reason, re);
  }
  t.match(parseControl(new Uint8Array(0)), { ok: false, reason: 'empty payload' });
  t.match(parseControl(Uint8Array.of(0xff, 0xfe)), { ok: false, reason: 'not UTF-8 JSON' });
  t.match(parseControl(new Uint8Array(5000).fill(32)), { ok: false, reason: /exceeds/ });
});

t.test('presence: a message, or empty = cleared', async (t) => {
  t.match(parsePresence(enc({ v: 1, name: 'Base', source: 'radio', since: 5, software: 'talkbridge/0.1' })), { ok: true, value: { name: 'Base' } });
  t.same(parsePresence(new Uint8Array(0)), { ok: true, value: null });
  t.match(parsePresence(enc({ v: 1, name: 'x', source: 'web', since: 'now', software: '' })), { ok: false });
});

t.test('topics', async (t) => {
  const c = new ChannelTopics('talkbridge/v1', 'Base');
  t.equal(c.channel, 'base', 'channel names are case-insensitive');
  t.equal(c.topic('audio', 'ann-1234'), 'talkbridge/v1/base/audio/ann-1234');
  t.equal(c.all, 'talkbridge/v1/base/+/+');
  t.same(c.parse('talkbridge/v1/base/control/ann-1234'), { kind: 'control', sender: 'ann-1234' });
  for (const bad of ['talkbridge/v1/base/audio', 'talkbridge/v1/base/audio/a/b', 'talkbridge/v1/base/video/a', 'talkbridge/v1/other/audio/a', 'talkbridge/v1/base/audio/+'])
    t.equal(c.parse(bad), null, bad);
  for (const bad of ['', 'a/b', '#', '+', 'a b', 'x'.repeat(65), '-lead']) t.throws(() => normalizeChannel(bad), /not valid/, JSON.stringify(bad));
  t.throws(() => new ChannelTopics('bad/#', 'x'));
  t.throws(() => c.topic('audio', 'a/b'));
  // Topics and parses are remembered: the same answers the second time, a bad sender still refused,
  // and more senders than the memo holds still come out right.
  t.equal(c.topic('audio', 'ann-1234'), 'talkbridge/v1/base/audio/ann-1234');
  t.throws(() => c.topic('audio', 'a/b'));
  t.same(c.parse('talkbridge/v1/base/control/ann-1234'), { kind: 'control', sender: 'ann-1234' });
  for (const bad of ['talkbridge/v1/base/video/a', 'talkbridge/v1/base/audio/+']) t.equal(c.parse(bad), null, `${bad} again`);
  const wrong: string[] = [];
  for (let i = 0; i < 600; i++) {
    if (c.topic('presence', `s-${i}`) !== `talkbridge/v1/base/presence/s-${i}`) wrong.push(`topic ${i}`);
    if (c.parse(`talkbridge/v1/base/audio/s-${i}`)?.sender !== `s-${i}`) wrong.push(`parse ${i}`);
  }
  t.same(wrong, [], '600 senders, more than the memo holds');
  t.same(c.parse('talkbridge/v1/base/control/ann-1234'), { kind: 'control', sender: 'ann-1234' });
  t.match(makeSenderId('Ann Smith!'), /^ann-smith-[0-9a-f]{8}$/);
  t.match(makeSenderId('!!!'), /^talker-[0-9a-f]{8}$/);
});
