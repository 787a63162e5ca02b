/**
 * What the embedded broker refuses to hold for anyone, with or without embeddedBroker.auth: packets
 * larger than any talkbridge client sends, more retained messages than a channel has members, the
 * daemon's own client ids in anyone else's hands, and password guessing at line rate.
 *
 * Each bound is a number here (LIMITS) with the reason for its size; every refusal is counted
 * (LimitCounters, on EmbeddedBroker.limits) and logged at most once a minute per key.
 */
import { MAX_PACKET_BYTES } from '../../shared/channel/packet.js';
import { TOPIC_KINDS } from '../../shared/channel/topics.js';
import type { Logger } from '../core/log.js';
import { STATUS_SEGMENT } from '../../shared/channel/topics.js';

export interface LoginLimits {
  /** Failed logins an address may make before it has to wait: a few typos cost nothing. */
  freeFailures: number;
  /** The wait after the first failure beyond the free ones; it doubles with each further failure… */
  backoffMs: number;
  /** …up to this. */
  maxBackoffMs: number;
  /** An address that has not failed for this long starts again with its free failures. */
  forgetMs: number;
  /** Addresses remembered at once (oldest forgotten first). */
  trackedAddresses: number;
  /**
   * Failed logins, summed over every address not known to have logged in recently: a burst, then
   * this many a second. Many addresses (an IPv6 range, a botnet) each with free failures of their
   * own would otherwise add up to line rate.
   */
  globalBurst: number;
  globalPerSecond: number;
  /** Addresses that logged in successfully, exempt from the global bound, and for how long. */
  knownAddresses: number;
  knownForMs: number;
}

export interface BrokerLimits {
  /**
   * The largest MQTT packet read at all, of any type. A bigger one closes the connection as soon
   * as its fixed header announces the length, before its body is buffered.
   */
  packetBytes: number;
  /** Largest payload per topic kind; a bigger publish is dropped (the connection stays). */
  payloadBytes: { audio: number; control: number; presence: number; status: number; other: number };
  /** Retained messages under one channel (`<prefix>/<channel>`), one gateway-status prefix, or all other topics together. */
  retainedPerChannel: number;
  /** Retained messages and their payload bytes, over the whole broker. */
  retainedTotal: number;
  retainedBytes: number;
  login: LoginLimits;
}

const KIB = 1024;

export const LIMITS: BrokerLimits = {
  // Twice the largest legitimate packet (a status document at its bound, plus its topic); MQTT's
  // own limit is 256 MB, which aedes would buffer whole.
  packetBytes: 32 * KIB,
  payloadBytes: {
    // The protocol's bound (channel/packet.ts): every receiver refuses a bigger packet, sealed or clear.
    audio: MAX_PACKET_BYTES,
    // Readers refuse JSON over 2,048 bytes (channel/control.ts); sealing adds at most 102 (envelope
    // head, sender, time, tag). Real ones are 100–300 bytes.
    control: 4 * KIB,
    presence: 4 * KIB,
    // A gateway's status measured 387 bytes with two channels and no radio; a radio adds ~510
    // (a 64-character talker), a channel ~100–150: 16 KiB is some 30 radios.
    status: 16 * KIB,
    // Only an open broker carries other topics (decide() refuses them): as much as a status.
    other: 16 * KIB,
  },
  // One retained presence per participant online: a channel with more than a thousand is not a
  // talk group. The web client shows at most 256 of them.
  retainedPerChannel: 1024,
  // Four full channels; at most 8 MiB of payload plus aedes's own ~1.5 KB a message (issue #16
  // measured 145 MB for 100,000).
  retainedTotal: 4096,
  retainedBytes: 8 * KIB * KIB,
  login: {
    freeFailures: 5,
    backoffMs: 1000,
    maxBackoffMs: 60_000,
    forgetMs: 15 * 60_000,
    trackedAddresses: 4096,
    // ~2 guesses a second for the whole world, against 1,000–1,500 a second from one client unbounded.
    globalBurst: 30,
    globalPerSecond: 2,
    knownAddresses: 1024,
    knownForMs: 24 * 3600_000,
  },
};

export interface LimitCounters {
  /** Connections closed for announcing a packet over packetBytes. */
  packetsTooLarge: number;
  /** Publishes dropped for a payload over their kind's bound. */
  publishesTooLarge: number;
  /** Retained publishes delivered but not kept, a retained-message bound being reached. */
  retainedRefused: number;
  /** CONNECTs refused for using a client id reserved for the gateway's own connections. */
  clientIdsRefused: number;
  /** Logins refused unchecked because the address, or everyone, failed too often. */
  loginsThrottled: number;
}

export const newCounters = (): LimitCounters => ({ packetsTooLarge: 0, publishesTooLarge: 0, retainedRefused: 0, clientIdsRefused: 0, loginsThrottled: 0 });

export type TopicClass = { kind: keyof BrokerLimits['payloadBytes']; bucket: string };

/**
 * A topic's kind and the bucket its retained messages count against: `<…>/<channel>/<kind>/<sender>`
 * counts against `<…>/<channel>` (whatever the prefix: an open broker does not know ours).
 */
export function classify(topic: string): TopicClass {
  const parts = topic.split('/');
  const n = parts.length;
  if (n >= 3) {
    const kind = parts[n - 2]!;
    if ((TOPIC_KINDS as readonly string[]).includes(kind)) return { kind: kind as TopicClass['kind'], bucket: parts.slice(0, n - 2).join('/') };
    if (parts[n - 3] === STATUS_SEGMENT && parts[n - 1] === 'status') return { kind: 'status', bucket: parts.slice(0, n - 2).join('/') };
  }
  return { kind: 'other', bucket: '' };
}

export function payloadSize(p: Buffer | string | Uint8Array | undefined): number {
  if (p === undefined) return 0;
  return typeof p === 'string' ? Buffer.byteLength(p) : p.length;
}

/**
 * The retained messages the broker holds, as counts and bytes: updated as retained publishes are
 * authorized, so a message over a bound can lose its retain flag before aedes stores it.
 */
export class RetainedIndex {
  private readonly topics = new Map<string, { bucket: string; bytes: number }>();
  private readonly perBucket = new Map<string, number>();
  private bytes = 0;

  constructor(private readonly l: Pick<BrokerLimits, 'retainedPerChannel' | 'retainedTotal' | 'retainedBytes'>) {}

  get size(): number {
    return this.topics.size;
  }

  /** A retained publish: empty clears, anything else is kept if the bounds allow (false: do not keep it). */
  retain(topic: string, bucket: string, bytes: number): boolean {
    const old = this.topics.get(topic);
    if (bytes === 0) {
      if (old) this.drop(topic, old);
      return true;
    }
    if (old) {
      if (this.bytes - old.bytes + bytes > this.l.retainedBytes) return false;
      this.bytes += bytes - old.bytes;
      old.bytes = bytes;
      return true;
    }
    const inBucket = this.perBucket.get(bucket) ?? 0;
    if (inBucket >= this.l.retainedPerChannel || this.topics.size >= this.l.retainedTotal || this.bytes + bytes > this.l.retainedBytes) return false;
    this.topics.set(topic, { bucket, bytes });
    this.perBucket.set(bucket, inBucket + 1);
    this.bytes += bytes;
    return true;
  }

  private drop(topic: string, e: { bucket: string; bytes: number }): void {
    this.topics.delete(topic);
    this.bytes -= e.bytes;
    const left = (this.perBucket.get(e.bucket) ?? 1) - 1;
    if (left > 0) this.perBucket.set(e.bucket, left);
    else this.perBucket.delete(e.bucket);
  }
}

/**
 * Who a login attempt is counted against: the address, an IPv6 address by its /64 (one host can
 * hold a whole /64, so a per-address count would be no bound at all there).
 */
export function addressKey(remote: string | null | undefined): string {
  if (!remote) return 'unknown';
  const a = remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
  if (!a.includes(':')) return a;
  const [head = '', tail] = a.split('%')[0]!.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

export type Throttled = 'address' | 'global' | null;

/**
 * Failed-login bounds: per address, free failures then a doubling wait; over all addresses not
 * known good, a token bucket. The answer while throttled does not depend on the password, so
 * guessing on gains nothing. Both maps are bounded by count, oldest first out.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { n: number; last: number; until: number }>();
  private readonly known = new Map<string, number>();
  private tokens: number;
  private filled: number;

  constructor(
    private readonly l: LoginLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = l.globalBurst;
    this.filled = now();
  }

  /** Addresses remembered (failing, and known good): for tests of the bounds. */
  get tracked(): { failing: number; known: number } {
    return { failing: this.failures.size, known: this.known.size };
  }

  /** Before checking a password: may this address try now? */
  check(key: string): Throttled {
    const now = this.now();
    const f = this.failures.get(key);
    if (f && now - f.last > this.l.forgetMs) this.failures.delete(key);
    else if (f && now < f.until) return 'address';
    if (this.isKnown(key, now)) return null;
    this.refill(now);
    return this.tokens < 1 ? 'global' : null;
  }

  failed(key: string): void {
    const now = this.now();
    const f = this.failures.get(key) ?? { n: 0, last: now, until: 0 };
    f.n++;
    f.last = now;
    const over = f.n - this.l.freeFailures;
    if (over > 0) f.until = now + Math.min(this.l.maxBackoffMs, this.l.backoffMs * 2 ** Math.min(over - 1, 30));
    // Re-inserted so that Map order is least recently failed first: the one forgotten when full.
    this.failures.delete(key);
    this.failures.set(key, f);
    if (this.failures.size > this.l.trackedAddresses) this.failures.delete(this.failures.keys().next().value as string);
    if (!this.isKnown(key, now)) {
      this.refill(now);
      this.tokens -= 1;
    }
  }

  /**
   * A success does not wipe the address's failures: a member could otherwise guess another's
   * password a few times, log in as itself, and go on. They fade after forgetMs.
   */
  succeeded(key: string): void {
    this.known.delete(key);
    this.known.set(key, this.now());
    if (this.known.size > this.l.knownAddresses) this.known.delete(this.known.keys().next().value as string);
  }

  private isKnown(key: string, now: number): boolean {
    const at = this.known.get(key);
    if (at === undefined) return false;
    if (now - at <= this.l.knownForMs) return true;
    this.known.delete(key);
    return false;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.l.globalBurst, this.tokens + ((now - this.filled) / 1000) * this.l.globalPerSecond);
    this.filled = now;
  }
}

/**
 * The client ids the gateway's own connections use on its broker (talk/open.ts for a channel,
 * app/status.ts for status, net/uplink.ts for the uplink's local side). Exact ids, not a prefix
 * `tb-<id>-`: a web or CLI user named like the gateway gets `tb-<id>-<random>…`, which must stay free.
 * Everything after `tb-<id>:` is the gateway's (':' is in no sender id or channel name).
 */
export function ownClientIds(gatewayId: string, channels: readonly string[]): (clientId: string) => boolean {
  const exact = new Set([...channels.map((c) => `tb-${gatewayId}-${c.toLowerCase()}`), `tb-${gatewayId}:status`, `tb-${gatewayId}:uplink-local`].map((id) => id.slice(0, 64)));
  const mine = `tb-${gatewayId}:`;
  return (id) => exact.has(id) || id.startsWith(mine);
}

/** One warning per key a minute (a client retrying in a loop must not flood the log); the rest at debug. */
export function rateLimitedWarn(log: Logger): (key: string, fields: object, msg: string) => void {
  const warned = new Map<string, number>();
  return (key, fields, msg) => {
    const now = Date.now();
    if (now - (warned.get(key) ?? 0) < 60_000) return log.debug(fields, msg);
    if (warned.size >= 1000) warned.clear();
    warned.set(key, now);
    log.warn(fields, msg);
  };
}
