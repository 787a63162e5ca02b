/**
 * From the `broker` config section to connection options. Apart from net/schema.ts so the daemon,
 * which gets its config already validated, never loads zod (~5 MB resident on a Pi for months).
 */
import type { ConnectOptions } from './connect.js';
import { configNames, loadCredentials } from './credentials.js';
import type { BrokerConfig } from './schema.js';

/** The brokers to use, in order; empty = none configured (the embedded broker, if enabled). */
export function brokerUrls(b: { url: string | null; urls?: readonly string[] | undefined }): string[] {
  return b.urls ? [...b.urls] : b.url !== null ? [b.url] : [];
}

/**
 * Connection settings every client of the gateway shares (channels, status); callers add clientId
 * and will. Reads the password file and TLS files now: errors name the setting and the path.
 */
export function brokerConnection(b: BrokerConfig, url: string | readonly string[], section = 'broker'): Omit<ConnectOptions, 'clientId'> {
  return {
    url,
    ...loadCredentials(b, configNames(section)),
    keepaliveSeconds: b.keepaliveSeconds,
    connectTimeoutMs: b.connectTimeoutMs,
    reconnectMs: b.reconnectMs,
    mqtt5: b.mqtt5,
  };
}
