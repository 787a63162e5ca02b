/**
 * Key rotation across restarts (docs/security.md, "Key rotation and epochs"): the newest epoch in
 * authenticated use, and when it was first seen, are saved with the replay state, so an epoch retired
 * before a restart stays retired after it (the overlap is not started again), and the file stays
 * readable both ways between gateway versions.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { ChannelCrypto } from '../../gateway/shared/crypto/channel-crypto.js';
import { generateKey } from '../../gateway/shared/crypto/keys.js';
import { ReplayGuard } from '../../gateway/shared/crypto/replay.js';
import { Codec, Flag, HEADER_BYTES, decodePacket, encodeHeader } from '../../gateway/shared/channel/packet.js';
import { EPOCH_FIELD, keepReplayState } from '../../gateway/src/app/replay-state.js';

const frames = [new Uint8Array([0x78, 1, 2, 3])];
const k1 = generateKey(1);
const k2 = generateKey(2);
const OVERLAP = 60_000;
let streams = 0;
const header = (t0: number) => ({ flags: Flag.START, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId: (++streams).toString(16).padStart(16, '0'), seq: 0, timestamp: t0 });
const talker = (key = k1) => new ChannelCrypto({ channel: 'base', keys: [key] });
const receiver = (keys = [k2, k1]) => new ChannelCrypto({ channel: 'base', keys, overlapMs: OVERLAP });

/** An over of one packet sealed at `at` and opened at `at` by `rx`. */
async function over(rx: ChannelCrypto, tx: ChannelCrypto, sender: string, at: number) {
  return rx.openAudio(sender, decodePacket(await tx.sealAudio(sender, header(at), frames, at)), at);
}

function logger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, warnings: () => lines.filter((l) => (l.level as number) >= 40) };
}

const stateDir = () => mkdtempSync(path.join(tmpdir(), 'tb-epoch-'));

t.test('an epoch retired before a restart stays retired after it; the overlap counts from when the new one was first seen', async (t) => {
  const dir = stateDir();
  const { log, warnings } = logger();
  const t0 = Date.now();
  const rx = receiver();
  const stop = keepReplayState(rx, dir, log);
  t.ok((await over(rx, talker(k2), 'new', t0)).ok, 'epoch 2 in use from t0');
  t.ok((await over(rx, talker(), 'old', t0 + 30_000)).ok, 'epoch 1 inside the overlap');
  await stop();
  t.same(JSON.parse(readFileSync(path.join(dir, 'replay-base.json'), 'utf8'))[EPOCH_FIELD], { epoch: 2, since: t0 }, 'saved with the replay state');

  // Restarted: a new ChannelCrypto on the same state directory.
  const rx2 = receiver();
  const stop2 = keepReplayState(rx2, dir, log);
  t.same(rx2.epochInUse(), { epoch: 2, since: t0 }, 'restored');
  t.ok((await over(rx2, talker(), 'old', t0 + OVERLAP - 1000)).ok, 'epoch 1 still inside the original overlap');
  t.match(await over(rx2, talker(), 'old', t0 + OVERLAP + 1000), { ok: false, reason: 'old-epoch' }, 'and refused once it has passed, though the gateway restarted in between');
  t.ok((await over(rx2, talker(k2), 'new', t0 + OVERLAP + 2000)).ok, 'epoch 2 goes on');
  await stop2();
  t.same(warnings(), [], 'no warnings');

  // Without the state directory (as before): the overlap starts again, and the old key works.
  t.ok((await over(receiver(), talker(), 'old', t0 + OVERLAP + 3000)).ok, 'the gap this closes: a fresh receiver accepts epoch 1 again');
});

t.test('a newer epoch coming into use is saved at once, not at the next 30 s save', async (t) => {
  const dir = stateDir();
  const rx = receiver();
  const stop = keepReplayState(rx, dir, logger().log);
  t.teardown(stop);
  const t0 = Date.now();
  t.ok((await over(rx, talker(k2), 'new', t0)).ok);
  let saved: unknown;
  for (let i = 0; i < 100 && saved === undefined; i++) {
    await new Promise((r) => setTimeout(r, 10));
    try {
      saved = JSON.parse(readFileSync(path.join(dir, 'replay-base.json'), 'utf8'))[EPOCH_FIELD];
    } catch {
      // not written yet
    }
  }
  t.same(saved, { epoch: 2, since: t0 });
});

t.test('only authenticated input (or our own sending) marks an epoch in use', async (t) => {
  const now = Date.now();
  const rx = receiver();
  // Garbage claiming epoch 2: a valid header, a random body.
  const b = new Uint8Array(HEADER_BYTES + 40);
  encodeHeader({ ...header(now), flags: Flag.ENCRYPTED, keyEpoch: 2, frameCount: 1 }, b);
  globalThis.crypto.getRandomValues(b.subarray(HEADER_BYTES));
  t.match(await rx.openAudio('mallory', decodePacket(b), now), { ok: false, reason: 'auth' });
  const env = new Uint8Array(60);
  env.set([0xe1, 0, 2]);
  t.match(await rx.openMessage('control', 'mallory', env, now), { ok: false, reason: 'auth' });
  t.match(await rx.openMessage('presence', 'mallory', env, now), { ok: false, reason: 'auth' });
  // Genuine epoch-2 input that is refused anyway: on the wrong topic, captured long ago.
  const tx2 = talker(k2);
  t.match(await rx.openAudio('mallory', decodePacket(await tx2.sealAudio('new', header(now), frames, now)), now), { ok: false, reason: 'auth' });
  t.match(await rx.openAudio('new', decodePacket(await tx2.sealAudio('new', header(now - 3_600_000), frames, now - 3_600_000)), now), { ok: false, reason: 'stale' });
  t.equal(rx.epochInUse(), null, 'none of it marked epoch 2 in use');
  t.ok((await over(rx, talker(), 'old', now + OVERLAP + 1000)).ok, 'so epoch 1 is still good');
  t.ok((await rx.openMessage('presence', 'new', await tx2.sealMessage('presence', 'new', new TextEncoder().encode('{}'), now + OVERLAP + 2000), now + OVERLAP + 2000)).ok);
  t.same(rx.epochInUse(), { epoch: 2, since: now + OVERLAP + 2000 }, 'an authenticated presence does');
  const self = receiver();
  await self.sealMessage('presence', 'me', new TextEncoder().encode('{}'), now);
  t.same(self.epochInUse(), { epoch: 2, since: now }, 'and so does sending our own presence under epoch 2');
});

t.test('file compatibility: old files read as before, and older gateways skip the new field', async (t) => {
  const now = Date.now();
  const dir = stateDir();
  const file = path.join(dir, 'replay-base.json');
  const old = { alice: { newest: now - 1000, streams: ['aaaaaaaaaaaaaaaa'] } };
  writeFileSync(file, JSON.stringify(old));
  const { log, warnings } = logger();
  const rx = receiver();
  const stop = keepReplayState(rx, dir, log);
  t.equal(rx.epochInUse(), null, 'no epoch in an old file: as before');
  t.equal(rx.replay.overStart('alice', 'aaaaaaaaaaaaaaaa', now - 1000, now), 'replay', 'its replay memory is restored');
  t.ok((await over(rx, talker(k2), 'new', now)).ok);
  await stop();
  t.same(warnings(), []);
  const written = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  t.same(written[EPOCH_FIELD], { epoch: 2, since: now });
  // What a gateway from before this change does with the new file: ReplayGuard.restore on all of it.
  const g = new ReplayGuard({ maxSkewMs: 0 });
  t.equal(g.restore(written, now), 2, 'alice and new restored…');
  t.notOk(EPOCH_FIELD in g.snapshot(), '…and the epoch entry is not taken for a sender');
});

t.test('restoring the epoch: malformed, rolled-back and future-dated entries', async (t) => {
  const now = Date.now();
  const rx = receiver();
  for (const junk of [null, 3, 'x', [], {}, { epoch: '2', since: now }, { epoch: 2 }, { epoch: 1.5, since: now }, { epoch: -1, since: now }, { epoch: 2, since: 'x' }, { epoch: 2, since: Infinity }]) {
    t.notOk(rx.restoreEpochInUse(junk, now), `ignored: ${JSON.stringify(junk)}`);
  }
  t.equal(rx.epochInUse(), null);
  t.notOk(rx.restoreEpochInUse({ epoch: 3, since: now - 3_600_000 }, now), 'newer than every key we hold: the configuration was rolled back');
  t.ok((await over(rx, talker(), 'old', now)).ok, 'and epoch 1 still works');

  const future = receiver();
  t.ok(future.restoreEpochInUse({ epoch: 2, since: now + 3_600_000 }, now));
  t.same(future.epochInUse(), { epoch: 2, since: now }, 'a time in our future counts as now');
  t.ok(future.restoreEpochInUse({ epoch: 2, since: now - 5000 }, now), 'the same epoch…');
  t.same(future.epochInUse(), { epoch: 2, since: now - 5000 }, '…keeps the earlier time');
  t.notOk(future.restoreEpochInUse({ epoch: 1, since: now - 99_999 }, now), 'an older epoch than the one known');

  // A saved epoch we hold no key for, but older than our newest key, still retires what is older.
  const skipped = new ChannelCrypto({ channel: 'base', keys: [k1, k2, generateKey(4)], overlapMs: OVERLAP });
  t.ok(skipped.restoreEpochInUse({ epoch: 3, since: now - OVERLAP - 1 }, now));
  t.match(await over(skipped, talker(), 'old', now), { ok: false, reason: 'old-epoch' });

  // Through keepReplayState: a rolled-back configuration is logged.
  const dir = stateDir();
  writeFileSync(path.join(dir, 'replay-base.json'), JSON.stringify({ [EPOCH_FIELD]: { epoch: 9, since: now } }));
  const { log, warnings } = logger();
  const stop = keepReplayState(receiver(), dir, log);
  await stop();
  t.match(warnings(), [{ msg: /ignoring the saved key epoch/ }]);
});
