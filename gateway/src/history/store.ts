/**
 * Where recorded overs live: one SQLite file (node:sqlite, built into Node 22.13 and later — no
 * native module to build or download on a Pi; docs/config.md "history" says why not a binding).
 * Packets are stored exactly as carried, one row each, so an encrypted channel's history is as
 * sealed on disk as it was on the broker.
 *
 * Durability: WAL with synchronous=NORMAL, and writes gathered into one transaction until flush()
 * (the recorder flushes every second and at each over's end). A commit per packet would write a
 * 4 KiB WAL frame for every ~110-byte packet: 100 KB/s onto a kit's SD card for 3 KB/s of speech.
 * A SIGKILL loses at most the last second; a pulled plug at most what the OS had not written;
 * neither the file's consistency. An over cut off that way is closed on the next open ('crash')
 * with what reached the disk. A full disk stops recording (state 'full', counted) and never
 * throws into the caller: talk goes on.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import type { OverFields } from './overs.js';

/** The part of node:sqlite used here (@types/node 20 has no types for it). */
interface Statement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Array<Record<string, unknown>>;
}
interface Database {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  close(): void;
}

/** A user-facing refusal: the CLI prints it as one line, with no stack. */
export class HistoryUnavailable extends UserError {}

/** node:sqlite, or a clear error naming the Node version that has it. */
async function openDatabase(file: string, readOnly: boolean): Promise<Database> {
  const name = 'node:sqlite';
  let mod: { DatabaseSync: new (file: string, o?: { readOnly?: boolean }) => Database };
  try {
    mod = (await import(name)) as typeof mod;
  } catch {
    throw new HistoryUnavailable(`history needs Node.js 22.13 or later (node:sqlite); this is ${process.version}. README, "Node on a Raspberry Pi", says how to get it`);
  }
  return new mod.DatabaseSync(file, { readOnly });
}

export interface OverRow extends OverFields {
  id: number;
  closed: boolean;
  complete: boolean;
  closeReason: string | null;
}

export type NewOver = Pick<OverRow, 'channel' | 'stream' | 'sender' | 'encrypted' | 'keyEpoch' | 'sampleRate' | 'frameMs' | 'framesPerPacket' | 'startedAt' | 'firstAt' | 'name' | 'start'>;

export type StoreState = 'ok' | 'full' | 'error';

const SCHEMA = 1;
const RECENTLY_CLOSED = 256;

export class HistoryStore {
  state: StoreState = 'ok';
  /** Why the last write failed, while state is not 'ok'. */
  problem: string | null = null;
  readonly counters = { overs: 0, packets: 0, bytes: 0, dropped: 0, removed: 0 };
  /** Bytes of packets stored, kept as they are written and removed. */
  private stored = 0;
  private inTx = false;
  /** What was written since the last commit: counted once committed. */
  private batch = { packets: 0, bytes: 0, overs: [] as number[] };
  /** Open overs: handle → row id (the recorder closes each, so it holds the open ones only). */
  private readonly rows = new Map<number, number>();
  /** Overs closed lately, for their END (bounded). */
  private readonly closedRows = new Map<number, number>();
  private nextHandle = 1;
  private readonly q: Record<string, Statement>;

  private constructor(
    private readonly db: Database,
    readonly file: string,
  ) {
    this.q = {
      insertOver: db.prepare(
        `INSERT OR IGNORE INTO overs (channel, stream, sender, encrypted, key_epoch, sample_rate, frame_ms, frames_per_packet, started_at, first_at, last_at, name, start_msg)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      overId: db.prepare('SELECT id FROM overs WHERE channel = ? AND stream = ?'),
      insertPacket: db.prepare('INSERT OR IGNORE INTO packets (over, seq, at, data) VALUES (?, ?, ?, ?)'),
      setStart: db.prepare('UPDATE overs SET start_msg = ?, name = ? WHERE id = ?'),
      setEnd: db.prepare('UPDATE overs SET end_msg = ? WHERE id = ?'),
      close: db.prepare(
        // Complete only if what is stored is whole too: a batch lost to a full disk leaves a hole.
        `UPDATE overs SET closed = 1, close_reason = ?2,
           complete = ?1 AND (SELECT count(*) FROM packets WHERE over = overs.id) = (SELECT coalesce(max(seq), -1) + 1 FROM packets WHERE over = overs.id),
           packets = (SELECT count(*) FROM packets WHERE over = overs.id),
           bytes = (SELECT coalesce(sum(length(data)), 0) FROM packets WHERE over = overs.id),
           last_at = coalesce((SELECT max(at) FROM packets WHERE over = overs.id), last_at)
         WHERE id = ?3`,
      ),
      list: db.prepare('SELECT * FROM overs WHERE (channel = ?1 OR ?1 IS NULL) AND started_at >= ?2 ORDER BY first_at DESC, id DESC LIMIT ?3'),
      packets: db.prepare('SELECT seq, at, data FROM packets WHERE over = ? ORDER BY seq'),
      oldest: db.prepare('SELECT id, bytes FROM overs WHERE closed = 1 ORDER BY first_at, id LIMIT 1'),
      expired: db.prepare('SELECT id, bytes FROM overs WHERE closed = 1 AND last_at < ? ORDER BY first_at LIMIT 100'),
      deletePackets: db.prepare('DELETE FROM packets WHERE over = ?'),
      deleteOver: db.prepare('DELETE FROM overs WHERE id = ?'),
      total: db.prepare('SELECT coalesce(sum(bytes), 0) AS b FROM overs'),
    };
    this.stored = Number(this.q.total!.get()!.b);
  }

  /**
   * `readOnly`: for a reader beside a running recorder (`talkbridge history`): nothing is created
   * or repaired, and overs still being recorded stay open.
   */
  static async open(dir: string, o: { readOnly?: boolean } = {}): Promise<HistoryStore> {
    const file = path.join(dir, 'history.sqlite');
    if (o.readOnly) {
      if (!existsSync(file)) throw new HistoryUnavailable(`no history in ${dir} (no history.sqlite: is this the recorder's history.dir?)`);
      const db = await openDatabase(file, true);
      try {
        db.exec('PRAGMA busy_timeout = 2000');
        checkSchema(db, file);
        return new HistoryStore(db, file);
      } catch (err) {
        db.close();
        if (err instanceof HistoryUnavailable) throw err;
        throw new HistoryUnavailable(`history: cannot read ${file}: ${(err as Error).message}`);
      }
    }
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    const db = await openDatabase(file, false);
    try {
      // auto_vacuum works only if set before the first table: removed overs give their space back.
      db.exec('PRAGMA auto_vacuum = INCREMENTAL');
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('PRAGMA busy_timeout = 2000');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS overs (
          id INTEGER PRIMARY KEY,
          channel TEXT NOT NULL, stream TEXT NOT NULL, sender TEXT NOT NULL,
          encrypted INTEGER NOT NULL, key_epoch INTEGER NOT NULL,
          sample_rate INTEGER NOT NULL, frame_ms REAL NOT NULL, frames_per_packet INTEGER NOT NULL,
          started_at INTEGER NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL,
          packets INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
          name TEXT, start_msg BLOB, end_msg BLOB,
          closed INTEGER NOT NULL DEFAULT 0, complete INTEGER NOT NULL DEFAULT 0, close_reason TEXT,
          UNIQUE (channel, stream)
        );
        CREATE INDEX IF NOT EXISTS overs_by_time ON overs (channel, first_at);
        CREATE TABLE IF NOT EXISTS packets (
          over INTEGER NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, data BLOB NOT NULL,
          PRIMARY KEY (over, seq)
        ) WITHOUT ROWID;
      `);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA));
      checkSchema(db, file);
      // Overs a crash or power loss cut off: closed with what reached the disk.
      const cut = db.prepare('SELECT id FROM overs WHERE closed = 0').all();
      const store = new HistoryStore(db, file);
      for (const r of cut) store.q.close!.run(0, 'crash', Number(r.id));
      store.stored = Number(store.q.total!.get()!.b);
      return store;
    } catch (err) {
      db.close();
      if (err instanceof HistoryUnavailable) throw err;
      throw new HistoryUnavailable(`history: cannot use ${file}: ${(err as Error).message}`);
    }
  }

  /** Bytes of packets stored (committed). */
  get bytes(): number {
    return this.stored;
  }

  /**
   * A handle for the new over (not its row id: a failed commit can hand that id to another over),
   * or null when nothing can be written now.
   */
  addOver(o: NewOver): number | null {
    return this.write(() => {
      this.q.insertOver!.run(o.channel, o.stream, o.sender, o.encrypted ? 1 : 0, o.keyEpoch, o.sampleRate, o.frameMs, o.framesPerPacket, o.startedAt, o.firstAt, o.firstAt, o.name, o.start);
      const handle = this.nextHandle++;
      this.rows.set(handle, Number(this.q.overId!.get(o.channel, o.stream)!.id));
      this.batch.overs.push(handle);
      return handle;
    });
  }

  addPacket(over: number, seq: number, at: number, data: Uint8Array): boolean {
    const id = this.rows.get(over);
    if (id === undefined) return (this.counters.dropped++, false);
    return (
      this.write(() => {
        if (Number(this.q.insertPacket!.run(id, seq, at, data).changes) === 0) return false;
        this.batch.packets++;
        this.batch.bytes += data.length;
        return true;
      }) ?? (this.counters.dropped++, false)
    );
  }

  setStart(over: number, data: Uint8Array, name: string | null): void {
    const id = this.rows.get(over);
    if (id !== undefined) this.write(() => this.q.setStart!.run(data, name, id));
  }

  /** END follows the last packet, so it may come for an over closed just before. */
  setEnd(over: number, data: Uint8Array): void {
    const id = this.rows.get(over) ?? this.closedRows.get(over);
    if (id !== undefined) this.write(() => this.q.setEnd!.run(data, id));
  }

  closeOver(over: number, complete: boolean, reason: string): void {
    const id = this.rows.get(over);
    if (id === undefined) return;
    this.rows.delete(over);
    this.closedRows.set(over, id);
    if (this.closedRows.size > RECENTLY_CLOSED) this.closedRows.delete(this.closedRows.keys().next().value!);
    this.write(() => this.q.close!.run(complete ? 1 : 0, reason, id));
  }

  /** Newest first; `channel` null = every channel; `since` compares with the over's start. */
  list(channel: string | null, o: { since?: number; limit?: number } = {}): OverRow[] {
    return this.q.list!.all(channel, o.since ?? 0, Math.min(Math.max(o.limit ?? 50, 1), 500)).map(row);
  }

  packets(id: number): Array<{ seq: number; at: number; data: Uint8Array }> {
    return this.q.packets!.all(id).map((r) => ({ seq: Number(r.seq), at: Number(r.at), data: r.data as Uint8Array }));
  }

  /**
   * Removes closed overs older than `maxAgeMs`, then the oldest until at most `maxBytes` are
   * stored, and gives the space back to the file system. Returns how many overs went.
   */
  enforce(o: { now: number; maxAgeMs: number; maxBytes: number }): number {
    this.flush();
    let removed = 0;
    const drop = (id: number, bytes: number) => {
      this.q.deletePackets!.run(id);
      this.q.deleteOver!.run(id);
      this.stored -= bytes;
      removed++;
    };
    try {
      for (let batch = this.q.expired!.all(o.now - o.maxAgeMs); batch.length; batch = this.q.expired!.all(o.now - o.maxAgeMs)) for (const r of batch) drop(Number(r.id), Number(r.bytes));
      while (this.stored > o.maxBytes) {
        const r = this.q.oldest!.get();
        if (!r) break;
        drop(Number(r.id), Number(r.bytes));
      }
      if (removed) this.db.exec('PRAGMA incremental_vacuum');
    } catch (err) {
      this.fail(err);
    }
    this.counters.removed += removed;
    // Space freed: a store stopped by a full disk may write again.
    if (removed && this.state === 'full') (this.state = 'ok'), (this.problem = null);
    return removed;
  }

  close(): void {
    this.flush();
    try {
      this.db.close();
    } catch {
      /* already closed */
    }
  }

  /** Commits what was written since the last flush. */
  flush(): void {
    if (!this.inTx) return;
    this.inTx = false;
    const { packets, bytes, overs } = this.batch;
    this.batch = { packets: 0, bytes: 0, overs: [] };
    try {
      this.db.exec('COMMIT');
      this.counters.overs += overs.length;
      this.counters.packets += packets;
      this.counters.bytes += bytes;
      this.stored += bytes;
    } catch (err) {
      // The whole batch is gone: counted as dropped, as a packet refused for want of space is.
      // Overs it opened are gone too: the rest of each is dropped, counted, never written under a
      // row id SQLite may give to the next over.
      this.counters.dropped += packets;
      for (const handle of overs) this.rows.delete(handle), this.closedRows.delete(handle);
      // SQLite rolls a transaction back by itself on some errors (a full disk among them): then
      // there was nothing to commit, and the error that did it has been recorded already.
      if (/no transaction is active/.test((err as Error).message)) return;
      this.fail(err);
      this.rollback();
    }
  }

  /** Runs a write inside the open batch; on failure records why and returns null, so recording never breaks talk. */
  private write<T>(fn: () => T): T | null {
    if (this.state !== 'ok') return null;
    try {
      if (!this.inTx) {
        this.db.exec('BEGIN');
        this.inTx = true;
      }
      return fn();
    } catch (err) {
      this.fail(err);
      // What the batch held before the failure is kept; the failing statement itself was undone.
      this.flush();
      return null;
    }
  }

  private rollback(): void {
    try {
      this.db.exec('ROLLBACK');
    } catch {
      /* SQLite already rolled it back */
    }
  }

  private fail(err: unknown): void {
    const e = err as { errcode?: number; message?: string };
    // SQLITE_FULL (13), and the I/O error a full disk gives on some file systems.
    this.state = e.errcode === 13 || /full|ENOSPC/i.test(e.message ?? '') ? 'full' : 'error';
    this.problem = e.message ?? String(err);
  }

  /** After a full disk: try writing again (retention may not be what freed the space). */
  retry(): void {
    if (this.state === 'full') (this.state = 'ok'), (this.problem = null);
  }
}

function checkSchema(db: Database, file: string): void {
  const v = db.prepare("SELECT value FROM meta WHERE key = 'schema'").get();
  if (Number(v?.value) !== SCHEMA) throw new HistoryUnavailable(`${file} has history schema ${v?.value ?? 'none'}; this talkbridge reads ${SCHEMA}`);
}

function row(r: Record<string, unknown>): OverRow {
  return {
    id: Number(r.id),
    channel: String(r.channel),
    stream: String(r.stream),
    sender: String(r.sender),
    encrypted: Number(r.encrypted) === 1,
    keyEpoch: Number(r.key_epoch),
    sampleRate: Number(r.sample_rate),
    frameMs: Number(r.frame_ms),
    framesPerPacket: Number(r.frames_per_packet),
    startedAt: Number(r.started_at),
    firstAt: Number(r.first_at),
    lastAt: Number(r.last_at),
    packets: Number(r.packets),
    bytes: Number(r.bytes),
    name: r.name === null ? null : String(r.name),
    start: (r.start_msg as Uint8Array | null) ?? null,
    end: (r.end_msg as Uint8Array | null) ?? null,
    closed: Number(r.closed) === 1,
    complete: Number(r.complete) === 1,
    closeReason: r.close_reason === null ? null : String(r.close_reason),
  };
}
