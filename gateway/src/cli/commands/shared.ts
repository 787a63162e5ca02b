import type { Flag } from '../command.js';
import { DEFAULT_PREFIX } from '../../../shared/channel/topics.js';

export const connectFlags: Record<string, Flag> = {
  broker: { type: 'string', short: 'b', arg: 'URL', multiple: true, help: 'MQTT broker: mqtt://HOST:PORT, mqtts://, ws:// or wss://; several (repeat the flag or a comma list) are tried in order' },
};
export const channelFlag: Record<string, Flag> = {
  channel: { type: 'string', short: 'c', arg: 'NAME', help: 'talk channel name (case-insensitive)' },
};
export const prefixFlag: Record<string, Flag> = {
  prefix: { type: 'string', arg: 'TOPIC', help: 'topic prefix shared by everyone on the broker', default: DEFAULT_PREFIX },
};
/** Broker login and TLS: the same settings as the config's broker section (docs/security.md). */
export const authFlags: Record<string, Flag> = {
  username: { type: 'string', short: 'u', arg: 'NAME', help: 'broker username (also the sender id on brokers with talkbridge ACLs)' },
  'password-file': { type: 'string', arg: 'FILE', help: 'file holding the broker password (or set TALKBRIDGE_BROKER_PASSWORD)' },
  ca: { type: 'string', arg: 'FILE', help: 'PEM CA certificate to trust for mqtts:// and wss:// (only this CA: pinning)' },
  cert: { type: 'string', arg: 'FILE', help: 'PEM client certificate, for brokers that require one' },
  'cert-key': { type: 'string', arg: 'FILE', help: 'PEM private key of --cert' },
  servername: { type: 'string', arg: 'NAME', help: "name to check the broker's certificate against, if not the URL's host" },
  insecure: { type: 'boolean', help: 'accept any broker certificate (test benches only: anyone can sit in the middle)' },
};

const flagNames: Namer = (k) => ({ password: 'TALKBRIDGE_BROKER_PASSWORD', passwordFile: '--password-file', ca: '--ca', cert: '--cert', key: '--cert-key' })[k];

/** Credentials and TLS from --username, --password-file (or TALKBRIDGE_BROKER_PASSWORD), --ca, --cert, --cert-key. */
export function connectionFromFlags(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Credentials {
  const str = (k: string) => (typeof flags[k] === 'string' ? (flags[k] as string) : undefined);
  const tlsGiven = ['ca', 'cert', 'cert-key', 'servername', 'insecure'].some((k) => flags[k] !== undefined && flags[k] !== false);
  // Only with --username: a daemon's password left in the shell's environment must not go to every broker.
  const envPassword = str('password-file') === undefined && str('username') !== undefined ? env.TALKBRIDGE_BROKER_PASSWORD : undefined;
  return loadCredentials(
    {
      username: str('username'),
      password: envPassword,
      passwordFile: str('password-file'),
      tls: tlsGiven ? { ca: str('ca'), cert: str('cert'), key: str('cert-key'), servername: str('servername'), rejectUnauthorized: !flags.insecure } : undefined,
    },
    flagNames,
  );
}

export const commonFlags: Record<string, Flag> = {
  quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
};

import { readFileSync } from 'node:fs';
import { normalizeChannel } from '../../../shared/channel/topics.js';
import type { ChannelSession } from '../../../shared/channel/session.js';
import { type ChannelCrypto, createChannelCrypto } from '../../../shared/crypto/channel-crypto.js';
import { KeyError } from '../../../shared/crypto/keys.js';
import { UsageError } from '../command.js';
import { type Credentials, type Namer, loadCredentials } from '../../net/credentials.js';

export function channelArg(flags: Record<string, unknown>): string {
  const v = flags.channel;
  if (typeof v !== 'string' || v === '') throw new UsageError('--channel is required (e.g. --channel base)');
  try {
    return normalizeChannel(v);
  } catch (err) {
    throw new UsageError(`--channel: ${(err as Error).message}`);
  }
}

export const keyFlags: Record<string, Flag> = {
  key: { type: 'string', short: 'k', arg: 'KEY', help: 'channel key (epoch.base64url, from `talkbridge channel new`); visible in `ps` — prefer --key-file' },
  'key-file': { type: 'string', arg: 'FILE', help: 'file holding the channel key' },
  'passphrase-file': { type: 'string', arg: 'FILE', help: 'file holding the channel passphrase (instead of a key)' },
  invite: { type: 'string', arg: 'LINK', help: 'invite link (from `talkbridge channel new`): fills in broker, channel, prefix and key' },
};

/**
 * An invite link carries what a browser needs in its fragment (#broker=…&channel=…&key=…&prefix=…);
 * the CLI takes the same link, so one message joins a phone and a laptop alike. Flags given
 * explicitly win over the invite.
 */
export function applyInvite(flags: Record<string, unknown>): void {
  if (typeof flags.invite !== 'string') return;
  let hash: string;
  try {
    hash = new URL(flags.invite).hash;
  } catch {
    throw new UsageError('--invite: not a link (expected https://…/#broker=…&channel=…&key=…)');
  }
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  if (!q.get('channel')) throw new UsageError('--invite: the link names no channel');
  // A key given another way (--key-file, --passphrase-file) wins over the link's.
  const ownKey = flags['key-file'] !== undefined || flags['passphrase-file'] !== undefined;
  for (const [param, flag] of [
    ['broker', 'broker'],
    ['channel', 'channel'],
    ['key', 'key'],
    ['prefix', 'prefix'],
    ['user', 'username'],
  ] as const) {
    const v = q.get(param);
    if (flag === 'key' && ownKey) continue;
    if (v && (flags[flag] === undefined || (flag === 'prefix' && flags.prefix === DEFAULT_PREFIX))) flags[flag] = v;
  }
}

/** The channel's keys from --key / --key-file / --passphrase-file, or null for a clear channel. */
export async function cryptoFromFlags(flags: Record<string, unknown>, channel: string): Promise<ChannelCrypto | null> {
  const given = ['key', 'key-file', 'passphrase-file'].filter((f) => typeof flags[f] === 'string');
  if (given.length > 1) throw new UsageError(`give only one of --${given.join(', --')}`);
  const read = (f: string) => {
    try {
      return readFileSync(String(flags[f]), 'utf8').trim();
    } catch (err) {
      throw new UsageError(`--${f}: cannot read ${flags[f]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  try {
    if (typeof flags.key === 'string') return await createChannelCrypto({ channel, keys: [flags.key] });
    if (typeof flags['key-file'] === 'string') return await createChannelCrypto({ channel, keys: [read('key-file')] });
    if (typeof flags['passphrase-file'] === 'string') return await createChannelCrypto({ channel, passphrase: read('passphrase-file') });
  } catch (err) {
    if (err instanceof KeyError) throw new UsageError(`--${given[0]}: ${err.message}`);
    throw err;
  }
  return null;
}

/** Says once, in words, why an encrypted channel stays silent (no key, wrong key). */
export function explainCryptoDrops(session: ChannelSession, write: (line: string) => void): void {
  const said = new Set<string>();
  session.on('dropped', (reason) => {
    const why =
      reason === 'encrypted'
        ? `channel ${session.topics.channel} is end-to-end encrypted and no key was given (--key-file, --invite)`
        : reason === 'auth'
          ? `packets on channel ${session.topics.channel} fail authentication: wrong key? (or someone is injecting)`
          : reason === 'unknown-epoch'
            ? `packets on channel ${session.topics.channel} use a key epoch we have no key for (was the key rotated?)`
            : reason === 'unencrypted'
              ? `someone is sending in clear on encrypted channel ${session.topics.channel}: ignored`
              : null;
    if (why && !said.has(reason)) {
      said.add(reason);
      write(`talkbridge: ${why}\n`);
    }
  });
}
