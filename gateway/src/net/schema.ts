/** The `broker` config section: how the gateway reaches the MQTT broker its channels live on. */
import { z } from 'zod';
import { DEFAULT_PREFIX, validatePrefix } from '../../shared/channel/topics.js';
import { check } from '../core/schema.js';

/** File paths, read when connecting (net/credentials.ts). Setting `ca` pins it: only that CA is trusted. */
export const TlsSchema = z
  .strictObject({
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** false accepts any server certificate: for a test bench only, it lets anyone sit in the middle. */
    rejectUnauthorized: z.boolean().default(true),
    servername: z.string().min(1).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.cert !== undefined && t.key === undefined) ctx.addIssue({ code: 'custom', message: 'cert needs key too', path: ['key'] });
    if (t.key !== undefined && t.cert === undefined) ctx.addIssue({ code: 'custom', message: 'key needs cert too', path: ['cert'] });
  });

/** A config error if both a password and a password file are given. */
export function oneCredential(b: { username?: string | undefined; password?: string | undefined; passwordFile?: string | undefined }, ctx: z.RefinementCtx): void {
  if (b.password !== undefined && b.passwordFile !== undefined) ctx.addIssue({ code: 'custom', message: 'give either password or passwordFile, not both', path: ['passwordFile'] });
}

const brokerUrl = z.string().regex(/^(mqtts?|wss?):\/\/[^\s,]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL');

/**
 * The fields of a broker connection, unrefined so the `uplink` section (net/uplink-schema.ts) can
 * reuse them: whatever credentials or TLS settings a broker takes, an upstream takes too.
 */
export const BrokerFields = z.strictObject({
  /** mqtt://, mqtts://, ws:// or wss:// URL; null = the embedded broker. */
  url: brokerUrl.nullable().default(null),
  /** Several brokers, tried in order on every (re)connect (net/failover.ts); `url` is the one-URL shorthand. */
  urls: z.array(brokerUrl).min(1, 'give at least one URL (or leave urls out)').optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  /** The password from a file (systemd credentials, a USB stick); read at connect time, never logged. */
  passwordFile: z.string().min(1).optional(),
  tls: TlsSchema.optional(),
  topicPrefix: z.string().superRefine(check(validatePrefix)).default(DEFAULT_PREFIX),
  keepaliveSeconds: z.number().int().min(5).max(600).default(30),
  connectTimeoutMs: z.number().int().min(500).max(120000).default(10000),
  reconnectMs: z.number().int().min(100).max(60000).default(1000),
  /**
   * MQTT 5 to brokers that accept it (a channel then subscribes "no local": the broker does not
   * echo our own audio back), 3.1.1 to those that refuse it. false: always 3.1.1.
   */
  mqtt5: z.boolean().default(true),
});

/** A config error unless at most one of url / urls is given. */
export function oneOfUrlOrUrls(b: { url: string | null; urls?: readonly string[] | undefined }, ctx: z.RefinementCtx): void {
  if (b.url !== null && b.urls !== undefined) ctx.addIssue({ code: 'custom', message: 'give either url or urls, not both', path: ['urls'] });
}

export const BrokerSchema = BrokerFields.superRefine(oneOfUrlOrUrls).superRefine(oneCredential).prefault({});

export type BrokerConfig = z.infer<typeof BrokerSchema>;
