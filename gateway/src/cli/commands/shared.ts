import type { Flag } from '../command.js';
import { DEFAULT_PREFIX } from '../../channel/topics.js';

export const connectFlags: Record<string, Flag> = {
  broker: { type: 'string', short: 'b', arg: 'URL', help: 'MQTT broker: mqtt://HOST:PORT, mqtts://, ws:// or wss://' },
};
export const channelFlag: Record<string, Flag> = {
  channel: { type: 'string', short: 'c', arg: 'NAME', help: 'talk channel name (case-insensitive)' },
};
export const prefixFlag: Record<string, Flag> = {
  prefix: { type: 'string', arg: 'TOPIC', help: 'topic prefix shared by everyone on the broker', default: DEFAULT_PREFIX },
};
export const commonFlags: Record<string, Flag> = {
  quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
};

import { normalizeChannel } from '../../channel/topics.js';
import { UsageError } from '../command.js';

export function channelArg(flags: Record<string, unknown>): string {
  const v = flags.channel;
  if (typeof v !== 'string' || v === '') throw new UsageError('--channel is required (e.g. --channel base)');
  try {
    return normalizeChannel(v);
  } catch (err) {
    throw new UsageError(`--channel: ${(err as Error).message}`);
  }
}
