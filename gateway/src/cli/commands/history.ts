import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OggOpusWriter } from '../../audio/ogg-opus.js';
import { createEncoder } from '../../codec/opus-node.js';
import { decodePacket } from '../../../shared/channel/packet.js';
import { frameProblem } from '../../../shared/codec/codec.js';
import { normalizeChannel } from '../../../shared/channel/topics.js';
import { HistoryStore, type OverRow } from '../../history/store.js';
import { type Command, UsageError, intFlag } from '../command.js';
import { safeText } from '../terminal.js';

/** `--since`: an ISO date and time, or how long ago (`30m`, `2h`, `7d`). */
export function parseSince(text: string, now = Date.now()): number {
  const rel = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(text.trim());
  if (rel) return now - Number(rel[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new UsageError(`--since: "${safeText(text.slice(0, 40))}" is neither a date and time (2026-12-08T09:30) nor a time ago (30m, 2h, 7d)`);
  return t;
}

/** Seconds of audio the over's stored packets hold. */
const seconds = (o: OverRow) => (o.packets * o.framesPerPacket * o.frameMs) / 1000;
/** A name from the network, as a file name part. */
const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 32) || 'unknown';

function asJson(o: OverRow) {
  return {
    channel: o.channel,
    stream: o.stream,
    talker: o.name,
    sender: o.sender,
    start: new Date(o.startedAt).toISOString(),
    received: new Date(o.firstAt).toISOString(),
    durationSeconds: Number(seconds(o).toFixed(2)),
    complete: o.complete,
    recording: !o.closed,
    encrypted: o.encrypted,
    packets: o.packets,
  };
}

function line(o: OverRow): string {
  const when = new Date(o.startedAt)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  const who = o.name ? `${safeText(o.name)} (${o.sender})` : o.sender;
  const state = !o.closed ? 'recording' : o.complete ? 'complete' : `INCOMPLETE (${o.closeReason})`;
  return `${when}  ${o.channel}  ${who}  ${seconds(o).toFixed(1)} s  ${state}${o.encrypted ? '  sealed' : ''}`;
}

/** The packet's Opus frames, or null if its body or any frame is not one libopus would play. */
function playable(data: Uint8Array, frameMs: number): Uint8Array[] | null {
  try {
    const frames = decodePacket(data).frames;
    return frames.every((f) => frameProblem(f, 48000, frameMs * 48) === null) ? frames : null;
  } catch {
    return null;
  }
}

/** Writes one clear over as Ogg Opus; a missing packet becomes silence of its length. */
async function exportOver(store: HistoryStore, o: OverRow, file: string, silence: (rate: number, frameMs: number) => Promise<Uint8Array>): Promise<void> {
  const w = new OggOpusWriter({
    inputSampleRate: o.sampleRate,
    frameMs: o.frameMs,
    silenceFrame: await silence(o.sampleRate, o.frameMs),
    comments: { TITLE: `${o.channel} ${new Date(o.startedAt).toISOString()}`, ARTIST: o.name ?? o.sender, DATE: new Date(o.startedAt).toISOString() },
  });
  const parts = [w.header()];
  let next = 0;
  for (const p of store.packets(o.id)) {
    // A recorder keeps what was carried, junk from a hostile member included: what no receiver
    // would play becomes silence, like a lost packet.
    if (p.seq > next) parts.push(w.gap((p.seq - next) * o.framesPerPacket));
    next = p.seq + 1;
    const frames = playable(p.data, o.frameMs);
    if (frames) for (const f of frames) parts.push(w.frame(f));
    else parts.push(w.gap(o.framesPerPacket));
  }
  parts.push(w.end());
  writeFileSync(file, Buffer.concat(parts));
}

export const history: Command = {
  name: 'history',
  summary: "List or export the overs a recorder stored (the gateway's history.dir), on the machine that holds them.",
  usage: 'history list|export --dir DIR [--channel NAME] [--since TIME] [--limit N] [--json] [--out DIR]',
  details:
    'list: one line per over, newest first (--json: one JSON object per line).\n' +
    'export --out DIR: each over as an Ogg Opus file (plays in any player; opusdec decodes it) and a\n' +
    'JSON sidecar beside it. Overs of an encrypted channel are stored sealed and are listed without\n' +
    'a name; exporting them needs the channel key, which this version cannot use yet: they are\n' +
    'skipped and counted. Reading over the broker (--broker) is still to come (issue #19).',
  positionals: [1, 1],
  flags: {
    dir: { type: 'string', arg: 'DIR', help: "the recorder's history.dir" },
    channel: { type: 'string', arg: 'NAME', help: 'only this channel' },
    since: { type: 'string', arg: 'TIME', help: 'overs that started since: 2026-12-08T09:30, or 30m, 2h, 7d ago' },
    limit: { type: 'string', arg: 'N', help: 'at most N overs, newest first', default: '50' },
    json: { type: 'boolean', help: 'list: one JSON object per line' },
    out: { type: 'string', arg: 'DIR', help: 'export: where the .opus and .json files go' },
  },
  async run(flags, [verb]) {
    if (verb !== 'list' && verb !== 'export') throw new UsageError(`unknown history command "${safeText(String(verb).slice(0, 20))}": list or export`);
    if (typeof flags.dir !== 'string') throw new UsageError("--dir is required (the recorder's history.dir)");
    if (verb === 'export' && typeof flags.out !== 'string') throw new UsageError('export needs --out DIR');
    const limit = intFlag(flags, 'limit', 1, 500) ?? 50;
    const since = typeof flags.since === 'string' ? parseSince(flags.since) : 0;
    const channel = typeof flags.channel === 'string' ? normalizeChannel(flags.channel) : null;
    const store = await HistoryStore.open(flags.dir, { readOnly: true });
    try {
      const overs = store.list(channel, { since, limit });
      if (verb === 'list') {
        for (const o of overs) process.stdout.write(`${flags.json ? JSON.stringify(asJson(o)) : line(o)}\n`);
        if (!flags.json && overs.length === 0) process.stderr.write('no overs\n');
        return 0;
      }
      const out = flags.out as string;
      mkdirSync(out, { recursive: true });
      const silences = new Map<string, Uint8Array>();
      const silence = async (rate: number, frameMs: number) => {
        const k = `${rate}/${frameMs}`;
        let f = silences.get(k);
        if (!f) {
          const enc = await createEncoder({ sampleRate: rate as 16000, frameMs: frameMs as 20, bitrate: 16000, complexity: 9 });
          f = enc.encode(new Int16Array(enc.frameSamples));
          silences.set(k, f);
        }
        return f;
      };
      let written = 0;
      let sealed = 0;
      for (const o of overs) {
        if (o.encrypted) {
          sealed++;
          continue;
        }
        const stamp = new Date(o.startedAt)
          .toISOString()
          .replace(/[-:]/g, '')
          .replace(/\.\d+Z$/, 'Z');
        const base = path.join(out, `${stamp}-${o.channel}-${slug(o.name ?? o.sender)}-${o.stream.slice(0, 8)}`);
        await exportOver(store, o, `${base}.opus`, silence);
        writeFileSync(`${base}.json`, `${JSON.stringify(asJson(o), null, 2)}\n`);
        process.stdout.write(`${base}.opus  ${line(o)}\n`);
        written++;
      }
      process.stderr.write(`${written} over(s) exported to ${out}${sealed ? `; ${sealed} sealed over(s) skipped: exporting an encrypted channel needs its key, not supported yet` : ''}\n`);
      return 0;
    } finally {
      store.close();
    }
  },
};
