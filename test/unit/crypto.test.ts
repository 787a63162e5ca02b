/**
 * talkbridge AEAD v1 (gateway/src/crypto): keys, the per-over AEAD, control envelopes, replay and
 * epoch rules — and a second, independent implementation of docs/security.md with node:crypto
 * (createDecipheriv + hkdfSync) that must read what the WebCrypto code wrote, so the written spec
 * and the code cannot drift apart.
 */
import t from 'tap';
import { createDecipheriv, createHash, hkdfSync, pbkdf2Sync } from 'node:crypto';
import { ChannelCrypto, createChannelCrypto } from '../../gateway/src/crypto/channel-crypto.js';
import { KeyError, formatKey, generateKey, keyFromPassphrase, parseKey, PBKDF2_ITERATIONS } from '../../gateway/src/crypto/keys.js';
import { Codec, Flag, HEADER_BYTES, decodePacket, decodeHeader, PacketError } from '../../gateway/src/channel/packet.js';
import { ReplayGuard } from '../../gateway/src/crypto/replay.js';

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
  let p;
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
  if (r.ok) t.same(r.value.map((f) => [...f]), frames.map((f) => [...f]));

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
  const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonceOf(0) as BufferSource, additionalData: p.headerBytes as BufferSource }, await (member as unknown as { streamKey: (e: number, s: string, x: string) => Promise<CryptoKey> }).streamKey(1, 'fedcba9876543210', 'alice'), p.body as BufferSource));
  const reSealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonceOf(0) as BufferSource, additionalData: p.headerBytes as BufferSource }, bobKey, plain));
  const out = new Uint8Array(HEADER_BYTES + reSealed.length);
  out.set(p.headerBytes, 0);
  out.set(reSealed, HEADER_BYTES);
  t.match(await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'bob', out), { ok: false, reason: 'sender-mismatch' }, 'inner identity differs from the topic: refused');
  t.match(await open(new ChannelCrypto({ channel: 'base', keys: [key] }), 'alice', new Uint8Array([...bytes.subarray(0, 1), bytes[1]! & ~Flag.ENCRYPTED, ...bytes.subarray(2)])), { ok: false }, 'flag stripped: refused');
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
  t.match(await open(rx, 'old', await old.sealAudio('old', header(0, 'dddddddddddddddd', NOW + 70_000), frames, NOW + 70_000), NOW + 70_000), { ok: false, reason: 'old-epoch' }, 'epoch 1 after the overlap');
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
