/**
 * Who may publish and subscribe what on a talkbridge broker. One function, `decide()`, answers
 * (user, publish|subscribe, topic) for the embedded broker's hooks; the Mosquitto ACL and
 * dynamic-security files (mosquitto-files.ts) are written from the same rules, and
 * test/security runs one table of cases against all of them.
 *
 * The model follows the topic layout (channel/topics.ts): a user may publish only on topics that
 * end in its own username (the username IS the sender id), so nobody can speak, or clear presence,
 * in someone else's name. Roles:
 *   listen  — subscribe to its channels; publish its own presence (so the team sees who hears them)
 *   talk    — listen + its own audio and control topics
 *   gateway — talk + its own retained status topic (<prefix>/_gateways/<username>/status)
 *   admin   — talk + read every gateway's status (for `talkbridge status`)
 * Anything else is denied: `#` and `+/#` filters, `$SYS`, other prefixes, channels not listed,
 * wildcards in the channel position, retained audio or control.
 */
import { STATUS_SEGMENT, TOPIC_KINDS, normalizeChannel, validatePrefix, validateSender } from '../../shared/channel/topics.js';

export type Role = 'listen' | 'talk' | 'gateway' | 'admin';
export const ROLES: readonly Role[] = ['listen', 'talk', 'gateway', 'admin'];
export type ChannelRole = 'listen' | 'talk';

export interface AccessUser {
  name: string;
  role: Role;
  /** Channel (normalized) → what the user may do on it. */
  channels: ReadonlyMap<string, ChannelRole>;
}

export interface AccessModel {
  prefix: string;
  users: ReadonlyMap<string, AccessUser>;
}

export type Action = 'publish' | 'subscribe';
export interface Decision {
  allow: boolean;
  /** Why, in words (for logs and for the tests' failure messages). */
  reason: string;
}

const SENDER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function createModel(prefix: string, users: Iterable<AccessUser>): AccessModel {
  validatePrefix(prefix);
  const map = new Map<string, AccessUser>();
  for (const u of users) {
    validateSender(u.name);
    for (const c of u.channels.keys()) normalizeChannel(c);
    map.set(u.name, u);
  }
  return { prefix, users: map };
}

const deny = (reason: string): Decision => ({ allow: false, reason });
const allow = (reason: string): Decision => ({ allow: true, reason });

/**
 * The one decision. `retain` matters only for publish: retained messages are allowed on presence
 * and status topics only (a retained audio packet would be replayed to every newcomer).
 */
export function decide(model: AccessModel, username: string | null | undefined, action: Action, topic: string, retain = false): Decision {
  const user = username ? model.users.get(username) : undefined;
  if (!user) return deny(username ? `unknown user ${username}` : 'anonymous');
  if (topic.includes('#')) return deny('"#" is never allowed');
  if (!topic.startsWith(model.prefix + '/')) return deny(`outside the prefix ${model.prefix}`);
  const rest = topic.slice(model.prefix.length + 1).split('/');
  if (rest.length !== 3) return deny('not a talkbridge topic (<prefix>/<channel>/<kind>/<sender>)');
  const [first, second, third] = rest as [string, string, string];
  if (action === 'publish' && topic.includes('+')) return deny('wildcard in a published topic');

  if (first === STATUS_SEGMENT) {
    if (third !== 'status' || !(second === '+' || SENDER.test(second))) return deny('not a gateway status topic');
    if (action === 'publish') {
      if (user.role !== 'gateway') return deny('only gateways publish status');
      return second === user.name ? allow('own gateway status') : deny("another gateway's status");
    }
    if (user.role === 'admin') return allow('admin reads gateway status');
    if (user.role === 'gateway' && second === user.name) return allow('own gateway status');
    return deny('gateway status is for admins');
  }

  const role = user.channels.get(first);
  if (!role) return deny(first === '+' ? 'wildcard in the channel position' : `not a member of channel ${first}`);
  if (action === 'subscribe') {
    if (!(second === '+' || (TOPIC_KINDS as readonly string[]).includes(second))) return deny(`unknown topic kind ${second}`);
    if (!(third === '+' || SENDER.test(third))) return deny(`bad sender ${third}`);
    return allow(`member of ${first}`);
  }
  if (!(TOPIC_KINDS as readonly string[]).includes(second)) return deny(`unknown topic kind ${second}`);
  if (third !== user.name) return deny(`publishes only as ${user.name}, not ${third}`);
  if (second === 'presence') return allow('own presence');
  if (retain) return deny(`retained ${second} is not allowed`);
  return role === 'talk' ? allow(`talks on ${first}`) : deny(`listen-only on ${first}`);
}

/** What a role allows on its channels: the ACL writers turn this into broker rules. */
export function channelRole(role: Role, override?: ChannelRole): ChannelRole {
  return override ?? (role === 'listen' ? 'listen' : 'talk');
}
