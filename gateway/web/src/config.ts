/**
 * What the page joins, from the URL fragment (never sent to any server, so broker addresses,
 * names and channel keys stay out of web server logs): #broker=wss://…/mqtt&channel=base&name=Ann&key=1.….
 * Also the defaults when the gateway serves the page, the recent-channel list kept in
 * localStorage, and where a channel key may be kept on the device. Pure functions over strings and
 * a Storage, unit-tested in Node.
 */
import { DEFAULT_PREFIX, type TopicError, normalizeChannel, validatePrefix } from '../../shared/channel/topics.js';
import { type KeyError, formatKey, parseKey } from '../../shared/crypto/keys.js';
import { OPUS_DEFAULTS } from '../../shared/codec/codec.js';

/** Protocol defaults, the same as the gateway's CodecSchema (a unit test keeps them equal). */
export const CODEC = { sampleRate: 16000 as const, frameMs: 20 as const, framesPerPacket: 2, bitrate: OPUS_DEFAULTS.bitrate, complexity: OPUS_DEFAULTS.complexity };
/** Longest over before the page ends it: the gateway's bridge.rxTimeoutSeconds, the most a radio may send (a unit test keeps them equal). */
export const DEFAULT_TALK_TIMEOUT_S = 120;
/** Same as the gateway's floor.silenceMs default. */
export const SILENCE_MS = 1000;

export type CodecChoice = 'auto' | 'webcodecs' | 'wasm';

/**
 * What opens an encrypted channel: a key text (`<epoch>.<base64url>`, from an invite link, or
 * remembered) or a passphrase typed into the join form (PBKDF2, the same derivation as the CLI's
 * --passphrase-file).
 */
export type Secret = { kind: 'key'; key: string } | { kind: 'passphrase'; passphrase: string };

export interface JoinParams {
  broker: string;
  channel: string;
  name: string;
  prefix: string;
  codec: CodecChoice;
  talkTimeoutS: number;
  /** Absent: a clear channel. */
  secret?: Secret;
  /** Broker login (embeddedBroker.auth, or Mosquitto with `talkbridge acl`); absent: anonymous. */
  user?: string;
  /** Never in a fragment, a link or localStorage unless "remember" was ticked (see the logins below). */
  password?: string;
}

export interface FragmentResult {
  /** Fields present and valid; the rest come from defaults or the form. */
  params: Partial<JoinParams>;
  errors: string[];
}

const MAX_NAME = 64;

/** ws(s)://this-host/mqtt: where the gateway that served the page has its broker. */
export function defaultBroker(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/mqtt`;
}

/**
 * Checks a broker URL a browser can open; returns a reason when it cannot.
 *
 * A login in the URL (`wss://user:pass@host/mqtt`) is refused: the broker URL goes into the
 * address bar, the share and invite links and the recent-channel list, so the password would
 * travel with every link. The join form's User name and Password fields keep it out of all of them.
 * The reason never repeats the URL's userinfo, since it is shown on screen.
 */
export function brokerProblem(url: string, pageProtocol: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/i, '$1')}" is not a URL`;
  }
  if (u.username !== '' || u.password !== '') return 'the broker URL must not carry a login (user:password@): remove it and enter the login in the User name and Password fields of the join form';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return 'browsers reach MQTT brokers over WebSocket only: use a ws:// or wss:// URL';
  if (pageProtocol === 'https:' && u.protocol === 'ws:') return 'a page opened over HTTPS may only connect to wss:// (the browser blocks ws://)';
  return null;
}

export function cleanName(name: string): string {
  return name.replace(/\s+/g, ' ').trim().slice(0, MAX_NAME);
}

export function parseFragment(hash: string, pageProtocol = 'https:'): FragmentResult {
  const params: Partial<JoinParams> = {};
  const errors: string[] = [];
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  const broker = q.get('broker');
  if (broker) {
    const why = brokerProblem(broker, pageProtocol);
    if (why) errors.push(`broker: ${why}`);
    else params.broker = broker;
  }
  const channel = q.get('channel');
  if (channel) {
    try {
      params.channel = normalizeChannel(channel);
    } catch (err) {
      errors.push((err as TopicError).message);
    }
  }
  const name = q.get('name');
  if (name !== null && cleanName(name)) params.name = cleanName(name);
  const prefix = q.get('prefix');
  if (prefix) {
    try {
      params.prefix = validatePrefix(prefix);
    } catch (err) {
      errors.push((err as TopicError).message);
    }
  }
  const codec = q.get('codec');
  if (codec) {
    if (codec === 'auto' || codec === 'webcodecs' || codec === 'wasm') params.codec = codec;
    else errors.push(`codec "${codec}" is not auto, webcodecs or wasm`);
  }
  const tot = q.get('timeout');
  if (tot) {
    const n = Number(tot);
    if (Number.isInteger(n) && n >= 5 && n <= 600) params.talkTimeoutS = n;
    else errors.push('timeout must be whole seconds from 5 to 600');
  }
  const user = q.get('user');
  if (user !== null && user !== '') {
    const why = userProblem(user);
    if (why) errors.push(`user: ${why}`);
    else params.user = user;
  }
  const key = q.get('key');
  if (key !== null) {
    try {
      // Normalised, so the same key is always the same text (remembered keys compare equal).
      params.secret = { kind: 'key', key: formatKey(parseKey(key)) };
    } catch (err) {
      errors.push(`key: ${(err as KeyError).message} — ask for the invite link again`);
    }
  }
  return { params, errors };
}

export function withDefaults(p: Partial<JoinParams>, loc: { protocol: string; host: string }): Omit<JoinParams, 'channel' | 'name'> & Partial<Pick<JoinParams, 'channel' | 'name'>> {
  return {
    broker: p.broker ?? defaultBroker(loc),
    prefix: p.prefix ?? DEFAULT_PREFIX,
    codec: p.codec ?? 'auto',
    talkTimeoutS: p.talkTimeoutS ?? DEFAULT_TALK_TIMEOUT_S,
    ...(p.channel ? { channel: p.channel } : {}),
    ...(p.name ? { name: p.name } : {}),
    ...(p.secret ? { secret: p.secret } : {}),
    ...(p.user ? { user: p.user } : {}),
  };
}

const MAX_USER = 128;

/** Why a broker user name cannot be used, or null. */
export function userProblem(user: string): string | null {
  if (user.length > MAX_USER) return `a user name is at most ${MAX_USER} characters`;
  if (/[\s\u0000-\u001f]/.test(user)) return 'a user name has no spaces or control characters';
  return null;
}

/** True when the fragment carries a key, which the page then takes out of the address bar. */
export function fragmentHasKey(hash: string): boolean {
  return new URLSearchParams(hash.replace(/^#/, '')).has('key');
}

/** The same fragment without its key. */
export function withoutKey(hash: string): string {
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  q.delete('key');
  const rest = q.toString();
  return rest ? '#' + rest : '';
}

/**
 * The fragment for a join. A shareable link leaves the name out; only an invite (includeKey)
 * carries the key. The address bar never gets the key back: it would show on screen, in the
 * history, in bookmarks and in synced tabs.
 */
export function buildFragment(p: JoinParams, o: { includeName: boolean; defaultBrokerUrl: string; includeKey?: boolean }): string {
  const q = new URLSearchParams();
  if (p.broker !== o.defaultBrokerUrl) q.set('broker', p.broker);
  q.set('channel', p.channel);
  if (o.includeName) q.set('name', p.name);
  if (p.prefix !== DEFAULT_PREFIX) q.set('prefix', p.prefix);
  if (p.codec !== 'auto') q.set('codec', p.codec);
  if (p.talkTimeoutS !== DEFAULT_TALK_TIMEOUT_S) q.set('timeout', String(p.talkTimeoutS));
  // The user name helps whoever opens the link log in; the password is never put in a link.
  if (p.user) q.set('user', p.user);
  if (o.includeKey && p.secret?.kind === 'key') q.set('key', p.secret.key);
  return '#' + q.toString();
}

// ---- recent channels --------------------------------------------------------------------------

export interface Recent {
  broker: string;
  channel: string;
  prefix: string;
  at: number;
  /** The channel was encrypted: whether a key for it is kept is keyFor()'s business. */
  encrypted?: boolean;
}

const RECENT_KEY = 'talkbridge.recent';
const NAME_KEY = 'talkbridge.name';
export const MAX_RECENT = 8;

type Store = Pick<Storage, 'getItem' | 'setItem'>;

/** Never throws: storage may be full, disabled or hold anything. */
export function loadRecent(s: Store | null): Recent[] {
  try {
    const v: unknown = JSON.parse(s?.getItem(RECENT_KEY) ?? '[]');
    if (!Array.isArray(v)) return [];
    return v
      .filter((r): r is Recent => typeof r === 'object' && r !== null && typeof r.broker === 'string' && typeof r.channel === 'string' && typeof r.prefix === 'string' && typeof r.at === 'number')
      .map((r) => ({ broker: r.broker, channel: r.channel, prefix: r.prefix, at: r.at, ...(r.encrypted === true ? { encrypted: true } : {}) }))
      .slice(0, MAX_RECENT);
  } catch {
    return [];
  }
}

export function rememberRecent(s: Store | null, r: Omit<Recent, 'at'>, now: number): Recent[] {
  const list = [{ ...r, at: now }, ...loadRecent(s).filter((x) => !(x.broker === r.broker && x.channel === r.channel && x.prefix === r.prefix))].slice(0, MAX_RECENT);
  try {
    s?.setItem(RECENT_KEY, JSON.stringify(list));
  } catch {
    /* storage full or disabled: the list is a convenience */
  }
  return list;
}

export function loadName(s: Store | null): string {
  try {
    return cleanName(s?.getItem(NAME_KEY) ?? '');
  } catch {
    return '';
  }
}

export function saveName(s: Store | null, name: string): void {
  try {
    s?.setItem(NAME_KEY, cleanName(name));
  } catch {
    /* as above */
  }
}

// ---- channel keys on this device --------------------------------------------------------------
//
// A key is a password for the channel. By default the page keeps it only for the life of the tab
// (sessionStorage: a reload still works after the key has left the address bar; closing the tab
// forgets it). Only when the person ticks "Remember key on this device" does it go to
// localStorage, keyed by broker, prefix and channel. A passphrase is never stored: what is
// remembered is the key derived from it, so a passphrase reused elsewhere does not sit on disk.

const KEYS_KEY = 'talkbridge.keys';

export interface ChannelRef {
  broker: string;
  prefix: string;
  channel: string;
}

function refId(r: ChannelRef): string {
  return `${r.broker}|${r.prefix}|${r.channel}`;
}

function loadKeys(s: Store | null): Record<string, string> {
  try {
    const v: unknown = JSON.parse(s?.getItem(KEYS_KEY) ?? '{}');
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** The key kept for a channel, or null; anything unparseable in storage counts as none. */
export function keyFor(s: Store | null, r: ChannelRef): string | null {
  const k = loadKeys(s)[refId(r)];
  if (typeof k !== 'string') return null;
  try {
    return formatKey(parseKey(k));
  } catch {
    return null;
  }
}

/** Keeps (key) or forgets (null) a channel's key in this store. */
export function storeKey(s: Store | null, r: ChannelRef, key: string | null): void {
  const all = loadKeys(s);
  if (key === null) delete all[refId(r)];
  else all[refId(r)] = key;
  try {
    if (Object.keys(all).length) s?.setItem(KEYS_KEY, JSON.stringify(all));
    else (s as Partial<Storage> | null)?.removeItem?.(KEYS_KEY);
  } catch {
    /* storage full or disabled: the key just is not kept */
  }
}

// ---- broker logins on this device -------------------------------------------------------------
//
// The same rule as keys: the password of a broker login is kept for the tab (sessionStorage, so
// a reload logs in again) and on the device (localStorage) only when "Remember password on this
// device" is ticked. The user name alone is not a secret: it is kept on the device to fill the form.

const LOGINS_KEY = 'talkbridge.logins';

export interface Login {
  user: string;
  password?: string;
}

function loadLogins(s: Store | null): Record<string, Login> {
  try {
    const v: unknown = JSON.parse(s?.getItem(LOGINS_KEY) ?? '{}');
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Login>) : {};
  } catch {
    return {};
  }
}

/** The login kept for a broker in this store, or null; anything malformed counts as none. */
export function loginFor(s: Store | null, broker: string): Login | null {
  const l = loadLogins(s)[broker];
  if (typeof l !== 'object' || l === null || typeof l.user !== 'string' || !l.user) return null;
  return typeof l.password === 'string' ? { user: l.user, password: l.password } : { user: l.user };
}

/** Keeps (login) or forgets (null) a broker's login in this store. */
export function storeLogin(s: Store | null, broker: string, login: Login | null): void {
  const all = loadLogins(s);
  if (login === null) delete all[broker];
  else all[broker] = login.password === undefined ? { user: login.user } : { user: login.user, password: login.password };
  try {
    if (Object.keys(all).length) s?.setItem(LOGINS_KEY, JSON.stringify(all));
    else (s as Partial<Storage> | null)?.removeItem?.(LOGINS_KEY);
  } catch {
    /* storage full or disabled: the login just is not kept */
  }
}
