/** The `http` config section: the web client, /healthz, /metrics and MQTT over WebSocket. */
import { z } from 'zod';
import { host, port } from '../config/common.js';

export const HttpSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    host: host.default('127.0.0.1'),
    /** Serves the web client, /healthz and MQTT over WebSocket on /mqtt. */
    port: port.default(8080),
  })
  .prefault({});

export type HttpConfig = z.infer<typeof HttpSchema>;
