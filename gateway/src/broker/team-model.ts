/**
 * A team (team.ts) once validated: the access model and the passwords. Apart from team.ts so the
 * daemon, whose config is already validated, loads no zod for inline users (resident memory on a Pi).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import { type AccessModel, type AccessUser, type ChannelRole, type Role, channelRole, createModel } from './access.js';

/** Validated user entries (team.ts TeamUsersSchema's output). */
export type TeamUsers = Record<string, { role: Role; channels: string[] | Record<string, ChannelRole>; password?: string | undefined; passwordFile?: string | undefined }>;

export interface Team {
  model: AccessModel;
  /** Username → password, for users that have one (others log in by client certificate only). */
  passwords: Map<string, string>;
}

/** Turns validated user entries into the model; `base` resolves relative passwordFile paths. */
export function buildTeam(prefix: string, users: TeamUsers, base: string, where: string): Team {
  const list: AccessUser[] = [];
  const passwords = new Map<string, string>();
  for (const [name, u] of Object.entries(users)) {
    const channels = new Map<string, ChannelRole>();
    if (Array.isArray(u.channels)) for (const c of u.channels) channels.set(c, channelRole(u.role));
    else for (const [c, r] of Object.entries(u.channels)) channels.set(c, channelRole(u.role, r));
    list.push({ name, role: u.role, channels });
    if (u.password !== undefined) passwords.set(name, u.password);
    if (u.passwordFile !== undefined) {
      const file = path.resolve(base, u.passwordFile);
      let pw: string;
      try {
        pw = readFileSync(file, 'utf8').trim();
      } catch (err) {
        throw new UserError(`${where}: users.${name}.passwordFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (pw.length < 8) throw new UserError(`${where}: users.${name}.passwordFile: the password in ${file} must have at least 8 characters`);
      passwords.set(name, pw);
    }
  }
  return { model: createModel(prefix, list), passwords };
}
