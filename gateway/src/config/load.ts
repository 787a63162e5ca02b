/**
 * Reads the YAML config (never writes it: users' comments stay theirs), applies environment
 * overrides and validates everything at once. Every problem comes back with its path.
 *
 * Environment: TALKBRIDGE_<SECTION>_<KEY> sets any scalar (e.g. TALKBRIDGE_BROKER_PASSWORD), and
 * TALKBRIDGE_<SECTION>_<KEY>_FILE reads it from a file (systemd credentials, Docker secrets), so
 * secrets need not live in the YAML file.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { UserError } from '../core/errors.js';
import { type Config, ConfigSchema } from './schema.js';

export class ConfigError extends UserError {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, 1);
  }
}

type Def = { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; options?: z.ZodType[] };
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(s: z.ZodType): z.ZodType {
  let d = defOf(s);
  while (d.innerType && ['default', 'prefault', 'optional', 'nullable', 'pipe', 'readonly'].includes(d.type)) {
    s = d.innerType;
    d = defOf(s);
  }
  if (d.type === 'pipe') return unwrap((d as unknown as { in: z.ZodType }).in);
  return s;
}

/** Leaf settings reachable by environment variables: [path, kind]. */
export function envLeaves(schema: z.ZodType = ConfigSchema, path: string[] = []): Array<[string[], string]> {
  const s = unwrap(schema);
  const d = defOf(s);
  if (d.type === 'object' && d.shape) return Object.entries(d.shape).flatMap(([k, v]) => envLeaves(v, [...path, k]));
  if (d.type === 'union') return [[path, 'union']];
  return [[path, d.type]];
}

export function envName(path: string[]): string {
  return 'TALKBRIDGE_' + path.map((p) => p.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase()).join('_');
}

function coerce(raw: string, kind: string): unknown {
  if (kind === 'number' || kind === 'union') {
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
  }
  if (kind === 'boolean') return raw === 'true' ? true : raw === 'false' ? false : raw;
  if (kind === 'array') {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

function applyEnv(doc: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [path, kind] of envLeaves()) {
    const name = envName(path);
    let raw = env[name];
    const file = env[`${name}_FILE`];
    if (file !== undefined) {
      try {
        raw = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`${name}_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        continue;
      }
    }
    if (raw === undefined) continue;
    let node = doc;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      node = (node[key] = typeof next === 'object' && next !== null && !Array.isArray(next) ? next : {}) as Record<string, unknown>;
    }
    node[path.at(-1)!] = kind === 'nullable' || raw === 'null' ? (raw === 'null' ? null : raw) : coerce(raw, kind);
  }
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => {
    const path = i.path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '');
    return `${path || '(top level)'}: ${i.message}`;
  });
}

/** Parses YAML text (plus environment) into a validated Config or throws ConfigError. */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  for (const e of doc.errors) problems.push(`YAML: ${e.message.split('\n')[0]}`);
  if (problems.length) throw new ConfigError(source, problems);
  let data = doc.toJS() as unknown;
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(source, ['the file must hold a mapping of settings (key: value)']);
  applyEnv(data as Record<string, unknown>, env, problems);
  const r = ConfigSchema.safeParse(data);
  if (!r.success) problems.push(...formatIssues(r.error));
  if (problems.length || !r.success) throw new ConfigError(source, problems);
  return r.data;
}

export function loadConfig(file: string | null, env: NodeJS.ProcessEnv = process.env): Config {
  if (file === null) return parseConfig('', '(built-in defaults)', env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read config ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)}`);
  }
  return parseConfig(text, file, env);
}
