import { DEFAULT_PREFIX } from '../../../shared/channel/topics.js';
import { CodecSchema } from '../../config/schema.js';
import { createEncoder } from '../../codec/opus-node.js';
import { readWav } from '../../audio/wav.js';
import { openChannel } from '../../talk/open.js';
import { sendPcm } from '../../talk/send.js';
import { safeText } from '../terminal.js';
import { type Command, UsageError, intFlag, urlsFlag } from '../command.js';
import { applyInvite, channelArg, connectionFromFlags, channelFlag, authFlags, commonFlags, connectFlags, cryptoFromFlags, keyFlags, prefixFlag } from './shared.js';

const codecDefaults = CodecSchema.parse({});

export const send: Command = {
  name: 'send',
  summary: 'Transmit a WAV file (16-bit PCM, any rate, mono or stereo) as one over on a talk channel.',
  usage: 'send --broker URL[,URL…] --channel NAME [--name TALKER] [--fast] FILE.wav',
  details:
    'The over is paced in real time unless --fast is given. If someone else holds the channel, or wins it\n' +
    'while we start at the same moment, nothing more is sent and the command exits with status 3 (busy).',
  positionals: [1, 1],
  flags: {
    ...connectFlags,
    ...authFlags,
    ...channelFlag,
    name: { type: 'string', short: 'n', arg: 'TALKER', help: 'name shown to other participants', default: 'talkbridge-cli' },
    fast: { type: 'boolean', help: 'send as fast as possible instead of in real time' },
    'frames-per-packet': { type: 'string', arg: 'N', help: 'Opus frames per packet, 1-3: 1 = lowest latency, 3 = fewest bytes', default: String(codecDefaults.framesPerPacket) },
    bitrate: { type: 'string', arg: 'BPS', help: 'Opus bitrate in bit/s (6000-64000)', default: String(codecDefaults.bitrate) },
    priority: { type: 'string', arg: 'N', help: 'floor priority 0-255; a higher one wins when two start together', default: '0' },
    ...keyFlags,
    ...prefixFlag,
    ...commonFlags,
  },
  async run(flags, [file]) {
    applyInvite(flags);
    const url = urlsFlag(flags, 'broker');
    const fpp = intFlag(flags, 'frames-per-packet', 1, 3)!;
    const bitrate = intFlag(flags, 'bitrate', 6000, 64000)!;
    const priority = intFlag(flags, 'priority', 0, 255)!;
    const channel = channelArg(flags);
    const name = String(flags.name);
    if (name.length === 0 || name.length > 64) throw new UsageError('--name must be 1-64 characters');
    const pcm = await readWav(file!);
    const encoder = await createEncoder({ ...codecDefaults, bitrate });
    const crypto = await cryptoFromFlags(flags, channel);
    const ch = await openChannel({ url, connection: connectionFromFlags(flags), prefix: String(flags.prefix ?? DEFAULT_PREFIX), channel, name, source: 'cli', silenceMs: 1000, crypto });
    const abort = new AbortController();
    const onSig = () => abort.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    try {
      // Listen before talking: an over in progress is heard within one packet time.
      await new Promise((r) => setTimeout(r, 150));
      const r = await sendPcm(ch.session, encoder, pcm, { framesPerPacket: fpp, frameMs: codecDefaults.frameMs, fast: Boolean(flags.fast), priority }, abort.signal);
      if (r.status === 'busy') {
        process.stderr.write(`talkbridge: channel ${channel} is busy: ${safeText(r.holder.name)} is talking${r.packets ? ` (stopped after ${r.packets} packets)` : ''}\n`);
        return 3;
      }
      if (r.status === 'aborted') {
        process.stderr.write(`talkbridge: over aborted after ${r.packets} packets\n`);
        return 130;
      }
      if (!flags.quiet) process.stdout.write(`sent ${r.seconds.toFixed(2)} s in ${r.packets} packets to ${channel} as ${name}\n`);
      return 0;
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
      encoder.close();
      await ch.close();
    }
  },
};
