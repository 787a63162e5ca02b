import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_PREFIX } from '../../../shared/channel/topics.js';
import type { OverReport } from '../../../shared/channel/session.js';
import { writeWav } from '../../audio/wav.js';
import { openChannel } from '../../talk/open.js';
import { brokerOf } from '../../net/failover.js';
import { redactUrl } from '../../net/redact.js';
import { safeText } from '../terminal.js';
import { type Command, UsageError, intFlag, numFlag, urlsFlag } from '../command.js';
import { applyInvite, channelArg, connectionFromFlags, channelFlag, authFlags, commonFlags, connectFlags, cryptoFromFlags, explainCryptoDrops, keyFlags, prefixFlag } from './shared.js';

export function overLine(n: number, r: OverReport, file: string | null): string {
  const s = r.stats;
  return (
    // The talker's name and source come from the network: no terminal controls get through.
    `over ${n}: ${safeText(r.name)} (${safeText(String(r.source))}) ${(r.durationMs / 1000).toFixed(2)} s, ` +
    `packets ${s.received} received / ${s.lost} lost / ${s.late} late, ${s.concealed} frames concealed` +
    `${r.reason !== 'done' ? `, ended: ${r.reason}` : ''}${file ? ` -> ${file}` : ''}`
  );
}

export const listen: Command = {
  name: 'listen',
  summary: 'Receive overs from a talk channel and write each as a 16-bit mono WAV file.',
  usage: 'listen --broker URL[,URL…] --channel NAME --out PATH [--overs N] [--timeout SECONDS]',
  details:
    'With --overs 1, PATH is the .wav file to write; otherwise PATH is a folder that receives one file per\n' +
    'over (001-NAME.wav, 002-…). One line per over is printed: talker, duration, packets received / lost /\n' +
    'late and frames concealed. Exits after N overs (exit 0) or when the timeout passes (exit 4 if fewer\n' +
    'overs arrived).',
  positionals: [0, 0],
  flags: {
    ...connectFlags,
    ...authFlags,
    ...channelFlag,
    out: { type: 'string', short: 'o', arg: 'PATH', help: 'WAV file (--overs 1) or folder for the overs' },
    overs: { type: 'string', arg: 'N', help: 'stop after N overs (0 = no limit)', default: '1' },
    timeout: { type: 'string', arg: 'SECONDS', help: 'stop after this long (0 = never)', default: '0' },
    name: { type: 'string', short: 'n', arg: 'NAME', help: 'name shown in presence', default: 'talkbridge-listener' },
    latency: { type: 'boolean', help: 'also print per-packet capture-to-playout latency (p50/p95/max)' },
    ...keyFlags,
    ...prefixFlag,
    ...commonFlags,
  },
  async run(flags) {
    applyInvite(flags);
    const url = urlsFlag(flags, 'broker');
    const channel = channelArg(flags);
    const overs = intFlag(flags, 'overs', 0, 1_000_000)!;
    const timeout = numFlag(flags, 'timeout', 0, 1e7)!;
    if (typeof flags.out !== 'string' || flags.out === '') throw new UsageError('--out is required');
    const out = flags.out;
    const single = overs === 1;
    if (single) {
      if (!out.toLowerCase().endsWith('.wav')) throw new UsageError('--out must name a .wav file when --overs is 1');
      const st = await stat(path.dirname(path.resolve(out))).catch(() => null);
      if (!st?.isDirectory()) throw new UsageError(`--out: folder ${path.dirname(out)} does not exist`);
    } else {
      await mkdir(out, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`--out: cannot create folder ${out}: ${err.code}`);
      });
    }
    const crypto = await cryptoFromFlags(flags, channel);
    const ch = await openChannel({
      url,
      connection: connectionFromFlags(flags),
      prefix: String(flags.prefix ?? DEFAULT_PREFIX),
      channel,
      name: String(flags.name),
      source: 'cli',
      silenceMs: 1000,
      crypto,
    });
    const quiet = Boolean(flags.quiet);
    explainCryptoDrops(ch.session, (l) => process.stderr.write(l));
    if (!quiet) process.stderr.write(`listening on channel ${channel} at ${redactUrl(brokerOf(ch.client))}${crypto ? ' (end-to-end encrypted)' : ''} (Ctrl-C to stop)\n`);
    let onBroker = redactUrl(brokerOf(ch.client));
    ch.client.on('offline', () => quiet || process.stderr.write(`talkbridge: lost broker ${onBroker}, reconnecting${url.length > 1 ? ` (${url.length} brokers)` : ''}\n`));
    ch.client.on('connect', () => {
      const now = redactUrl(brokerOf(ch.client));
      if (!quiet) process.stderr.write(now !== onBroker ? `talkbridge: switched to broker ${now}\n` : `talkbridge: back on broker ${now}\n`);
      onBroker = now;
    });
    let count = 0;
    let chunks: Int16Array[] = [];
    let rate = 16000;
    const latencies: number[] = [];
    const pending: Promise<void>[] = [];
    let finish!: (code: number) => void;
    const done = new Promise<number>((r) => (finish = r));

    ch.session.on('overStart', () => (chunks = []));
    ch.session.on('audio', (f) => {
      chunks.push(f.pcm);
      rate = f.sampleRate;
      if (f.packetStart && !f.concealed) latencies.push(f.latencyMs);
    });
    ch.session.on('overEnd', (r) => {
      count++;
      const n = count;
      const total = chunks.reduce((a, c) => a + c.length, 0);
      const samples = new Int16Array(total);
      let o = 0;
      for (const c of chunks) samples.set(c, o), (o += c.length);
      chunks = [];
      const safe = r.name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 40) || 'talker';
      const file = single ? out : path.join(out, `${String(n).padStart(3, '0')}-${safe}.wav`);
      pending.push(
        writeWav(file, { sampleRate: rate, samples }).then(
          () => {
            if (!quiet) process.stdout.write(overLine(n, r, file) + '\n');
          },
          (err: Error) => {
            process.stderr.write(`talkbridge: cannot write ${file}: ${err.message}\n`);
          },
        ),
      );
      if (overs > 0 && n >= overs) finish(0);
    });
    const timer = timeout > 0 ? setTimeout(() => finish(overs > 0 && count < overs ? 4 : 0), timeout * 1000) : null;
    const onSig = () => finish(count > 0 || overs === 0 ? 0 : 130);
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const code = await done;
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    await Promise.all(pending);
    await ch.close();
    if (flags.latency && latencies.length && !quiet) {
      latencies.sort((a, b) => a - b);
      const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
      process.stdout.write(`latency capture->playout ms: p50 ${q(0.5).toFixed(1)} p95 ${q(0.95).toFixed(1)} max ${latencies.at(-1)!.toFixed(1)} (${latencies.length} packets)\n`);
    }
    if (code === 4) process.stderr.write(`talkbridge: timed out after ${timeout} s with ${count} of ${overs} overs\n`);
    return code;
  },
};
