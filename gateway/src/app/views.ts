/**
 * What the status publisher and the metrics read of the gateway: its identity and, per channel,
 * the session's counters and floor and the connection's state. Both take these views instead of
 * each other's types.
 */
import type { ChannelSession } from '../../shared/channel/session.js';

export interface GatewayIdentity {
  prefix: string;
  gatewayId: string;
  name: string;
  version: string;
}

/** The part of a channel the monitor reads; `OpenChannel` (talk/open.ts) is one. */
export interface ChannelView {
  readonly session: Pick<ChannelSession, 'counters' | 'holder' | 'on'> & { readonly topics: { readonly channel: string } };
  readonly client: { readonly connected: boolean };
}
