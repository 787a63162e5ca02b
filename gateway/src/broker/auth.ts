/**
 * The embedded broker's access control: aedes's authenticate / authorizePublish /
 * authorizeSubscribe hooks, answering with access.ts's decide(), the same rules the Mosquitto
 * files are written from.
 *
 * A refused publish is dropped without closing the connection, as Mosquitto does for MQTT 3.1.1:
 * aedes would otherwise disconnect the client, and a listen-only user pressing PTT in the web
 * client would loop through reconnects. The packet is re-addressed to a `$` topic, which no
 * wildcard matches and nobody may subscribe to, and loses its retain flag.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { Aedes, AuthenticateError, Client } from 'aedes';
import type { Logger } from '../core/log.js';
import { UserError } from '../core/errors.js';
import { decide } from './access.js';
import { type Team, type TeamUsers, buildTeam } from './team-model.js';

export interface EmbeddedAuth {
  team: Team;
  /** The gateway's own in-process login (random per start): trusted, like the process that owns the broker. */
  internal: { username: string; password: string };
}

const DENIED_TOPIC = '$talkbridge/denied';

/**
 * The team for embeddedBroker.auth; its prefix must be the one the gateway's channels use. Inline
 * users were validated with the config; only a team file needs the validator (zod), loaded then.
 */
export async function embeddedTeam(auth: { teamFile?: string | undefined; users?: TeamUsers | undefined }, prefix: string): Promise<Team> {
  if (auth.teamFile !== undefined) {
    const { loadTeam } = await import('./team.js');
    const team = loadTeam(auth.teamFile);
    if (team.model.prefix !== prefix) throw new UserError(`embeddedBroker.auth.teamFile: ${auth.teamFile} is for prefix ${team.model.prefix}, but broker.topicPrefix is ${prefix}`);
    return team;
  }
  return buildTeam(prefix, auth.users ?? {}, process.cwd(), 'embeddedBroker.auth');
}

export function internalLogin(username: string): EmbeddedAuth['internal'] {
  return { username, password: randomBytes(32).toString('base64url') };
}

const digest = (b: Buffer | string) => createHash('sha256').update(b).digest();
// Compared as digests so that neither the length nor the content leaks through timing.
export const same = (given: Buffer, expected: string) => timingSafeEqual(digest(given), digest(expected));

/** The client's address: the TCP socket's, or for WebSocket the HTTP request's. */
export function remoteAddress(c: Client): string | null {
  const s = (c.conn as { remoteAddress?: string } | undefined)?.remoteAddress;
  return s ?? (c.req as { socket?: { remoteAddress?: string } } | undefined)?.socket?.remoteAddress ?? null;
}

export interface AuthCounters {
  loginsRefused: number;
  publishesDenied: number;
  subscriptionsDenied: number;
}

export function installAuth(aedes: Aedes, auth: EmbeddedAuth, log: Logger): AuthCounters {
  const who = new WeakMap<Client, { username: string; trusted: boolean }>();
  const counters: AuthCounters = { loginsRefused: 0, publishesDenied: 0, subscriptionsDenied: 0 };
  // One warning per user and kind a minute: a client retrying in a loop must not flood the log.
  const warned = new Map<string, number>();
  const warn = (key: string, fields: object, msg: string) => {
    const now = Date.now();
    if (now - (warned.get(key) ?? 0) < 60_000) return log.debug(fields, msg);
    if (warned.size > 1000) warned.clear();
    warned.set(key, now);
    log.warn(fields, msg);
  };
  const remote = remoteAddress;

  aedes.authenticate = (client, username, password, done) => {
    if (username !== undefined && password !== undefined) {
      if (username === auth.internal.username && same(password, auth.internal.password)) {
        who.set(client, { username, trusted: true });
        return done(null, true);
      }
      const expected = auth.team.passwords.get(username);
      if (expected !== undefined && same(password, expected)) {
        who.set(client, { username, trusted: false });
        return done(null, true);
      }
    }
    counters.loginsRefused++;
    // The password is never logged, not even a wrong one: it may be a right one for another place.
    warn(
      `login:${username ?? ''}`,
      { event: 'auth', result: 'refused', username: username ?? null, client: client.id, remote: remote(client) },
      `refused MQTT login${username ? ` as ${username}` : ' without a username'}${remote(client) ? ` from ${remote(client)}` : ''}`,
    );
    const err = new Error('bad username or password') as AuthenticateError;
    err.returnCode = 4;
    done(err, false);
  };

  aedes.authorizePublish = (client, packet, done) => {
    // No client: aedes publishing a stored Will of a client that was authorized when it connected.
    if (!client) return done(null);
    const id = who.get(client);
    if (id?.trusted && !packet.topic.startsWith('$')) return done(null);
    const d = decide(auth.team.model, id?.username, 'publish', packet.topic, packet.retain);
    if (!d.allow) {
      counters.publishesDenied++;
      warn(
        `pub:${id?.username}`,
        { event: 'auth', result: 'publish-denied', username: id?.username ?? null, topic: packet.topic, reason: d.reason },
        `denied publish by ${id?.username ?? 'anonymous'} on ${packet.topic}: ${d.reason}`,
      );
      packet.topic = DENIED_TOPIC;
      packet.retain = false;
    }
    done(null);
  };

  aedes.authorizeSubscribe = (client, sub, done) => {
    const id = who.get(client);
    if (id?.trusted && !sub.topic.startsWith('$')) return done(null, sub);
    const d = decide(auth.team.model, id?.username, 'subscribe', sub.topic);
    if (d.allow) return done(null, sub);
    counters.subscriptionsDenied++;
    warn(
      `sub:${id?.username}`,
      { event: 'auth', result: 'subscribe-denied', username: id?.username ?? null, filter: sub.topic, reason: d.reason },
      `denied subscription by ${id?.username ?? 'anonymous'} to ${sub.topic}: ${d.reason}`,
    );
    done(null, null);
  };
  return counters;
}

/** For messages: the team file's name, not its full path. */
export function teamSource(auth: { teamFile?: string | undefined }): string {
  return auth.teamFile ? path.basename(auth.teamFile) : 'inline users';
}
