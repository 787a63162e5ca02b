/**
 * The history recorder as users run it: `talkbridge run` with `history: {dir}` beside a real
 * Mosquitto, hearing `talkbridge send` (real Opus, real speech). What it stores is checked by
 * opening the database itself: every over exactly as carried; sealed on an encrypted channel,
 * with no plaintext in the file; a SIGKILL mid-over leaves the database intact and the over up
 * to its last committed second.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readWav } from '../../gateway/src/audio/wav.js';
import { HistoryStore } from '../../gateway/src/history/store.js';
import { decodePacket, Flag } from '../../gateway/shared/channel/packet.js';
import { createEncoder, decoderFactory } from '../../gateway/src/codec/opus-node.js';
import { toFrames } from '../../gateway/src/talk/send.js';
import { envelopeCorrelation } from '../helpers/audio.js';
import { freePort, startMosquitto } from '../helpers/brokers.js';
import { FIXTURES, runCli, startCli } from '../helpers/cli.js';

const SPEECH = path.join(FIXTURES, 'speech-16k.wav');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tb-history-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

async function recorderDaemon(t: Test, broker: string, dir: string, channels: string[], httpPort?: number) {
  const conf = path.join(tmp, `recorder-${path.basename(dir)}.yaml`);
  writeFileSync(
    conf,
    [
      'gateway: {id: recorder, name: Recorder}',
      `broker: {url: "${broker}"}`,
      'embeddedBroker: {enabled: false}',
      httpPort ? `http: {port: ${httpPort}}` : 'http: {enabled: false}',
      `channels: [${channels.map((c) => `{name: ${c}}`).join(', ')}]`,
      `history: {dir: "${dir}"}`,
    ].join('\n'),
  );
  const d = startCli(['run', '--config', conf]);
  t.teardown(() => void d.proc.kill('SIGKILL'));
  await d.waitFor(/"event":"ready"/, 15000);
  return d;
}

/** The database file and its WAL, as bytes. */
function fileBytes(dir: string): Buffer {
  return Buffer.concat(
    ['history.sqlite', 'history.sqlite-wal'].map((f) => {
      try {
        return readFileSync(path.join(dir, f));
      } catch {
        return Buffer.alloc(0);
      }
    }),
  );
}

/** How many of the speech's Opus frames, as `talkbridge send` encodes them, appear in `bytes`. */
async function clearFramesIn(bytes: Buffer): Promise<{ found: number; of: number }> {
  const ref = await readWav(SPEECH);
  const enc = await createEncoder({ sampleRate: 16000, frameMs: 20, bitrate: 16000, complexity: 9 });
  const frames = toFrames(ref.samples, enc.frameSamples, 1).map((f) => enc.encode(f));
  return { found: frames.filter((f) => f.length >= 16 && bytes.includes(Buffer.from(f.subarray(0, 16)))).length, of: frames.length };
}

/** The stored over's speech, decoded with real Opus: 16 kHz PCM. */
async function decodeOver(store: HistoryStore, id: number): Promise<Int16Array> {
  const dec = (await decoderFactory())({ sampleRate: 16000, frameMs: 20 });
  const out: Int16Array[] = [];
  for (const p of store.packets(id)) for (const f of decodePacket(p.data).frames) out.push(dec.decode(f));
  const all = new Int16Array(out.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of out) all.set(x, (o += x.length) - x.length);
  return all;
}

t.test('a clear over: recorded whole, exactly as carried, and decodes to the speech', async (t) => {
  const mosq = await startMosquitto();
  t.teardown(() => mosq.stop());
  const dir = path.join(tmp, 'clear');
  const httpPort = await freePort();
  const d = await recorderDaemon(t, mosq.url, dir, ['base'], httpPort);
  const sent = await runCli(['send', '--broker', mosq.url, '--channel', 'base', '--name', 'Ranger', SPEECH]);
  t.equal(sent.code, 0, sent.stderr);
  await new Promise((r) => setTimeout(r, 300));
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  t.match(metrics, /talkbridge_history_state\{[^}]*state="ok"[^}]*\} 1/, '/metrics: recording');
  t.match(metrics, /talkbridge_history_recorded_total\{[^}]*what="overs"[^}]*\} 1\n/, '/metrics: one over recorded');
  t.match(metrics, /talkbridge_history_stored_bytes\{[^}]*\} [1-9]\d{3,}/, '/metrics: the bytes stored');
  d.proc.kill('SIGTERM');
  t.equal((await d.result).code, 0, 'the recorder stops cleanly');

  const store = await HistoryStore.open(dir);
  t.teardown(() => store.close());
  const [over, ...more] = store.list('base');
  t.equal(more.length, 0, 'one over');
  t.match(over, { channel: 'base', name: 'Ranger', encrypted: false, closed: true, complete: true, closeReason: 'end' }, 'named, closed, complete');
  const packets = store.packets(over!.id);
  t.equal(packets.length, over!.packets, 'the row counts its packets');
  t.same(
    packets.map((p) => p.seq),
    Array.from({ length: packets.length }, (_, i) => i),
    'every seq from 0, none missing',
  );
  t.ok((packets.at(-1)!.data[1]! & Flag.END) !== 0, 'the last one is the END packet');
  const ref = await readWav(SPEECH);
  const r = envelopeCorrelation(ref.samples, ref.sampleRate, await decodeOver(store, over!.id), 16000);
  t.ok(r.r >= 0.9, `the stored packets decode to the speech (envelope correlation ${r.r.toFixed(3)})`);
  const wire = packets.reduce((n, p) => n + p.data.length, 0);
  t.equal(over!.bytes, wire, `bytes stored = bytes carried (${wire})`);
  store.close();

  // The CLI beside it: list, and export as Ogg Opus that the real opusdec decodes to the speech.
  const listed = await runCli(['history', 'list', '--dir', dir, '--json']);
  t.equal(listed.code, 0, listed.stderr);
  const rows = listed.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.match(rows, [{ channel: 'base', talker: 'Ranger', complete: true, encrypted: false }], 'history list --json: one line per over');
  t.ok(Math.abs(rows[0].durationSeconds - ref.samples.length / ref.sampleRate) < 0.1, `its duration (${rows[0].durationSeconds} s)`);
  const out = path.join(tmp, 'export');
  const exported = await runCli(['history', 'export', '--dir', dir, '--channel', 'base', '--since', '1h', '--out', out]);
  t.equal(exported.code, 0, exported.stderr);
  const opus = readdirSync(out).filter((f) => f.endsWith('.opus'));
  t.equal(opus.length, 1, `one file: ${opus[0]}`);
  t.match(opus[0], /^\d{8}T\d{6}Z-base-ranger-[0-9a-f]{8}\.opus$/, 'named by time, channel and talker');
  t.match(JSON.parse(readFileSync(path.join(out, opus[0]!.replace(/\.opus$/, '.json')), 'utf8')), { talker: 'Ranger', channel: 'base', complete: true }, 'with a JSON sidecar');
  const wav = path.join(tmp, 'exported.wav');
  const dec = spawnSync('opusdec', ['--quiet', '--rate', '16000', path.join(out, opus[0]!), wav], { encoding: 'utf8' });
  t.equal(dec.status, 0, `opusdec decodes it ${dec.stderr}`);
  const got = await readWav(wav);
  const e = envelopeCorrelation(ref.samples, ref.sampleRate, got.samples, got.sampleRate);
  t.ok(e.r >= 0.9, `the exported file is the speech (envelope correlation ${e.r.toFixed(3)})`);
  // The check the encrypted test relies on finds the frames where they are in clear.
  const c = await clearFramesIn(fileBytes(dir));
  t.ok(c.found > c.of * 0.8, `the clear channel's file holds its Opus frames (${c.found} of ${c.of})`);
});

t.test('an encrypted channel: stored sealed, no speech and no name in the file', async (t) => {
  const mosq = await startMosquitto();
  t.teardown(() => mosq.stop());
  const made = await runCli(['channel', 'new', 'ops', '--no-qr']);
  const key = /key: "(\d+\.[A-Za-z0-9_-]{43})"/.exec(made.stdout)?.[1];
  t.ok(key, 'a channel key');
  const dir = path.join(tmp, 'sealed');
  // The recorder has no key: it is configured with the channel only.
  const d = await recorderDaemon(t, mosq.url, dir, ['ops']);
  const sent = await runCli(['send', '--broker', mosq.url, '--channel', 'ops', '--key', key!, '--name', 'Secret Squirrel', SPEECH]);
  t.equal(sent.code, 0, sent.stderr);
  await new Promise((r) => setTimeout(r, 300));
  d.proc.kill('SIGTERM');
  await d.result;

  const store = await HistoryStore.open(dir);
  t.teardown(() => store.close());
  const [over] = store.list('ops');
  t.match(over, { encrypted: true, name: null, complete: true }, 'recorded, sealed, with no name');
  t.ok(over!.start?.[0] === 0xe1 && over!.end?.[0] === 0xe1, 'START and END kept sealed');
  const packets = store.packets(over!.id);
  t.ok(
    packets.every((p) => (p.data[1]! & Flag.ENCRYPTED) !== 0),
    `all ${packets.length} packets sealed`,
  );
  store.close();
  // The whole file, WAL included, holds neither the name nor any of the speech's Opus frames.
  const bytes = fileBytes(dir);
  t.notOk(bytes.includes(Buffer.from('Secret Squirrel')), 'no talker name in the file');
  const c = await clearFramesIn(bytes);
  t.equal(c.found, 0, `none of ${c.of} clear Opus frames of the speech in the file`);
  const listed = await runCli(['history', 'list', '--dir', dir]);
  t.match(listed.stdout, /ops {2}recorder-|ops {2}\S+ {2}[\d.]+ s {2}complete {2}sealed/, `listed as sealed, with no name: ${listed.stdout.trim()}`);
  t.notMatch(listed.stdout, /Squirrel/);
  const exported = await runCli(['history', 'export', '--dir', dir, '--out', path.join(tmp, 'sealed-out')]);
  t.equal(exported.code, 0);
  t.match(exported.stderr, /0 over\(s\) exported .*1 sealed over\(s\) skipped/, 'a sealed over is not exported without its key, and that is said');
});

t.test('SIGKILL mid-over: the database is intact and keeps the over up to its last packet', async (t) => {
  const mosq = await startMosquitto();
  t.teardown(() => mosq.stop());
  const dir = path.join(tmp, 'killed');
  const d = await recorderDaemon(t, mosq.url, dir, ['base']);
  const send = startCli(['send', '--broker', mosq.url, '--channel', 'base', '--name', 'Cut', SPEECH]);
  t.teardown(() => void send.proc.kill('SIGKILL'));
  await d.waitFor(/"event":"over-start"/, 10000);
  await new Promise((r) => setTimeout(r, 2000));
  d.proc.kill('SIGKILL');
  await d.result;
  await send.result;

  const store = await HistoryStore.open(dir);
  t.teardown(() => store.close());
  const [over] = store.list('base');
  t.ok(over, 'the over is there');
  t.match(over, { closed: true, complete: false, closeReason: 'crash' }, 'closed on reopening as cut off');
  const packets = store.packets(over!.id);
  // Writes are committed once a second: 2 s in, at least the first second is on disk.
  t.ok(packets.length >= 20, `it kept what was committed before the kill (${packets.length} packets, ~${packets.length * 40} ms of 2 s)`);
  t.same(
    packets.map((p) => p.seq),
    Array.from({ length: packets.length }, (_, i) => i),
    'from the start, with no hole',
  );
  const integrity = (store as unknown as { db: { prepare(s: string): { get(): Record<string, unknown> } } }).db.prepare('PRAGMA integrity_check').get();
  t.same(integrity, { integrity_check: 'ok' }, 'SQLite finds the file intact');
});
