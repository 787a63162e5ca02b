/**
 * The `uplink` config section: a field kit's bridge from its own broker to an upstream one
 * (net/uplink.ts). The connection fields are the broker section's (credentials, TLS, time-outs),
 * so an upstream is configured exactly like a broker.
 */
import { z } from 'zod';
import { normalizeChannel, validatePrefix } from '../../shared/channel/topics.js';
import { check } from '../core/schema.js';
import { BrokerFields, oneCredential, oneOfUrlOrUrls } from './schema.js';

export const UplinkSchema = BrokerFields.extend({
  /** false keeps the section in the file but the bridge off (TALKBRIDGE_UPLINK_ENABLED=false). */
  enabled: z.boolean().default(true),
  /** Topic prefix on the upstream broker; default: the local one (broker.topicPrefix). */
  topicPrefix: z.string().superRefine(check(validatePrefix)).optional(),
  /** Channels to bridge; default: every configured channel. */
  channels: z
    .array(z.string().superRefine(check(normalizeChannel)).transform(normalizeChannel))
    .min(1)
    .optional(),
})
  .superRefine((u, ctx) => {
    oneOfUrlOrUrls(u, ctx);
    oneCredential(u, ctx);
    if (u.url === null && u.urls === undefined) ctx.addIssue({ code: 'custom', message: 'the upstream broker is missing: give url or urls', path: ['url'] });
  })
  .nullable()
  .default(null);

export type UplinkConfig = NonNullable<z.infer<typeof UplinkSchema>>;
