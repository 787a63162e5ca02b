/**
 * The history database (gateway/src/history/store.ts) on real SQLite (node:sqlite): retention by
 * age and by size, the space given back to the file system, and a full database that stops
 * recording with a state and a count, never an exception.
 */
import t from 'tap';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HistoryStore, type NewOver } from '../../gateway/src/history/store.js';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readWav } from '../../gateway/src/audio/wav.js';
import { createEncoder } from '../../gateway/src/codec/opus-node.js';
import { Codec, encodePacket } from '../../gateway/shared/channel/packet.js';
import { sine } from '../helpers/audio.js';
import { runCli } from '../helpers/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-store-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const DAY = 86_400_000;

function over(stream: number, firstAt: number): NewOver {
  return {
    channel: 'base',
    stream: stream.toString(16).padStart(16, '0'),
    sender: 'ann-1',
    encrypted: false,
    keyEpoch: 0,
    sampleRate: 16000,
    frameMs: 20,
    framesPerPacket: 2,
    startedAt: firstAt,
    firstAt,
    name: 'Ann',
    start: null,
  };
}

/** An over of `packets` packets of 200 bytes, closed complete. */
function record(store: HistoryStore, stream: number, firstAt: number, packets: number): number {
  const id = store.addOver(over(stream, firstAt))!;
  for (let seq = 0; seq < packets; seq++) store.addPacket(id, seq, firstAt + seq * 40, new Uint8Array(200).fill(seq & 0xff));
  store.closeOver(id, true, 'end');
  store.flush(); // as the recorder does at each over's end
  return id;
}

const sql = (s: HistoryStore) => (s as unknown as { db: { exec(q: string): void; prepare(q: string): { get(): Record<string, unknown> } } }).db;

t.test('retention: old overs go, then the oldest until under the size; space goes back', async (t) => {
  const dir = path.join(tmp, 'retention');
  const store = await HistoryStore.open(dir);
  t.teardown(() => store.close());
  const now = Date.now();
  for (let i = 0; i < 10; i++) record(store, i + 1, now - (10 - i) * DAY, 500); // 100 KB each, 10..1 days old
  t.equal(store.bytes, 10 * 500 * 200, 'the bytes stored are counted');
  const before = statSync(path.join(dir, 'history.sqlite')).size + statSync(path.join(dir, 'history.sqlite-wal')).size;

  t.equal(store.enforce({ now, maxAgeMs: 7.5 * DAY, maxBytes: 1e9 }), 3, 'the three older than 7.5 days go');
  t.same(
    store.list('base').map((o) => o.stream.slice(-1)),
    ['a', '9', '8', '7', '6', '5', '4'],
    'the newest stay, newest first',
  );
  t.equal(store.enforce({ now, maxAgeMs: 30 * DAY, maxBytes: 250_000 }), 5, 'then the oldest, until at most 250 KB');
  t.equal(store.bytes, 200_000);
  t.same(
    store.list('base').map((o) => o.stream.slice(-1)),
    ['a', '9'],
  );
  t.equal(store.counters.removed, 8);
  sql(store).exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const after = statSync(path.join(dir, 'history.sqlite')).size;
  t.ok(after < before / 2, `the file shrank (${before} → ${after} bytes)`);
  t.equal(store.packets(store.list('base')[0]!.id).length, 500, "the kept overs' packets are all there");
});

t.test('a full database: recording stops with a state and a count, and resumes when there is room', async (t) => {
  const store = await HistoryStore.open(path.join(tmp, 'full'));
  t.teardown(() => store.close());
  const now = Date.now();
  record(store, 1, now - DAY, 100);
  // SQLite's own limit on the file: the same SQLITE_FULL a full disk gives.
  const pages = Number(sql(store).prepare('PRAGMA page_count').get()!.page_count);
  sql(store).exec(`PRAGMA max_page_count = ${pages + 5}`);
  const id = store.addOver(over(2, now));
  t.ok(id !== null, 'a new over still fits');
  // Committed every 25 packets (a second of speech), as the recorder does.
  for (let seq = 0; seq < 200; seq++) {
    store.addPacket(id!, seq, now + seq * 40, new Uint8Array(200));
    if (seq % 25 === 24) store.flush();
  }
  store.flush();
  const stored = store.counters.packets - 100;
  t.equal(store.state, 'full', 'the store says it is full');
  t.match(store.problem, /full/i, `and why: ${store.problem}`);
  t.ok(stored > 0 && stored < 200, `it stored what fitted (${stored} packets)`);
  t.equal(store.counters.dropped, 200 - stored, 'and counted the rest as dropped');
  t.equal(store.addOver(over(3, now)), null, 'nothing more is written while full');
  // Retention frees the room: recording goes on.
  t.equal(store.enforce({ now, maxAgeMs: 0.5 * DAY, maxBytes: 1e9 }), 1, 'the day-old over goes');
  t.equal(store.state, 'ok', 'and the store writes again');
  t.ok(store.addPacket(id!, 500, now, new Uint8Array(100)), 'a packet is stored');
  store.flush();
  t.equal(store.state, 'ok', 'and committed');
});

t.test('a batch lost to a full disk: the rest of its over is dropped, never written into the next over', async (t) => {
  const store = await HistoryStore.open(path.join(tmp, 'lost'));
  t.teardown(() => store.close());
  const now = Date.now();
  record(store, 1, now - DAY, 100);
  const pages = Number(sql(store).prepare('PRAGMA page_count').get()!.page_count);
  sql(store).exec(`PRAGMA max_page_count = ${pages + 5}`);
  // An over whose first batch does not fit: SQLite rolls the whole batch back, its row included.
  const lost = store.addOver(over(2, now))!;
  for (let seq = 0; seq < 200; seq++) store.addPacket(lost, seq, now + seq * 40, new Uint8Array(200));
  store.flush();
  t.equal(store.state, 'full');
  t.equal(store.enforce({ now, maxAgeMs: 0.5 * DAY, maxBytes: 1e9 }), 1, 'retention makes room');
  const dropped = store.counters.dropped;
  t.notOk(store.addPacket(lost, 200, now, new Uint8Array(200)), "the lost over's later packets are not written");
  t.equal(store.counters.dropped, dropped + 1, 'but counted');
  // The next over may get the lost one's row id: it holds its own packets only.
  const next = store.addOver(over(3, now))!;
  for (let seq = 0; seq < 10; seq++) store.addPacket(next, seq, now + seq * 40, new Uint8Array(200).fill(3));
  store.addPacket(lost, 201, now, new Uint8Array(200));
  store.closeOver(lost, true, 'end');
  store.closeOver(next, true, 'end');
  store.flush();
  const rows = store.list('base');
  t.same(
    rows.map((r) => [r.stream.slice(-1), r.packets, r.complete]),
    [['3', 10, true]],
    'only the next over, whole',
  );
  t.ok(
    store.packets(rows[0]!.id).every((p) => p.data[0] === 3),
    'with its own packets',
  );
});

t.test('complete means whole as stored: a hole makes it incomplete whatever the recorder saw', async (t) => {
  const store = await HistoryStore.open(path.join(tmp, 'hole'));
  t.teardown(() => store.close());
  const h = store.addOver(over(4, Date.now()))!;
  for (const seq of [0, 1, 3]) store.addPacket(h, seq, Date.now(), new Uint8Array(100));
  store.closeOver(h, true, 'end');
  store.flush();
  t.match(store.list('base'), [{ complete: false, packets: 3 }]);
});

t.test('export: a packet no receiver would play (recorded as carried) becomes silence, not a crash', async (t) => {
  const dir = path.join(tmp, 'junk-packet');
  const store = await HistoryStore.open(dir);
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 });
  const now = Date.now();
  const h = store.addOver({ ...over(5, now), framesPerPacket: 1 })!;
  for (let seq = 0; seq < 10; seq++) {
    // Packet 4: a valid header around a frame with no data (a TOC byte alone).
    const frame = seq === 4 ? new Uint8Array([0x08]) : enc.encode(sine(440, 16000, 0.02));
    store.addPacket(h, seq, now, encodePacket({ flags: 0, codec: Codec.OPUS, sampleRate: 16000, frameMs: 20, streamId: '0000000000000005', seq, timestamp: now + seq * 20, keyEpoch: 0 }, [frame]));
  }
  store.closeOver(h, true, 'end');
  store.close();
  const out = path.join(tmp, 'junk-out');
  const r = await runCli(['history', 'export', '--dir', dir, '--out', out]);
  t.equal(r.code, 0, `export exits 0 ${r.stderr}`);
  const [file] = readdirSync(out).filter((f) => f.endsWith('.opus'));
  const wav = path.join(tmp, 'junk.wav');
  const dec = spawnSync('opusdec', ['--quiet', '--rate', '16000', path.join(out, file!), wav], { encoding: 'utf8' });
  t.equal(dec.status, 0, `opusdec decodes it ${dec.stderr}`);
  const ms = ((await readWav(wav)).samples.length / 16) | 0;
  t.ok(Math.abs(ms - 200) <= 10, `all ten packets' time is there, the bad one as silence (${ms} ms)`);
});

t.test('a database from another schema, or not a database, is refused with a clear error', async (t) => {
  const dir = path.join(tmp, 'other');
  const s = await HistoryStore.open(dir);
  sql(s).exec("UPDATE meta SET value = '99' WHERE key = 'schema'");
  s.close();
  await t.rejects(HistoryStore.open(dir), /has history schema 99; this talkbridge reads 1/);
  const junk = path.join(tmp, 'junk');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(junk);
  writeFileSync(path.join(junk, 'history.sqlite'), Buffer.alloc(4096, 0x41));
  await t.rejects(HistoryStore.open(junk), /not a database/, 'a file that is not SQLite');
});
