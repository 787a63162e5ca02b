/** The `embeddedBroker` config section: the in-process broker a kit runs when it has no other. */
import { z } from 'zod';
import { host, port } from '../config/common.js';

export const EmbeddedBrokerSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** 127.0.0.1 keeps it private; 0.0.0.0 serves a field kit's Wi-Fi. */
    host: host.default('127.0.0.1'),
    port: port.default(1883),
  })
  .prefault({});

export type EmbeddedBrokerConfig = z.infer<typeof EmbeddedBrokerSchema>;
