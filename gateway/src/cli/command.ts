/** The tiny command framework: flags declared once give parsing, validation and --help text. */
import { parseArgs } from 'node:util';
import { UserError } from '../core/errors.js';
import { redactUrl, urlHasPassword } from '../net/redact.js';
import { safeText } from './terminal.js';

const parses = (url: string): boolean => {
  try {
    return new URL(url).hostname !== '';
  } catch {
    return false;
  }
};

export interface Flag {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder in help, e.g. URL. */
  arg?: string;
  help: string;
  default?: string | boolean;
  /** May be given more than once; the command sees the values joined by commas. */
  multiple?: boolean;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Extra help paragraphs. */
  details?: string;
  flags: Record<string, Flag>;
  /** Positional argument count allowed: [min, max]. */
  positionals: [number, number];
  run(flags: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
}

export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
  }
}

export function helpText(c: Command): string {
  const lines = [`Usage: talkbridge ${c.usage}`, '', c.summary];
  if (c.details) lines.push('', c.details);
  lines.push('', 'Options:');
  const rows = Object.entries({ ...c.flags, help: { type: 'boolean', short: 'h', help: 'show this help' } as Flag }).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` ${f.arg ?? 'VALUE'}` : ''}`;
    const def = f.default !== undefined && f.type === 'string' ? ` (default: ${f.default})` : '';
    return [left, f.help + def] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  for (const [l, r] of rows) lines.push(`  ${l.padEnd(w)}${r}`);
  return lines.join('\n');
}

export function parse(c: Command, argv: string[]): { flags: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, f] of Object.entries(c.flags)) options[name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  const r = (() => {
    try {
      return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    } catch (err) {
      // node's messages are good but long; keep the first sentence.
      const first = (err as Error).message
        .replace(/\s+/g, ' ')
        .split(/(?<=[.?]) /)[0]!
        .replace(/\.$/, '');
      throw new UsageError(`${first} (see talkbridge ${c.name} --help)`);
    }
  })();
  const flags: Record<string, string | boolean | undefined> = {};
  for (const [name, f] of Object.entries(c.flags)) {
    const v = r.values[name] as string | boolean | string[] | undefined;
    flags[name] = (Array.isArray(v) ? v.join(',') : v) ?? f.default;
  }
  if (r.values.help) return { flags, positionals: r.positionals, help: true };
  const [min, max] = c.positionals;
  if (r.positionals.length < min) throw new UsageError(`missing argument (usage: talkbridge ${c.usage})`);
  if (r.positionals.length > max) throw new UsageError(`unexpected argument "${r.positionals[max]}" (usage: talkbridge ${c.usage})`);
  return { flags, positionals: r.positionals, help: false };
}

/** Parses an integer flag in [min, max] or throws a UsageError naming the flag. */
export function intFlag(flags: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const s = String(v);
  if (!/^-?\d+$/.test(s)) throw new UsageError(`--${name} must be a whole number, got "${s}"`);
  const n = Number(s);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function numFlag(flags: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (String(v).trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${String(v)}"`);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function urlFlag(flags: Record<string, unknown>, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required (e.g. --${name} mqtt://127.0.0.1:1883)`);
  if (!/^(mqtts?|wss?):\/\/[^\s/]+/.test(v) || !parses(v)) throw new UsageError(`--${name} must be an mqtt://, mqtts://, ws:// or wss:// URL, got "${safeText(redactUrl(v))}"`);
  // In a URL a password is in `ps`, the shell's history and anything that prints the URL.
  if (urlHasPassword(v)) throw new UsageError(`--${name}: no password in the URL, please: give --username and --password-file (or TALKBRIDGE_BROKER_PASSWORD)`);
  return v;
}

/** One or more broker URLs: the flag given several times, or a comma list; tried in order (net/failover.ts). */
export function urlsFlag(flags: Record<string, unknown>, name: string): string[] {
  const v = flags[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required (e.g. --${name} mqtt://127.0.0.1:1883)`);
  const urls = v
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  if (urls.length === 0) throw new UsageError(`--${name} is required (e.g. --${name} mqtt://127.0.0.1:1883)`);
  for (const u of urls) urlFlag({ [name]: u }, name);
  return urls;
}
