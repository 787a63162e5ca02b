import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Codec, Flag, HEADER_BYTES, MAX_PACKET_BYTES, PacketError, decodeHeader, decodePacket, encodePacket, newStreamId } from '../../gateway/shared/channel/packet.js';

const base = { flags: Flag.START, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, keyEpoch: 0, streamId: '0123456789abcdef', seq: 7, timestamp: 1_763_990_400_123 };

t.test('round trip keeps every field and every frame', async (t) => {
  const frames = [Uint8Array.from([1, 2, 3]), new Uint8Array(200).fill(9), Uint8Array.from([0xff])];
  const bytes = encodePacket(base, frames);
  t.equal(bytes.length, HEADER_BYTES + frames.reduce((n, f) => n + 2 + f.length, 0));
  const p = decodePacket(bytes);
  t.match(p, { version: 1, flags: Flag.START, codec: 1, sampleRate: 16000, frameMs: 20, frameCount: 3, keyEpoch: 0, streamId: base.streamId, seq: 7, timestamp: base.timestamp });
  t.same(
    p.frames.map((f) => [...f]),
    frames.map((f) => [...f]),
  );
  t.same([...p.headerBytes], [...bytes.subarray(0, HEADER_BYTES)]);
});

t.test('header layout is the documented one', async (t) => {
  const b = encodePacket({ ...base, flags: Flag.END, seq: 0x01020304, timestamp: 0x0a0b0c0d0e0f, keyEpoch: 0x1234, frameMs: 40, sampleRate: 48000 }, [Uint8Array.from([42])]);
  t.same([...b.subarray(0, HEADER_BYTES)], [1, 0x02, 1, 48, 16, 1, 0x12, 0x34, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]);
  t.same([...b.subarray(HEADER_BYTES)], [0, 1, 42]);
});

t.test('every legal frame duration and rate round-trips', async (t) => {
  for (const frameMs of [2.5, 5, 10, 20, 40, 60]) {
    for (const sampleRate of [8000, 12000, 16000, 24000, 48000]) {
      const p = decodeHeader(encodePacket({ ...base, frameMs, sampleRate }, [Uint8Array.of(1)]));
      t.equal(p.frameMs, frameMs);
      t.equal(p.sampleRate, sampleRate);
    }
  }
});

t.test('malformed packets are rejected with a reason, never a crash', async (t) => {
  const good = encodePacket(base, [Uint8Array.of(1, 2), Uint8Array.of(3)]);
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty', new Uint8Array(0), 'short'],
    ['truncated header', good.subarray(0, HEADER_BYTES - 1), 'short'],
    ['unknown version', Uint8Array.from(good, (b, i) => (i === 0 ? 2 : b)), 'version'],
    ['unknown flag', Uint8Array.from(good, (b, i) => (i === 1 ? 0x80 : b)), 'header'],
    ['unknown codec', Uint8Array.from(good, (b, i) => (i === 2 ? 9 : b)), 'header'],
    ['bad rate', Uint8Array.from(good, (b, i) => (i === 3 ? 44 : b)), 'header'],
    ['bad frame duration', Uint8Array.from(good, (b, i) => (i === 4 ? 3 : b)), 'header'],
    ['zero frames', Uint8Array.from(good, (b, i) => (i === 5 ? 0 : b)), 'header'],
    ['too many frames', Uint8Array.from(good, (b, i) => (i === 5 ? 7 : b)), 'header'],
    ['frame count larger than body', Uint8Array.from(good, (b, i) => (i === 5 ? 3 : b)), 'body'],
    ['truncated body', good.subarray(0, good.length - 1), 'body'],
    ['trailing bytes', Uint8Array.from([...good, 0]), 'body'],
    ['oversize', new Uint8Array(MAX_PACKET_BYTES + 1).fill(1), 'oversize'],
  ];
  for (const [name, bytes, reason] of cases) {
    t.throws(() => decodePacket(bytes), { name: 'PacketError', reason }, name);
  }
});

t.test('random input never throws anything but PacketError', async (t) => {
  let rejected = 0;
  for (let i = 0; i < 20000; i++) {
    const len = i % 3 === 0 ? HEADER_BYTES + (i % 64) : i % 200;
    const b = new Uint8Array(randomBytes(len));
    if (i % 2 === 0 && b.length > 6) {
      // Make the header plausible so the body parser is exercised too.
      b[0] = 1;
      b[2] = 1;
      b[3] = 16;
      b[4] = 8;
      b[5] = 1 + (i % 3);
      b[1] = b[1]! & 0x03;
    }
    try {
      decodePacket(b);
    } catch (err) {
      if (!(err instanceof PacketError)) t.fail(`non-PacketError: ${(err as Error).stack}`);
      rejected++;
    }
  }
  t.ok(rejected > 15000, `${rejected} of 20000 random packets rejected`);
});

t.test('bit flips in a valid packet are caught or decode to a well-formed packet', async (t) => {
  const good = encodePacket(base, [Uint8Array.of(1, 2, 3, 4), Uint8Array.of(5, 6)]);
  for (let bit = 0; bit < good.length * 8; bit++) {
    const b = good.slice();
    b[bit >> 3] = b[bit >> 3]! ^ (1 << (bit & 7));
    try {
      const p = decodePacket(b);
      t.ok(p.frames.length === p.frameCount || (p.flags & Flag.ENCRYPTED) !== 0);
    } catch (err) {
      t.type(err, PacketError);
    }
  }
});

t.test('encoder refuses what the decoder would refuse', async (t) => {
  t.throws(() => encodePacket({ ...base, frameMs: 30 }, [Uint8Array.of(1)]), PacketError);
  t.throws(() => encodePacket({ ...base, sampleRate: 44100 }, [Uint8Array.of(1)]), PacketError);
  t.throws(() => encodePacket(base, []), PacketError);
  t.throws(() => encodePacket(base, [new Uint8Array(0)]), PacketError);
  t.throws(() => encodePacket({ ...base, streamId: 'xyz' }, [Uint8Array.of(1)]), PacketError);
  // 16 characters, but not 16 lower-case hex digits: upper case, a letter past f, a sign, a space.
  for (const streamId of ['0123456789ABCDEF', '0123456789abcdeg', '-123456789abcdef', '0123456789abcde ', '0123456789abcdef0']) {
    t.throws(() => encodePacket({ ...base, streamId }, [Uint8Array.of(1)]), PacketError, streamId);
  }
  for (const streamId of ['0000000000000000', 'ffffffffffffffff', '00ff10a09b5c7e3d']) {
    t.equal(decodeHeader(encodePacket({ ...base, streamId }, [Uint8Array.of(1)])).streamId, streamId, `${streamId} round trip`);
  }
  t.throws(() => encodePacket({ ...base, seq: -1 }, [Uint8Array.of(1)]), PacketError);
});

t.test('stream ids are 64 random bits', async (t) => {
  const ids = new Set(Array.from({ length: 1000 }, () => newStreamId()));
  t.equal(ids.size, 1000);
  for (const id of ids) t.match(id, /^[0-9a-f]{16}$/);
});
