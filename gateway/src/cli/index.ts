/**
 * The talkbridge command line: a thin dispatcher. Each command declares its flags and does its
 * work; this file only routes, prints help and turns errors into one line on stderr.
 */
import { type Command, helpText, parse } from './command.js';
import { UserError } from '../core/errors.js';
import { SOFTWARE } from '../core/version.js';
import { redactUrl } from '../net/redact.js';
import { safeText } from './terminal.js';

/** An error's text as printed: it may quote a broker's words or a URL with a login in it. */
const shown = (message: string): string => safeText(redactUrl(message), { newlines: true });
// Each command's module (and what it imports: the daemon, radio drivers, MQTT) loads only when that
// command runs — on a Pi every module loaded is resident memory for as long as the daemon runs.
const loaders: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./commands/run.js')).run,
  send: async () => (await import('./commands/send.js')).send,
  listen: async () => (await import('./commands/listen.js')).listen,
  'check-config': async () => (await import('./commands/check-config.js')).checkConfig,
  devices: async () => (await import('./commands/devices.js')).devices,
  'ptt-test': async () => (await import('./commands/ptt-test.js')).pttTest,
  radio: async () => (await import('./commands/radio.js')).radio,
  levels: async () => (await import('./commands/levels.js')).levels,
  reset: async () => (await import('./commands/reset.js')).reset,
  status: async () => (await import('./commands/status.js')).status,
  tls: async () => (await import('./commands/tls.js')).tls,
  channel: async () => (await import('./commands/channel.js')).channel,
  acl: async () => (await import('./commands/acl.js')).acl,
  history: async () => (await import('./commands/history.js')).history,
};

async function mainHelp(): Promise<string> {
  const commands = await Promise.all(Object.values(loaders).map((l) => l()));
  const w = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    'Usage: talkbridge <command> [options]',
    '',
    'Radio-over-IP gateway: analog radios and browsers on push-to-talk channels carried over MQTT.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(w)}${c.summary.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '')}`),
    '',
    "Run 'talkbridge <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const load = name === 'help' && rest[0] ? loaders[rest[0]] : undefined;
    process.stdout.write((load ? helpText(await load()) : await mainHelp()) + '\n');
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(SOFTWARE + '\n');
    return 0;
  }
  const load = Object.hasOwn(loaders, name) ? loaders[name] : undefined;
  if (!load) {
    process.stderr.write(`talkbridge: unknown command "${name}" (see talkbridge --help)\n`);
    return 2;
  }
  try {
    const cmd = await load();
    const p = parse(cmd, rest);
    if (p.help) {
      process.stdout.write(helpText(cmd) + '\n');
      return 0;
    }
    return await cmd.run(p.flags, p.positionals);
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`talkbridge: ${shown(err.message)}\n`);
      return err.exitCode;
    }
    process.stderr.write(`talkbridge: internal error: ${shown((err as Error)?.message ?? String(err))}\n`);
    if (process.env.TALKBRIDGE_DEBUG) process.stderr.write(`${shown(String((err as Error)?.stack))}\n`);
    return 70;
  }
}
