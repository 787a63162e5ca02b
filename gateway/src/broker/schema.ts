/** The `embeddedBroker` config section: the in-process broker a kit runs when it has no other. */
import { z } from 'zod';
import { host, port } from '../core/schema.js';
import { TeamUsersSchema } from './team.js';

/**
 * Who may use the embedded broker (broker/access.ts): a team file (the one `talkbridge acl` reads)
 * or the same user entries inline. Without it the broker is open to anyone who can reach it.
 */
export const EmbeddedAuthSchema = z
  .strictObject({
    teamFile: z.string().min(1).optional(),
    users: TeamUsersSchema.optional(),
  })
  .refine((a) => (a.teamFile === undefined) !== (a.users === undefined), { message: 'give either teamFile or users' });

export const EmbeddedBrokerSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** 127.0.0.1 keeps it private; 0.0.0.0 serves a field kit's Wi-Fi. */
    host: host.default('127.0.0.1'),
    port: port.default(1883),
    auth: EmbeddedAuthSchema.optional(),
  })
  .prefault({});

export type EmbeddedBrokerConfig = z.infer<typeof EmbeddedBrokerSchema>;
