/**
 * The one schema for talkbridge's configuration: TypeScript types, defaults and validation all come
 * from here (docs/config.md documents it; `talkbridge check-config --print-defaults` prints it).
 * Objects are strict so a misspelt key is an error, not a silently ignored setting.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseKey } from '../../shared/crypto/keys.js';
import { BridgeSchema } from '../bridge/schema.js';
import { normalizeChannel, validateSender } from '../../shared/channel/topics.js';
import { check } from '../core/schema.js';
import { RadioEntrySchema, resolveRadio } from '../radio/profiles.js';
import { BrokerSchema } from '../net/schema.js';
import { UplinkSchema } from '../net/uplink-schema.js';
import { EmbeddedBrokerSchema } from '../broker/schema.js';
import { HttpSchema } from '../http/schema.js';
import { urlHasPassword } from '../net/redact.js';

const keyText = z
  .string()
  .superRefine(check(parseKey))
  .transform((k) => k.trim());
/** A secret read from a file (systemd credentials, a USB stick): surrounding whitespace is not part of it. */
const secretFile = z
  .string()
  .min(1)
  .transform((path, ctx) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return z.NEVER;
    }
  });

/**
 * A talk channel, and its end-to-end encryption keys (docs/security.md). With a key (or a
 * passphrase) the channel is encrypted; without, it is clear. Output: `keys` holds every key as
 * text (`<epoch>.<base64url>`), the one to send with first being the highest epoch.
 */
export const ChannelSchema = z
  .strictObject({
    name: z.string().superRefine(check(normalizeChannel)).transform(normalizeChannel),
    /** `<epoch>.<base64url>` as `talkbridge channel new` prints it. */
    key: keyText.optional(),
    keyFile: secretFile.optional(),
    /** Keys of earlier epochs, still accepted during a rotation's overlap. */
    previousKeys: z.array(keyText).default([]),
    /** A shared passphrase instead of a key (PBKDF2, docs/security.md); weaker, but can be typed. */
    passphrase: z.string().min(12, 'a channel passphrase must have at least 12 characters').optional(),
    passphraseFile: secretFile.optional(),
    /** Key epoch of the passphrase-derived key. */
    epoch: z.number().int().min(0).max(65535).default(1),
  })
  .superRefine((c, ctx) => {
    const given = (['key', 'keyFile', 'passphrase', 'passphraseFile'] as const).filter((k) => c[k] !== undefined);
    if (given.length > 1) ctx.addIssue({ code: 'custom', message: `give only one of ${given.join(', ')}`, path: [given[1]!] });
    if (c.keyFile !== undefined) {
      try {
        parseKey(c.keyFile);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `keyFile: ${(err as Error).message}`, path: ['keyFile'] });
      }
    }
    if (c.passphraseFile !== undefined && c.passphraseFile.length < 12)
      ctx.addIssue({ code: 'custom', message: 'the passphrase in passphraseFile must have at least 12 characters', path: ['passphraseFile'] });
    if (given.length === 0 && c.previousKeys.length) ctx.addIssue({ code: 'custom', message: 'previousKeys needs a current key', path: ['previousKeys'] });
  })
  .transform((c) => ({
    name: c.name,
    keys: [c.key ?? c.keyFile, ...c.previousKeys].filter((k): k is string => k !== undefined),
    passphrase: c.passphrase ?? c.passphraseFile ?? null,
    epoch: c.epoch,
  }));

export const EncryptionSchema = z
  .strictObject({
    /** Refuse to start with a channel that has no key: no team talks in clear by accident. */
    required: z.boolean().default(false),
    /** Encrypted audio captured further than this from our clock is refused as stale (0 = off, for kits without a trusted clock). */
    maxClockSkewSeconds: z.number().int().min(0).max(86400).default(300),
    /** After a newer key epoch is in use, older keys stay valid this long. */
    overlapMinutes: z.number().min(0).max(10080).default(10),
  })
  .prefault({});

/**
 * The history recorder (docs/config.md "history"): null = off. `dir` alone is enough; it records
 * every channel this gateway joins, or only `channels`.
 */
export const HistorySchema = z
  .strictObject({
    dir: z.string().min(1),
    channels: z.array(z.string().min(1)).min(1).optional(),
    /** Overs older than this are removed. */
    maxAgeDays: z.number().min(0.01).max(3650).default(30),
    /** The packets stored, at most; the oldest overs go first. 1 GiB is ~70 days of speech at 40 kbit/s. */
    maxMegabytes: z.number().min(1).max(1_000_000).default(1024),
  })
  .nullable()
  .default(null);

export const CodecSchema = z.strictObject({
  sampleRate: z.union([z.literal(8000), z.literal(12000), z.literal(16000), z.literal(24000), z.literal(48000)], { error: 'must be 8000, 12000, 16000, 24000 or 48000' }).default(16000),
  frameMs: z.union([z.literal(10), z.literal(20), z.literal(40), z.literal(60)], { error: 'must be 10, 20, 40 or 60' }).default(20),
  framesPerPacket: z.number().int().min(1).max(3).default(2),
  bitrate: z.number().int().min(6000).max(64000).default(16000),
  complexity: z.number().int().min(0).max(10).default(9),
});

/**
 * A broker URL must parse as a URL, and must not carry a password: a URL is shown in logs, in the
 * retained status topic, on /healthz and by `check-config --print`; a password file is not.
 */
function brokerUrlProblem(url: string, section: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a valid URL (characters such as / ? # @ in a user name or password must be %-escaped, or better, given apart)';
  }
  if (!u.hostname) return 'the URL names no host';
  if (urlHasPassword(url))
    return `a password in the URL would be shown in logs and in the gateway's status: put the user name in ${section}.username and the password in ${section}.passwordFile (or TALKBRIDGE_${section.toUpperCase()}_PASSWORD_FILE)`;
  return null;
}

function checkBrokerUrls(b: { url: string | null; urls?: readonly string[] | undefined } | null, section: string, ctx: z.RefinementCtx): void {
  if (!b) return;
  const at = (url: string | null, path: Array<string | number>) => {
    const p = url === null ? null : brokerUrlProblem(url, section);
    if (p) ctx.addIssue({ code: 'custom', message: p, path: [section, ...path] });
  };
  at(b.url, ['url']);
  b.urls?.forEach((u, i) => at(u, ['urls', i]));
}

export const ConfigSchema = z
  .strictObject({
    gateway: z
      .strictObject({
        /** Sender id on the wire and MQTT client id stem. */
        id: z.string().superRefine(check(validateSender)).default('gateway'),
        /** Shown to other participants. */
        name: z.string().min(1).max(64).default('talkbridge gateway'),
      })
      .prefault({}),
    broker: BrokerSchema,
    /** A field kit's bridge to an upstream broker (net/uplink.ts); null = none. */
    uplink: UplinkSchema,
    embeddedBroker: EmbeddedBrokerSchema,
    http: HttpSchema,
    channels: z
      .array(ChannelSchema)
      .min(1)
      .prefault([{ name: 'base' }]),
    encryption: EncryptionSchema,
    history: HistorySchema,
    codec: CodecSchema.prefault({}),
    jitter: z
      .strictObject({
        minDelayMs: z.number().min(0).max(500).default(10),
        maxDelayMs: z.number().min(20).max(2000).default(200),
        marginMs: z.number().min(0).max(100).default(4),
      })
      .prefault({}),
    floor: z
      .strictObject({
        /** An over whose talker went silent this long is over (ms). */
        silenceMs: z.number().int().min(100).max(30000).default(1000),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    /**
     * Radios attached to this gateway (docs/hardware.md): each names an interface profile from
     * firmware-config/interfaces and overrides what differs; resolved and validated here.
     */
    radios: z
      .array(RadioEntrySchema.transform((e, ctx) => resolveRadio(e, ctx)))
      .default([])
      .superRefine((rs, ctx) => {
        const seen = new Set<string>();
        rs.forEach((r, i) => {
          if (seen.has(r.name)) ctx.addIssue({ code: 'custom', message: `radio name "${r.name}" is used twice`, path: [i, 'name'] });
          seen.add(r.name);
        });
      }),
    /** How radios are linked to channels, and the timing on the air (docs/config.md). */
    bridge: BridgeSchema,
  })
  .superRefine((c, ctx) => {
    checkBrokerUrls(c.broker, 'broker', ctx);
    checkBrokerUrls(c.uplink, 'uplink', ctx);
    if (c.encryption.required) {
      c.channels.forEach((ch, i) => {
        if (!ch.keys?.length && !ch.passphrase) ctx.addIssue({ code: 'custom', message: `channel "${ch.name}" has no key, and encryption.required is set`, path: ['channels', i] });
      });
    }
    const channels = new Set(c.channels.map((x) => x.name));
    c.history?.channels?.forEach((ch, i) => {
      if (!channels.has(ch.toLowerCase()))
        ctx.addIssue({ code: 'custom', message: `no channel named "${ch}" in channels: a recorder records channels the gateway joins`, path: ['history', 'channels', i] });
    });
    const radios = new Set(c.radios.map((r) => r.name));
    c.bridge.links.forEach((l, i) => {
      if (!radios.has(l.radio)) ctx.addIssue({ code: 'custom', message: `no radio named "${l.radio}" in radios`, path: ['bridge', 'links', i, 'radio'] });
      for (const [j, ch] of [l.transmit, ...l.monitor].entries()) {
        if (ch !== null && !channels.has(ch.toLowerCase()))
          ctx.addIssue({ code: 'custom', message: `no channel named "${ch}" in channels`, path: ['bridge', 'links', i, j === 0 ? 'transmit' : 'monitor'] });
      }
    });
  })
  .transform((c) => {
    // One radio, no links written: it talks on and listens to the first channel.
    const first = c.channels[0]!.name;
    const links = c.bridge.links.length
      ? c.bridge.links.map((l) => ({ ...l, transmit: l.transmit?.toLowerCase() ?? null, monitor: l.monitor.map((m) => m.toLowerCase()) }))
      : c.radios.map((r) => ({ radio: r.name, transmit: first, monitor: [first] }));
    return { ...c, bridge: { ...c.bridge, links } };
  });

export type Config = z.infer<typeof ConfigSchema>;
export type CodecConfig = z.infer<typeof CodecSchema>;
export type RadioConfig = Config['radios'][number];
