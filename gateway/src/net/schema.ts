/** The `broker` config section: how the gateway reaches the MQTT broker its channels live on. */
import { z } from 'zod';
import { DEFAULT_PREFIX, validatePrefix } from '../channel/topics.js';
import { check } from '../config/common.js';
import type { ConnectOptions } from './connect.js';

export const BrokerSchema = z
  .strictObject({
    /** mqtt://, mqtts://, ws:// or wss:// URL; null = the embedded broker. */
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
      .nullable()
      .default(null),
    username: z.string().optional(),
    password: z.string().optional(),
    topicPrefix: z.string().superRefine(check(validatePrefix)).default(DEFAULT_PREFIX),
    keepaliveSeconds: z.number().int().min(5).max(600).default(30),
    connectTimeoutMs: z.number().int().min(500).max(120000).default(10000),
    reconnectMs: z.number().int().min(100).max(60000).default(1000),
  })
  .prefault({});

export type BrokerConfig = z.infer<typeof BrokerSchema>;

/** Connection settings every client of the gateway shares (channels, status); callers add clientId and will. */
export function brokerConnection(b: BrokerConfig, url: string): Omit<ConnectOptions, 'clientId'> {
  return {
    url,
    username: b.username,
    password: b.password,
    keepaliveSeconds: b.keepaliveSeconds,
    connectTimeoutMs: b.connectTimeoutMs,
    reconnectMs: b.reconnectMs,
  };
}
