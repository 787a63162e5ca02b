/**
 * talkbridge AEAD v1 (gateway/shared/crypto): keys, the per-over AEAD, control envelopes, replay and
 * epoch rules — and a second, independent implementation of docs/security.md with node:crypto
 * (createDecipheriv + hkdfSync) that must read what the WebCrypto code wrote, so the written spec
 * and the code cannot drift apart.
 */
import t from 'tap';
import { createDecipheriv, createHash, hkdfSync, pbkdf2Sync } from 'node:crypto';
import { ChannelCrypto, createChannelCrypto, DERIVATION_BUDGET, MAX_SEALED_MESSAGE_BYTES } from '../../gateway/shared/crypto/channel-crypto.js';
import { KeyError, formatKey, generateKey, keyFromPassphrase, parseKey, PBKDF2_ITERATIONS } from '../../gateway/shared/crypto/keys.js';
import { Codec, Flag, HEADER_BYTES, MAX_PACKET_BYTES, decodePacket, decodeHeader, encodeHeader, PacketError } from '../../gateway/shared/channel/packet.js';
import { ReplayGuard } from '../../gateway/shared/crypto/replay.js';

const frames = [new Uint8Array([0x78, 1, 2, 3, 4, 5]), new Uint8Array([0x78, 9, 8, 7])];
const NOW = 1_790_000_000_000;
const header = (seq: number, stream = '0123456789abcdef', t0 = NOW) => ({
  flags: seq === 0 ? Flag.START : 0,
  codec: Codec.OPUS,
  sampleRate: 16000,
  frameMs: 20,
  streamId: stream,
  seq,
  timestamp: t0 + seq * 40,
});

async function open(c: ChannelCrypto, sender: string, bytes: Uint8Array, now = NOW) {
  let p: ReturnType<typeof decodePacket>;
  try {
    p = decodePacket(bytes);
  } catch (err) {
    return { ok: false as const, reason: `packet-${(err as PacketError).reason}` };
  }
  return c.openAudio(sender, p, now);
}

t.test('keys: text form round-trips; bad keys are refused without echoing them', async (t) => {
  const k = generateKey(7);
  t.equal(k.raw.length, 32);
  const text = formatKey(k);
  t.match(text, /^7\.[A-Za-z0-9_-]{43}$/);
  t.same(parseKey(text), k);
  t.same(parseKey(`  ${text}\n`), k, 'whitespace around a key from a file is fine');
  for (const bad of ['', 'abc', '1.' + 'A'.repeat(42), '70000.' + 'A'.repeat(43), '1.' + 'A'.repeat(42) + '!', text + 'A']) {
    t.throws(() => parseKey(bad), KeyError, `refused: ${JSON.stringify(bad.slice(0, 12))}`);
  }
  try {
    parseKey('1.' + 'Q'.repeat(44));
  } catch (err) {
    t.notMatch((err as Error).message, /QQQQ/, 'the message does not contain the key');
  }
});

t.test('passphrase: PBKDF2-SHA256, 600k iterations, per-channel salt — as documented', async (t) => {
  const a = await keyFromPassphrase('base', 'correct horse battery staple');
  const again = await keyFromPassphrase('base', 'correct horse battery staple');
  const other = await keyFromPassphrase('sar', 'correct horse battery staple');
  t.same(a.raw, again.raw, 'deterministic');
  t.notSame(a.raw, other.raw, 'another channel, another key');
  const salt = createHash('sha256').update('talkbridge/v1 passphrase salt\0base').digest();
  t.same(Buffer.from(a.raw), pbkdf2Sync('correct horse battery staple', salt, PBKDF2_ITERATIONS, 32, 'sha256'), 'node:crypto derives the same key from the documented parameters');
  await t.rejects(keyFromPassphrase('base', 'short'), KeyError);
});

t.test('audio: sealed packets open; node:crypto reads them by the documented construction', async (t) => {
  const key = generateKey(3);
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const rx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const bytes = await tx.sealAudio('alice', header(0), frames, NOW);
  const h = decodeHeader(bytes);
  t.ok(h.flags & Flag.ENCRYPTED, 'ENCRYPTED flag set');
  t.equal(h.keyEpoch, 3, 'epoch in the header');
  const r = await open(rx, 'alice', bytes);
  t.ok(r.ok, 'opens');
  if (r.ok)
    t.same(
      r.value.map((f) => [...f]),
      frames.map((f) => [...f]),
    );

  // Independent implementation of docs/security.md.
  const salt = Buffer.from('0123456789abcdef', 'hex');
  const k = Buffer.from(hkdfSync('sha256', key.raw, salt, Buffer.from('talkbridge/v1 audio\0base\0alice'), 32));
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(0, 8);
  const body = bytes.subarray(HEADER_BYTES);
  const d = createDecipheriv('aes-256-gcm', k, nonce);
  d.setAAD(bytes.subarray(0, HEADER_BYTES));
  d.setAuthTag(body.subarray(body.length - 16));
  const plain = Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
  t.same(plain.subarray(0, 4), createHash('sha256').update('alice').digest().subarray(0, 4), 'sender tag = SHA-256(sender)[0..4]');
  t.same([...plain.subarray(4)], [0, 6, ...frames[0]!, 0, 4, ...frames[1]!], 'then the clear body (length-prefixed frames)');
});

t.test('audio: every single-bit flip and every truncation is refused', async (t) => {
  const key = generateKey();
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const bytes = await tx.sealAudio('alice', header(5), frames, NOW);
  const reasons = new Map<string, number>();
  for (let bit = 0; bit < bytes.length * 8; bit++) {
    const rx = new ChannelCrypto({ channel: 'base', keys: [key] });
    const b = bytes.slice();
    b[bit >> 3]! ^= 1 << (bit & 7);
    const r = await open(rx, 'alice', b);
    if (r.ok) {
      t.fail(`bit ${bit} flipped was accepted`);
      continue;
    }
    reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
  }
  for (let n = 0; n < bytes.length; n++) {
    const r = await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'alice', bytes.subarray(0, n));
    if (r.ok) t.fail(`truncated to ${n} bytes was accepted`);
  }
  t.ok((reasons.get('auth') ?? 0) > bytes.length * 4, `flips refused by reason: ${JSON.stringify(Object.fromEntries(reasons))}`);
});

t.test('audio: wrong key, other channel, relabelled sender and forged inner sender are refused', async (t) => {
  const key = generateKey();
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const bytes = await tx.sealAudio('alice', header(0), frames, NOW);
  t.match(await open(new ChannelCrypto({ channel: 'base', keys: [generateKey()] }), 'alice', bytes), { ok: false, reason: 'auth' }, 'wrong key');
  t.match(await open(new ChannelCrypto({ channel: 'sar', keys: [key] }), 'alice', bytes), { ok: false, reason: 'auth' }, 'replayed onto another channel');
  t.match(await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'mallory', bytes), { ok: false, reason: 'auth' }, "moved to another sender's topic");
  // A member (who has the key) encrypting under bob's topic key but with alice's inner identity.
  const member = new ChannelCrypto({ channel: 'base', keys: [key] });
  const forged = await member.sealAudio('alice', header(0, 'fedcba9876543210'), frames, NOW);
  const bobKey = await (member as unknown as { streamKey: (e: number, s: string, x: string) => Promise<CryptoKey> }).streamKey(1, 'fedcba9876543210', 'bob');
  const p = decodePacket(forged);
  const plain = new Uint8Array(
    await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: nonceOf(0) as BufferSource, additionalData: p.headerBytes as BufferSource },
      await (member as unknown as { streamKey: (e: number, s: string, x: string) => Promise<CryptoKey> }).streamKey(1, 'fedcba9876543210', 'alice'),
      p.body as BufferSource,
    ),
  );
  const reSealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonceOf(0) as BufferSource, additionalData: p.headerBytes as BufferSource }, bobKey, plain));
  const out = new Uint8Array(HEADER_BYTES + reSealed.length);
  out.set(p.headerBytes, 0);
  out.set(reSealed, HEADER_BYTES);
  t.match(await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'bob', out), { ok: false, reason: 'sender-mismatch' }, 'inner identity differs from the topic: refused');
  t.match(
    await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'alice', new Uint8Array([...bytes.subarray(0, 1), bytes[1]! & ~Flag.ENCRYPTED, ...bytes.subarray(2)])),
    { ok: false },
    'flag stripped: refused',
  );
});

function nonceOf(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(8, seq);
  return n;
}

t.test('replay: a packet twice, an old over, a stale capture; reordering inside the window is fine', async (t) => {
  const key = generateKey();
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const rx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const p = await Promise.all([0, 1, 2, 3].map((s) => tx.sealAudio('alice', header(s, '1111111111111111'), frames, NOW)));
  t.ok((await open(rx, 'alice', p[0]!)).ok);
  t.ok((await open(rx, 'alice', p[2]!)).ok);
  t.ok((await open(rx, 'alice', p[1]!)).ok, 'late but inside the window');
  t.match(await open(rx, 'alice', p[1]!), { ok: false, reason: 'replay' }, 'the same packet again');
  const later = await tx.sealAudio('alice', header(0, '2222222222222222', NOW + 60_000), frames, NOW + 60_000);
  t.ok((await open(rx, 'alice', later, NOW + 60_000)).ok, 'a newer over');
  // An over from before the newest one, never seen by this receiver: an old recording replayed.
  const old = await tx.sealAudio('alice', header(0, '3333333333333333', NOW - 30_000), frames, NOW);
  t.match(await open(rx, 'alice', old, NOW + 60_000), { ok: false, reason: 'replay' }, 'an older over replayed');
  t.match(await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'alice', p[3]!, NOW + 301_000), { ok: false, reason: 'stale' }, 'captured 5 min ago');
  t.ok((await open(new ChannelCrypto({ channel: 'base', keys: [key], maxSkewMs: 0 }), 'alice', p[3]!, NOW + 3_600_000)).ok, 'maxSkewMs 0: no clock check');
  const g = new ReplayGuard({ maxSkewMs: 0 });
  t.equal(g.packet('a', 's', 0, 100, 0, 0), null);
  t.equal(g.packet('a', 's', 0, 37, 0, 0), null, '63 back: still in the 64-packet window');
  t.equal(g.packet('a', 's', 0, 37, 0, 0), 'replay');
  t.equal(g.packet('a', 's', 0, 36, 0, 0), 'replay', 'beyond the window: refused');
});

t.test('epochs: the highest is sent; an old one is accepted for the overlap, then refused; unknown ones never', async (t) => {
  const k1 = generateKey(1);
  const k2 = generateKey(2);
  const old = new ChannelCrypto({ channel: 'base', keys: [k1] });
  const rotated = new ChannelCrypto({ channel: 'base', keys: [k2] });
  const rx = new ChannelCrypto({ channel: 'base', keys: [k1, k2], overlapMs: 60_000 });
  t.equal(rx.sendEpoch, 2);
  t.ok((await open(rx, 'old', await old.sealAudio('old', header(0, 'aaaaaaaaaaaaaaaa'), frames, NOW))).ok, 'epoch 1 before anyone used epoch 2');
  t.ok((await open(rx, 'new', await rotated.sealAudio('new', header(0, 'bbbbbbbbbbbbbbbb', NOW + 1000), frames, NOW + 1000), NOW + 1000)).ok, 'epoch 2');
  t.ok((await open(rx, 'old', await old.sealAudio('old', header(0, 'cccccccccccccccc', NOW + 30_000), frames, NOW + 30_000), NOW + 30_000)).ok, 'epoch 1 inside the overlap');
  t.match(
    await open(rx, 'old', await old.sealAudio('old', header(0, 'dddddddddddddddd', NOW + 70_000), frames, NOW + 70_000), NOW + 70_000),
    { ok: false, reason: 'old-epoch' },
    'epoch 1 after the overlap',
  );
  t.match(await open(old, 'new', await rotated.sealAudio('new', header(0, 'eeeeeeeeeeeeeeee'), frames, NOW)), { ok: false, reason: 'unknown-epoch' }, 'a key we do not have');
  t.throws(() => new ChannelCrypto({ channel: 'x', keys: [k1, { epoch: 1, raw: k2.raw }] }), KeyError, 'two keys for one epoch');
});

t.test('control and presence envelopes: open, bind sender, kind and channel, refuse replays of control', async (t) => {
  const key = generateKey();
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const rx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const json = new TextEncoder().encode('{"v":1,"type":"notice","code":"x","text":"hello"}');
  const env = await tx.sealMessage('control', 'alice', json, NOW);
  t.notOk(Buffer.from(env).includes(Buffer.from('hello')), 'nothing readable');
  const r = await rx.openMessage('control', 'alice', env, NOW);
  t.ok(r.ok && Buffer.from(r.value).equals(Buffer.from(json)));
  t.match(await rx.openMessage('control', 'alice', env, NOW), { ok: false, reason: 'replay' }, 'control replayed');
  t.match(await rx.openMessage('control', 'bob', env, NOW), { ok: false, reason: 'sender-mismatch' }, 'on another sender topic');
  t.match(await rx.openMessage('presence', 'alice', env, NOW), { ok: false, reason: 'auth' }, 'control replayed as presence');
  t.match(await new ChannelCrypto({ channel: 'sar', keys: [key] }).openMessage('control', 'alice', env, NOW), { ok: false, reason: 'auth' }, 'another channel');
  t.match(await rx.openMessage('control', 'alice', json, NOW), { ok: false, reason: 'unencrypted' }, 'clear JSON');
  const p = await tx.sealMessage('presence', 'alice', json, NOW - 3_600_000);
  t.ok((await rx.openMessage('presence', 'alice', p, NOW)).ok, 'old retained presence is still presence');
  t.ok((await rx.openMessage('presence', 'alice', p, NOW)).ok, 'and may be delivered again (retained)');
  for (let i = 0; i < env.length; i++) {
    const b = env.slice();
    b[i]! ^= 0x10;
    const x = await new ChannelCrypto({ channel: 'base', keys: [key] }).openMessage('control', 'alice', b, NOW);
    if (x.ok) t.fail(`byte ${i} altered was accepted`);
  }
  t.equal(await createChannelCrypto({ channel: 'base' }), null, 'no keys: a clear channel');
});

t.test('replay memory survives a restart through snapshot/restore; garbage and expired entries are ignored', async (t) => {
  const g = new ReplayGuard({ maxSkewMs: 300_000 });
  t.equal(g.packet('alice', 'aaaaaaaaaaaaaaaa', NOW, 0, NOW, NOW), null);
  t.equal(g.packet('bob', 'bbbbbbbbbbbbbbbb', NOW - 400_000, 0, NOW - 400_000, NOW - 400_000), null);
  const snap = JSON.parse(JSON.stringify(g.snapshot()));
  const h = new ReplayGuard({ maxSkewMs: 300_000 });
  t.equal(h.restore(snap, NOW + 1000), 1, 'alice restored; bob is older than the skew window');
  t.equal(h.packet('alice', 'aaaaaaaaaaaaaaaa', NOW, 1, NOW + 40, NOW + 1000), 'replay', 'a packet of a stream heard before the restart');
  t.equal(h.overStart('alice', 'aaaaaaaaaaaaaaaa', NOW, NOW + 1000), 'replay', 'its START');
  t.equal(h.packet('alice', 'cccccccccccccccc', NOW - 60_000, 0, NOW - 60_000, NOW + 1000), 'replay', 'an older over');
  t.equal(h.packet('alice', 'dddddddddddddddd', NOW + 900, 0, NOW + 900, NOW + 1000), null, 'a new over');
  for (const junk of [null, 3, 'x', [], { a: 1 }, { a: { newest: 'x' } }, { a: { newest: NOW, streams: [1, null] } }]) t.doesNotThrow(() => new ReplayGuard({ maxSkewMs: 0 }).restore(junk, NOW));
});

/** An encrypted-looking packet nobody sealed: a valid header, random body. */
function garbage(stream: string, epoch = 1, seq = 0, bodyBytes = 40, t0 = NOW) {
  const b = new Uint8Array(HEADER_BYTES + bodyBytes);
  encodeHeader({ ...header(seq, stream, t0), flags: Flag.ENCRYPTED, keyEpoch: epoch, frameCount: 2 }, b);
  globalThis.crypto.getRandomValues(b.subarray(HEADER_BYTES));
  return decodePacket(b);
}

const streamOf = (i: number) => i.toString(16).padStart(16, '0');

t.test('precheck: clear, short, oversize, unknown-epoch and retired input refused synchronously, without deriving a key', async (t) => {
  const k1 = generateKey(1);
  const k2 = generateKey(2);
  const rx = new ChannelCrypto({ channel: 'base', keys: [k1, k2], overlapMs: 60_000 });
  const tx1 = new ChannelCrypto({ channel: 'base', keys: [k1] });
  const good = decodePacket(await tx1.sealAudio('alice', header(0), frames, NOW));
  t.equal(rx.precheckAudio(good, NOW), null, 'a genuine packet passes');
  const clear = decodePacket(new Uint8Array([...good.headerBytes.slice(0, 1), good.flags & ~Flag.ENCRYPTED, ...good.headerBytes.slice(2), 0, 1, 0x78, 0, 1, 0x78]));
  t.match(rx.precheckAudio(clear, NOW), { reason: 'unencrypted' });
  t.match(rx.precheckAudio(garbage(streamOf(1), 1, 0, 4 + 6 + 16 - 1), NOW), { reason: 'envelope' }, 'too short for tag, 2 frames and AEAD tag');
  t.equal(rx.precheckAudio(garbage(streamOf(1), 1, 0, 4 + 6 + 16), NOW), null, 'the shortest possible body passes');
  t.match(rx.precheckAudio(garbage(streamOf(1), 1, 0, MAX_PACKET_BYTES - HEADER_BYTES), NOW), { reason: 'oversize' }, '2 frames cannot fill 4 KiB');
  t.match(rx.precheckAudio(garbage(streamOf(1), 7), NOW), { reason: 'unknown-epoch' });
  t.equal(rx.stats.derivations, 0, 'nothing derived');
  t.match(await rx.openAudio('alice', garbage(streamOf(1), 1, 0, 20), NOW), { ok: false, reason: 'envelope' }, 'openAudio runs the same checks');
  // Epoch 2 in use (authenticated), then epoch 1 is retired after the overlap.
  const tx2 = new ChannelCrypto({ channel: 'base', keys: [k2] });
  t.ok((await rx.openMessage('presence', 'bob', await tx2.sealMessage('presence', 'bob', new TextEncoder().encode('{}'), NOW), NOW)).ok);
  t.equal(rx.precheckAudio(good, NOW + 60_000), null, 'inside the overlap');
  t.match(rx.precheckAudio(good, NOW + 60_001), { reason: 'old-epoch' }, 'after it');

  const json = new TextEncoder().encode('{"v":1,"type":"notice","code":"x","text":"hi"}');
  const env = await tx1.sealMessage('control', 'alice', json, NOW);
  t.equal(rx.precheckMessage('control', env, NOW), null);
  t.match(rx.precheckMessage('control', env, NOW + 60_001), { reason: 'old-epoch' });
  t.match(rx.precheckMessage('control', json, NOW), { reason: 'unencrypted' });
  t.match(rx.precheckMessage('control', new Uint8Array(0), NOW), { reason: 'unencrypted' });
  t.equal(rx.precheckMessage('presence', new Uint8Array(0), NOW), null, "an empty presence (a Last Will's) passes: the caller handles it");
  t.match(rx.precheckMessage('control', env.subarray(0, 38), NOW), { reason: 'envelope' });
  const huge = new Uint8Array(MAX_SEALED_MESSAGE_BYTES + 1);
  huge.set(env.subarray(0, 15));
  t.match(rx.precheckMessage('control', huge, NOW), { reason: 'oversize' });
  t.match(await rx.openMessage('control', 'alice', huge, NOW), { ok: false, reason: 'oversize' });
  const wrongEpoch = env.slice();
  wrongEpoch[2] = 9;
  t.match(rx.precheckMessage('control', wrongEpoch, NOW), { reason: 'unknown-epoch' });
  // The largest legitimate message (2048 bytes of JSON, the longest sender id a topic allows) fits.
  const big = new TextEncoder().encode(JSON.stringify({ v: 1, pad: 'x'.repeat(2048 - 16) }));
  t.equal(big.length, 2048);
  const sender = 'a'.repeat(64);
  const bigEnv = await tx1.sealMessage('control', sender, big, NOW);
  t.equal(rx.precheckMessage('control', bigEnv, NOW), null, `${bigEnv.length} bytes pass`);
  t.ok((await rx.openMessage('control', sender, bigEnv, NOW)).ok);
  await t.rejects(tx1.sealMessage('control', 'alice', new Uint8Array(4096), NOW), PacketError, 'a sender cannot seal what receivers refuse');
});

t.test('budget: new-over key derivations are limited per sender and, for senders never authenticated, globally', async (t) => {
  const key = generateKey(1);
  const rx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const reasons = async (sender: string, from: number, n: number, now: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await rx.openAudio(sender, garbage(streamOf(from + i)), now);
      out.push(r.ok ? 'ok' : r.reason);
    }
    return out;
  };
  const B = DERIVATION_BUDGET;
  t.same(await reasons('mallory', 0, 10, NOW), [...Array(B.senderBurst).fill('auth'), 'budget', 'budget'], 'burst 8, then refused');
  t.equal(rx.stats.derivations, B.senderBurst);
  t.equal(rx.stats.budgetRefused, 2);
  t.same(await reasons('mallory', 100, 3, NOW + 1000), ['auth', 'auth', 'budget'], '2 more a second later');
  const g = garbage(streamOf(999));
  const before = rx.stats.derivations;
  t.match(await rx.openAudio('eve', g, NOW + 1000), { ok: false, reason: 'auth' });
  for (let i = 1; i < 20; i++) t.match(await rx.openAudio('eve', garbage(streamOf(999), 1, i), NOW + 1000), { ok: false, reason: 'auth' }, 'the same stream id again');
  t.equal(rx.stats.derivations - before, 1, 'garbage repeating one stream id costs one derivation');

  // Invented sender ids: each has its own bucket, but the global one runs out.
  const rx2 = new ChannelCrypto({ channel: 'base', keys: [key] });
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  t.ok((await rx2.openMessage('presence', 'bob', await tx.sealMessage('presence', 'bob', new TextEncoder().encode('{}'), NOW), NOW)).ok, "bob's presence authenticates: bob holds the key");
  const out: string[] = [];
  for (let i = 0; i < 60; i++) {
    const r = await rx2.openAudio(`x${i}`, garbage(streamOf(i)), NOW);
    out.push(r.ok ? 'ok' : r.reason);
  }
  t.same(out, [...Array(B.globalBurst).fill('auth'), ...Array(60 - B.globalBurst).fill('budget')], 'global burst 50, then refused');
  t.ok((await open(rx2, 'bob', await tx.sealAudio('bob', header(3, streamOf(7777)), frames, NOW))).ok, 'a sender that authenticated before does not need the exhausted global budget');
  t.ok((await open(rx2, 'carol', await tx.sealAudio('carol', header(0, streamOf(8888)), frames, NOW + 1000), NOW + 1000)).ok, 'a new sender gets in once the global bucket refills');

  // An over announced by an authenticated START needs no budget, however drained the sender's bucket.
  const rx3 = new ChannelCrypto({ channel: 'base', keys: [key] });
  t.same(
    (await Promise.all([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => rx3.openAudio('alice', garbage(streamOf(i)), NOW)))).map((r) => (r.ok ? 'ok' : r.reason)).slice(-2),
    ['budget', 'budget'],
    "garbage on alice's topic drained her bucket",
  );
  t.match(await open(rx3, 'alice', await tx.sealAudio('alice', header(0, streamOf(4242)), frames, NOW)), { ok: false, reason: 'budget' }, 'her unannounced over is refused (the residual risk)');
  t.equal(rx3.replay.overStart('alice', streamOf(5151), NOW, NOW), null, 'her next START authenticates (the session calls overStart)');
  t.ok((await open(rx3, 'alice', await tx.sealAudio('alice', header(0, streamOf(5151)), frames, NOW))).ok, 'and that over opens');
});

t.test('flood: a genuine over keeps decrypting, with its key derived once, while 5,000 packets with fresh stream ids arrive', async (t) => {
  const key = generateKey(1);
  const tx = new ChannelCrypto({ channel: 'base', keys: [key] });
  const B = DERIVATION_BUDGET;
  for (const attack of ['fresh stream ids on alice’s topic', 'fresh stream and sender ids']) {
    const rx = new ChannelCrypto({ channel: 'base', keys: [key] });
    // A late joiner: no START, so the genuine over itself needs budget for its first packet.
    let seq = 0;
    let genuineOk = 0;
    const refused = new Map<string, number>();
    const t0 = NOW;
    for (let i = 0; i < 5000; i++) {
      const now = t0 + i * 2; // 5,000 packets in 10 s, a genuine one every 40 ms
      if (i % 20 === 0) {
        const r = await open(rx, 'alice', await tx.sealAudio('alice', header(seq, 'a11ce00000000001', t0), frames, t0 + seq * 40), now);
        if (r.ok) genuineOk++;
        else t.fail(`genuine packet ${seq} refused: ${r.reason}`);
        seq++;
      }
      const sender = attack.startsWith('fresh stream ids') ? 'alice' : `m${i}`;
      const r = await rx.openAudio(sender, garbage(streamOf(0x100000 + i), 1, 0, 40, now), now);
      if (r.ok) t.fail('garbage accepted');
      else refused.set(r.reason, (refused.get(r.reason) ?? 0) + 1);
    }
    t.equal(genuineOk, 250, `${attack}: all 250 genuine packets open`);
    const bound = attack.startsWith('fresh stream ids') ? B.senderBurst + 10 * B.senderPerSecond : B.globalBurst + 10 * B.globalPerSecond;
    t.ok(
      rx.stats.derivations <= bound + 1,
      `${attack}: ${rx.stats.derivations} derivations (≤ ${bound} for the flood + 1 for the genuine over); refused ${JSON.stringify(Object.fromEntries(refused))}`,
    );
    t.ok((refused.get('budget') ?? 0) >= 5000 - bound, 'the rest refused for budget, before any WebCrypto');
    t.equal(rx.stats.derivations, (refused.get('auth') ?? 0) + 1, 'one derivation per garbage key tried and exactly one for the genuine over: its key was never evicted');
  }
});
