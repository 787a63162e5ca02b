/**
 * Topic layout, protocol v1:  <prefix>/<channel>/<kind>/<sender>
 *   audio    binary packets (packet.ts), QoS 0, never retained
 *   control  JSON over start/end (control.ts), QoS 1, never retained
 *   presence JSON, retained; the client's Last Will clears it (empty retained payload)
 * One topic per sender lets a broker ACL pin a user to its own topics (%u).
 */

export const DEFAULT_PREFIX = 'talkbridge/v1';
export const TOPIC_KINDS = ['audio', 'control', 'presence'] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SENDER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const PREFIX = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

export class TopicError extends Error {
  override name = 'TopicError';
}

/**
 * Channel names are case-insensitive (stored lower-case): "Base" and "base" must not silently be
 * two different channels to a volunteer typing on a phone.
 */
export function normalizeChannel(name: string): string {
  const n = name.trim().toLowerCase();
  if (!NAME.test(n)) {
    throw new TopicError(`channel name "${name}" is not valid: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  }
  return n;
}

export function validateSender(id: string): string {
  if (!SENDER.test(id)) throw new TopicError(`sender id "${id}" is not valid: 1-64 letters, digits, "_" or "-"`);
  return id;
}

export function validatePrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) throw new TopicError(`topic prefix "${prefix}" is not valid: segments of letters, digits, ".", "_" or "-" separated by "/"`);
  return prefix;
}

/**
 * Gateway status (docs/protocol.md, "Gateway status"): <prefix>/_gateways/<gatewayId>/status,
 * retained JSON. Channel names start with a letter or digit, so `_gateways` never collides with a
 * channel. The daemon, the uplink, the CLI and both brokers' access rules all use these.
 */
export const STATUS_SEGMENT = '_gateways';

export function statusTopic(prefix: string, gatewayId: string): string {
  return `${validatePrefix(prefix)}/${STATUS_SEGMENT}/${validateSender(gatewayId)}/status`;
}

/** Subscription for every gateway's status (or one, given its id). */
export function statusFilter(prefix: string, gatewayId?: string): string {
  return gatewayId ? statusTopic(prefix, gatewayId) : `${validatePrefix(prefix)}/${STATUS_SEGMENT}/+/status`;
}

/** Topic strings and parses are remembered (25 packets a second reuse the same few); at most this many. */
const MEMO_MAX = 256;

export class ChannelTopics {
  readonly channel: string;
  readonly base: string;
  private readonly made = new Map<string, string>();
  private readonly parsed = new Map<string, { kind: TopicKind; sender: string }>();

  constructor(prefix: string, channel: string) {
    this.channel = normalizeChannel(channel);
    this.base = `${validatePrefix(prefix)}/${this.channel}`;
  }

  topic(kind: TopicKind, sender: string): string {
    const key = `${kind}/${sender}`;
    let t = this.made.get(key);
    if (t === undefined) {
      t = `${this.base}/${kind}/${validateSender(sender)}`;
      if (this.made.size >= MEMO_MAX) this.made.clear();
      this.made.set(key, t);
    }
    return t;
  }

  /** Everything on the channel, for one subscription. */
  get all(): string {
    return `${this.base}/+/+`;
  }

  /** Returns null for topics that are not well-formed channel topics (counted by the caller). */
  parse(topic: string): { kind: TopicKind; sender: string } | null {
    let p: { kind: TopicKind; sender: string } | null | undefined = this.parsed.get(topic);
    if (p === undefined) {
      p = this.parseNew(topic);
      // Well-formed topics only: junk from a hostile client must not evict the channel's talkers.
      if (p) {
        if (this.parsed.size >= MEMO_MAX) this.parsed.clear();
        this.parsed.set(topic, p);
      }
    }
    return p;
  }

  private parseNew(topic: string): { kind: TopicKind; sender: string } | null {
    if (!topic.startsWith(this.base + '/')) return null;
    const rest = topic.slice(this.base.length + 1).split('/');
    if (rest.length !== 2) return null;
    const [kind, sender] = rest as [string, string];
    if (!(TOPIC_KINDS as readonly string[]).includes(kind) || !SENDER.test(sender)) return null;
    return { kind: kind as TopicKind, sender };
  }
}

/**
 * The sender id a broker login talks as: brokers with talkbridge ACLs let a user publish only under
 * its own name (one login per device). Null when the user name cannot be a sender id — such a
 * broker cannot pin topics to it anyway, so the caller picks its own id.
 */
export function loginSender(user: string | undefined): string | null {
  return user !== undefined && SENDER.test(user) ? user : null;
}

/** A sender id that is readable in logs and unique enough: name slug + 8 random hex digits. */
export function makeSenderId(name: string, random: (n: number) => Uint8Array = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n))): string {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'talker';
  const suffix = Array.from(random(4), (b) => b.toString(16).padStart(2, '0')).join('');
  return `${slug}-${suffix}`;
}
