/**
 * limits.ts's bounds, installed on aedes around whatever authenticate / authorizePublish hooks are
 * already there (auth.ts's with embeddedBroker.auth, aedes's permissive defaults without): the
 * bounds hold on an open broker too.
 */
import type { Aedes, AuthenticateError, Client } from 'aedes';
import type { Logger } from '../core/log.js';
import { remoteAddress, same } from './auth.js';
import { type BrokerLimits, type LimitCounters, LoginThrottle, RetainedIndex, addressKey, classify, ownClientIds, payloadSize, rateLimitedWarn } from './limits.js';

/** Where a dropped publish goes: a `$` topic no wildcard matches, emptied (an open broker lets anyone subscribe to it). */
const DROPPED_TOPIC = '$talkbridge/dropped';

export interface GuardOptions {
  limits: BrokerLimits;
  counters: LimitCounters;
  log: Logger;
  /** The daemon's own login (trusted; exempt from the login bounds) and who it is. */
  internal: { username: string; password: string };
  /** The gateway's id and channels, whose client ids only its own login may use; null reserves none. */
  owner: { id: string; channels: readonly string[] } | null;
  /**
   * A team login may use the reserved ids too when it is named as the gateway: that is the
   * gateway's own credential when it reaches this broker through broker.url.
   */
  teamOwnerAllowed: boolean;
}

function refusal(code: 2 | 3, message: string): AuthenticateError {
  const err = new Error(message) as AuthenticateError;
  err.returnCode = code;
  return err;
}

export interface Guard {
  /** For aedes.handle's result: bounds the packets this connection may announce. */
  limitPackets(client: Client): void;
  readonly throttle: LoginThrottle;
  readonly retained: RetainedIndex;
}

export function installGuard(aedes: Aedes, o: GuardOptions): Guard {
  const { counters, limits } = o;
  const warn = rateLimitedWarn(o.log);
  const throttle = new LoginThrottle(limits.login);
  const retained = new RetainedIndex(limits);
  const reserved = o.owner ? ownClientIds(o.owner.id, o.owner.channels) : () => false;

  const authenticate = aedes.authenticate;
  aedes.authenticate = (client, username, password, done) => {
    // The daemon's own login first and unconditionally: no flood from anyone may lock the gateway out of its own broker.
    if (username === o.internal.username && password !== undefined && same(password, o.internal.password)) return authenticate(client, username, password, done);
    const remote = remoteAddress(client);
    if (reserved(client.id) && !(o.teamOwnerAllowed && username === o.owner?.id)) {
      counters.clientIdsRefused++;
      warn(
        `id:${client.id}`,
        { event: 'auth', result: 'client-id-refused', client: client.id, username: username ?? null, remote },
        `refused MQTT client id ${client.id}${remote ? ` from ${remote}` : ''}: it is reserved for the gateway's own connections`,
      );
      return done(refusal(2, 'client identifier reserved for the gateway'), false);
    }
    const key = addressKey(remote);
    const throttled = throttle.check(key);
    if (throttled) {
      counters.loginsThrottled++;
      warn(
        `throttle:${throttled === 'global' ? '*' : key}`,
        { event: 'auth', result: 'throttled', scope: throttled, remote, username: username ?? null },
        throttled === 'global'
          ? `too many failed MQTT logins from everywhere: logins from new addresses refused for now (${remote ?? 'unknown'})`
          : `too many failed MQTT logins from ${remote ?? 'unknown'}: its logins refused for a while`,
      );
      // "Server unavailable": come back later. The password was not looked at, so the answer tells a guesser nothing.
      return done(refusal(3, 'too many failed logins, try again later'), false);
    }
    authenticate(client, username, password, (err, ok) => {
      if (err || !ok) throttle.failed(key);
      else throttle.succeeded(key);
      done(err, ok);
    });
  };

  const authorizePublish = aedes.authorizePublish;
  aedes.authorizePublish = (client, packet, done) => {
    const { kind, bucket } = classify(packet.topic);
    const size = payloadSize(packet.payload);
    const max = limits.payloadBytes[kind];
    if (size > max) {
      counters.publishesTooLarge++;
      warn(
        `size:${kind}`,
        { event: 'limit', result: 'publish-too-large', client: client?.id ?? null, topic: packet.topic, bytes: size, max },
        `dropped a ${kind} publish of ${size} bytes on ${packet.topic} (at most ${max})`,
      );
      packet.topic = DROPPED_TOPIC;
      packet.payload = Buffer.alloc(0);
      packet.retain = false;
      return done(null);
    }
    authorizePublish(client, packet, (err) => {
      if (!err && packet.retain && !retained.retain(packet.topic, bucket, size)) {
        counters.retainedRefused++;
        warn(
          `retained:${bucket}`,
          { event: 'limit', result: 'retained-refused', client: client?.id ?? null, topic: packet.topic, held: retained.size },
          `not keeping a retained message on ${packet.topic}: ${bucket || 'the broker'} holds as many as it may (delivered to those online only)`,
        );
        packet.retain = false;
      }
      done(err);
    });
  };

  let hookMissing = false;
  return {
    throttle,
    retained,
    limitPackets(client: Client) {
      // aedes reads with mqtt-packet's parser, which would buffer a packet of any announced length
      // (up to 256 MB): the check goes where the length is known and nothing of the body is held yet.
      type Parser = { _parseLength(): boolean; _emitError(e: Error): void; packet: { length: number } };
      const parser = (client as unknown as { _parser?: Parser })._parser;
      if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') {
        if (!hookMissing) o.log.error({ event: 'limit' }, 'packet size limit not enforced: this aedes version reads packets differently');
        hookMissing = true;
        return;
      }
      const parseLength = parser._parseLength;
      parser._parseLength = function (this: Parser) {
        if (!parseLength.call(this)) return false;
        if (this.packet.length <= limits.packetBytes) return true;
        counters.packetsTooLarge++;
        const remote = remoteAddress(client);
        warn(
          `packet:${addressKey(remote)}`,
          { event: 'limit', result: 'packet-too-large', client: client.id, remote, bytes: this.packet.length, max: limits.packetBytes },
          `closed an MQTT connection${remote ? ` from ${remote}` : ''} announcing a ${this.packet.length}-byte packet (at most ${limits.packetBytes})`,
        );
        this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds ${limits.packetBytes}`));
        return false;
      };
    },
  };
}
