/**
 * The talkbridge command line: a thin dispatcher. Each command declares its flags and does its
 * work; this file only routes, prints help and turns errors into one line on stderr.
 */
import { type Command, helpText, parse } from './command.js';
import { UserError } from '../core/errors.js';
import { run } from './commands/run.js';
import { send } from './commands/send.js';
import { listen } from './commands/listen.js';
import { checkConfig } from './commands/check-config.js';
import { devices } from './commands/devices.js';
import { pttTest } from './commands/ptt-test.js';
import { radio } from './commands/radio.js';
import { levels } from './commands/levels.js';
import { reset } from './commands/reset.js';
import { status } from './commands/status.js';
import { SOFTWARE } from '../talk/open.js';

const commands: Command[] = [run, send, listen, checkConfig, devices, pttTest, radio, levels, reset, status];

function mainHelp(): string {
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
    const target = name === 'help' && rest[0] ? commands.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write((target ? helpText(target) : mainHelp()) + '\n');
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(SOFTWARE + '\n');
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`talkbridge: unknown command "${name}" (see talkbridge --help)\n`);
    return 2;
  }
  try {
    const p = parse(cmd, rest);
    if (p.help) {
      process.stdout.write(helpText(cmd) + '\n');
      return 0;
    }
    return await cmd.run(p.flags, p.positionals);
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`talkbridge: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`talkbridge: internal error: ${(err as Error)?.message ?? String(err)}\n`);
    if (process.env.TALKBRIDGE_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
    return 70;
  }
}
