/**
 * The uplink as a native Mosquitto bridge: for kits whose local broker is Mosquitto, the broker
 * itself can carry the channels upstream (`talkbridge check-config --mosquitto-bridge`). It does
 * what net/uplink.ts does, in C, inside the broker: forward both ways, never loop.
 */
import { UserError } from '../core/errors.js';
import type { Config } from '../config/schema.js';
import { brokerUrls } from './broker-options.js';
import { STATUS_SEGMENT } from '../../shared/channel/topics.js';

/** The `connection` stanza for mosquitto.conf (or a file in /etc/mosquitto/conf.d/). The password is never printed. */
export function mosquittoBridgeConf(config: Config): string {
  const u = config.uplink;
  if (!u) throw new UserError('the config has no uplink section: nothing to bridge');
  const urls = brokerUrls(u);
  const tcp = urls.filter((x) => /^mqtts?:/.test(x));
  if (!tcp.length) throw new UserError('a Mosquitto bridge speaks mqtt:// and mqtts:// only; every uplink URL is a WebSocket one');
  const tls = tcp[0]!.startsWith('mqtts:');
  const mixed = tcp.some((x) => x.startsWith('mqtts:') !== tls);
  const addresses = tcp
    .filter((x) => x.startsWith('mqtts:') === tls)
    .map((x) => {
      const url = new URL(x);
      return `${url.hostname}:${url.port || (tls ? 8883 : 1883)}`;
    });
  const local = config.broker.topicPrefix;
  const remote = u.topicPrefix ?? local;
  const channels = u.channels ?? config.channels.map((c) => c.name);
  const skipped = urls.filter((x) => !tcp.includes(x) || x.startsWith('mqtts:') !== tls);
  const lines = [
    `# talkbridge uplink as a Mosquitto bridge (talkbridge check-config --mosquitto-bridge).`,
    `# Put it in /etc/mosquitto/conf.d/talkbridge-uplink.conf and leave uplink out of the talkbridge config.`,
    ...(skipped.length ? [`# Not usable by a Mosquitto bridge (WebSocket${mixed ? ', or a mix of mqtt and mqtts' : ''}): ${skipped.join(' ')}`] : []),
    `connection talkbridge-uplink-${config.gateway.id}`,
    // Several addresses: tried in turn; with round_robin false the first is preferred and Mosquitto goes back to it.
    `address ${addresses.join(' ')}`,
    `round_robin false`,
    // MQTT 5 keeps the retain flag as published (presence stays retained upstream) and stops echoes (no-local).
    `bridge_protocol_version mqttv50`,
    `remote_clientid tb-${config.gateway.id}-uplink`,
    `cleansession true`,
    `restart_timeout 2 30`,
    `notifications false`,
    ...(u.username !== undefined ? [`remote_username ${u.username}`, `# remote_password <the uplink password: not printed; Mosquitto needs it here>`] : []),
    ...(tls
      ? [
          u.tls?.ca ? `bridge_cafile ${u.tls.ca}` : `bridge_capath /etc/ssl/certs`,
          ...(u.tls?.cert ? [`bridge_certfile ${u.tls.cert}`, `bridge_keyfile ${u.tls.key}`] : []),
          ...(u.tls?.rejectUnauthorized === false ? ['bridge_insecure true'] : []),
        ]
      : []),
    // topic <pattern> both <qos> <local prefix> <remote prefix>: QoS 0 audio stays QoS 0.
    ...channels.map((c) => `topic ${c}/+/+ both 1 ${local}/ ${remote}/`),
    `topic ${STATUS_SEGMENT}/+/status out 1 ${local}/ ${remote}/`,
  ];
  return lines.join('\n') + '\n';
}
