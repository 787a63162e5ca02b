/**
 * The team file: who may use the broker, on which channels, in which role, with which password.
 * `talkbridge acl` turns it into Mosquitto files; the embedded broker enforces it directly
 * (embeddedBroker.auth). The same user entries may also sit inline in the gateway config.
 *
 *   prefix: talkbridge/v1          # optional
 *   users:
 *     alice: { role: talk, channels: [base, ops], passwordFile: alice.pw }
 *     bob:   { role: listen, channels: [base], password: "correct horse battery" }
 *     pi-north: { role: gateway, channels: { base: talk, ops: listen } }
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { DEFAULT_PREFIX, normalizeChannel, validatePrefix, validateSender } from '../../shared/channel/topics.js';
import { check } from '../core/schema.js';
import { UserError } from '../core/errors.js';
import { ROLES, type Role } from './access.js';
import { type Team, buildTeam } from './team-model.js';

export type { Team } from './team-model.js';

const channelName = z.string().superRefine(check(normalizeChannel)).transform(normalizeChannel);

export const TeamUserSchema = z
  .strictObject({
    role: z.enum(ROLES as [Role, ...Role[]], { error: `must be one of ${ROLES.join(', ')}` }).default('talk'),
    /** A list (every channel in the user's role) or a map channel → talk | listen. */
    channels: z.union([z.array(channelName).min(1), z.record(channelName, z.enum(['talk', 'listen']))], {
      error: 'must be a list of channel names, or a map of channel name to talk | listen',
    }),
    password: z.string().min(8, 'a broker password must have at least 8 characters').optional(),
    /** Read when the team is loaded; relative paths are relative to the file that names them. */
    passwordFile: z.string().min(1).optional(),
  })
  .refine((u) => !(u.password !== undefined && u.passwordFile !== undefined), { message: 'give only one of password, passwordFile', path: ['passwordFile'] });

// Usernames are checked here rather than as the record's key schema, whose errors lose their message.
export const TeamUsersSchema = z.record(z.string(), TeamUserSchema).superRefine((users, ctx) => {
  for (const name of Object.keys(users)) {
    try {
      validateSender(name);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `${(err as Error).message} (a username is also the sender id)`, path: [name] });
    }
  }
});

export const TeamFileSchema = z.strictObject({
  prefix: z.string().superRefine(check(validatePrefix)).default(DEFAULT_PREFIX),
  users: TeamUsersSchema.refine((u) => Object.keys(u).length > 0, 'list at least one user'),
});

/** The config loader's format (path: message); not imported from it, which would be an import cycle. */
function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => {
    const p = i.path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
    return `${p || '(top level)'}: ${i.message}`;
  });
}

export type TeamUsers = z.infer<typeof TeamUsersSchema>;

export function parseTeam(text: string, source: string): Team {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) throw new UserError(`${source}: YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const r = TeamFileSchema.safeParse(doc.toJS() ?? {});
  if (!r.success) {
    const problems = formatIssues(r.error);
    throw new UserError(`${source}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`}`);
  }
  return buildTeam(r.data.prefix, r.data.users, path.dirname(path.resolve(source)), source);
}

export function loadTeam(file: string): Team {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read team file ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)}`);
  }
  return parseTeam(text, file);
}
