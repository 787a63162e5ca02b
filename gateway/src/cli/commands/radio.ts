import { loadPlan, planSettings } from '../../radio/profiles.js';
import { Sa818, describeChannel } from '../../radio/module/sa818.js';
import { ToneError, checkChannel, parseDcs, toneName } from '../../radio/module/tones.js';
import type { ModuleChannel, ModuleSettings, Tone } from '../../radio/types.js';
import { type Command, UsageError, intFlag, numFlag } from '../command.js';

function settingsFromFlags(flags: Record<string, string | boolean | undefined>): ModuleSettings {
  const has = (n: string) => flags[n] !== undefined;
  const manual = ['rx', 'tx', 'ctcss', 'dcs', 'squelch', 'bandwidth'].filter(has);
  if (has('profile') || has('channel')) {
    if (manual.length) throw new UsageError(`--profile/--channel cannot be combined with --${manual[0]}`);
    if (!has('profile') || !has('channel')) throw new UsageError('--profile and --channel go together (e.g. --profile pmr446 --channel 1)');
    const n = intFlag(flags, 'channel', 1, 9999)!;
    let plan: ReturnType<typeof loadPlan>;
    try {
      plan = loadPlan(String(flags.profile));
    } catch (err) {
      throw new UsageError(`--profile: ${(err as Error).message}`);
    }
    const volume = intFlag(flags, 'volume', 1, 8);
    try {
      return planSettings(plan, n, volume);
    } catch (err) {
      throw new UsageError(`--channel: ${(err as Error).message}`);
    }
  }
  if (!has('rx')) throw new UsageError('give --profile NAME --channel N, or --rx MHZ (and --tx MHZ)');
  if (has('ctcss') && has('dcs')) throw new UsageError('--ctcss and --dcs exclude each other');
  const rx = numFlag(flags, 'rx', 1, 10000)!;
  const tx = numFlag(flags, 'tx', 1, 10000) ?? rx;
  let tone: Tone = null;
  try {
    if (has('ctcss')) {
      const hz = numFlag(flags, 'ctcss', 1, 1000)!;
      tone = { ctcss: hz };
    } else if (has('dcs')) tone = parseDcs(String(flags.dcs));
  } catch (err) {
    throw new UsageError(`--dcs: ${(err as Error).message}`);
  }
  const bw = flags.bandwidth ?? 'narrow';
  if (bw !== 'wide' && bw !== 'narrow') throw new UsageError(`--bandwidth must be wide or narrow, got "${String(bw)}"`);
  const channel: ModuleChannel = { rxMHz: rx, txMHz: tx, rxTone: tone, txTone: tone, squelch: intFlag(flags, 'squelch', 0, 8) ?? 1, bandwidth: bw };
  const volume = intFlag(flags, 'volume', 1, 8);
  return { channel, ...(volume !== undefined ? { volume } : {}) };
}

export const radio: Command = {
  name: 'radio',
  summary: 'Program or read an SA818/DRA818 radio module over its serial port.',
  usage:
    'radio program --port PATH (--profile NAME --channel N | --rx MHZ [--tx MHZ] [--ctcss HZ | --dcs CODE] [--squelch 0-8] [--bandwidth wide|narrow]) [--volume 1-8]\n' +
    '       talkbridge radio read --port PATH',
  details:
    'Channel plans (--profile) live in firmware-config/plans: 2m-simplex, pmr446, sar-vhf. Frequencies must\n' +
    'be in 134-174 or 400-480 MHz on a 5 or 6.25 kHz step; tones are the 38 standard CTCSS tones or the\n' +
    '104 DCS codes (023N, 023I). Everything is checked before the module is touched.',
  positionals: [1, 1],
  flags: {
    port: { type: 'string', short: 'p', arg: 'PATH', help: 'serial port of the module (e.g. /dev/serial0)' },
    profile: { type: 'string', arg: 'NAME', help: 'channel plan name' },
    channel: { type: 'string', arg: 'N', help: 'channel number in the plan' },
    rx: { type: 'string', arg: 'MHZ', help: 'receive frequency' },
    tx: { type: 'string', arg: 'MHZ', help: 'transmit frequency (default: same as --rx)' },
    ctcss: { type: 'string', arg: 'HZ', help: 'CTCSS tone, both directions' },
    dcs: { type: 'string', arg: 'CODE', help: 'DCS code, both directions (023N, 023I)' },
    squelch: { type: 'string', arg: '0-8', help: 'squelch level (default 1)' },
    bandwidth: { type: 'string', arg: 'BW', help: 'wide (25 kHz) or narrow (12.5 kHz, default)' },
    volume: { type: 'string', arg: '1-8', help: 'audio output volume' },
    baud: { type: 'string', arg: 'N', help: 'serial speed', default: '9600' },
    timeout: { type: 'string', arg: 'MS', help: 'reply time-out per try', default: '1000' },
  },
  async run(flags, [sub]) {
    if (sub !== 'program' && sub !== 'read') throw new UsageError(`unknown subcommand "${sub}": use radio program or radio read`);
    if (typeof flags.port !== 'string' || flags.port === '') throw new UsageError('--port is required (e.g. --port /dev/serial0; see talkbridge devices)');
    const baudRate = intFlag(flags, 'baud', 1200, 115200)!;
    const timeoutMs = intFlag(flags, 'timeout', 50, 10000)!;
    let settings: ModuleSettings | null = null;
    if (sub === 'program') {
      settings = settingsFromFlags(flags);
      try {
        checkChannel(settings.channel);
      } catch (err) {
        if (err instanceof ToneError) throw new UsageError(err.message);
        throw err;
      }
    }
    const m = new Sa818({ port: flags.port, baudRate, timeoutMs });
    try {
      if (settings) {
        const steps = await m.program(settings);
        for (const s of steps) process.stdout.write(`${s.step}: ${s.detail}\n`);
        process.stdout.write(`programmed ${m.description}\n`);
      } else {
        const r = await m.read();
        process.stdout.write(`module: ${m.description}\nversion: ${r.version ?? 'not reported'}\n`);
        process.stdout.write(`channel: ${r.channel ? describeChannel(r.channel) : 'this module cannot read its settings back'}\n`);
        if (r.channel && (r.channel.rxTone || r.channel.txTone)) process.stdout.write(`tones: RX ${toneName(r.channel.rxTone)}, TX ${toneName(r.channel.txTone)}\n`);
        process.stdout.write(`rssi: ${r.rssi ?? 'not reported'}\n`);
      }
      return 0;
    } finally {
      await m.close();
    }
  },
};
