/**
 * The byte stream under an MQTT connection, made here instead of by `mqtt.connect()`. MQTT.js's URL
 * front end loads every transport it has on the first connect (WebSocket, SOCKS with its IP-address
 * library, …): inside the daemon's bundle that is code held in memory for months by a gateway that
 * only ever speaks mqtt://. Plain TCP and TLS are Node's own sockets, opened as MQTT.js's own
 * builders open them; a WebSocket URL, or a SOCKS proxy (`MQTTJS_SOCKS_PROXY`, which MQTT.js honours
 * and so do we), loads MQTT.js's builder for it, once, before the first connection that needs it.
 *
 * The builder reads the client's options at each (re)connect, so net/failover.ts can point the same
 * client at the next broker of its list by changing them.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { IClientOptions, MqttClient } from 'mqtt';

type Builder = (client: MqttClient, opts: IClientOptions) => Duplex;

const loaded = new Map<string, Builder>();

function socksProxy(): string | undefined {
  return process.env.MQTTJS_SOCKS_PROXY || undefined;
}

/** Which builder a protocol needs: ours (tcp, tls) or one of MQTT.js's, named by its module. */
function mqttjsModule(protocol: string): string | null {
  if (protocol === 'ws' || protocol === 'wss') return 'ws';
  if (socksProxy()) return protocol === 'mqtts' ? 'tls' : 'tcp';
  return null;
}

/** Loads what the given broker URLs need beyond Node's TCP and TLS; throws on a scheme nobody speaks. */
export async function prepareTransports(urls: readonly string[]): Promise<void> {
  for (const url of urls) {
    const protocol = new URL(url).protocol.replace(/:$/, '');
    if (!['mqtt', 'mqtts', 'ws', 'wss'].includes(protocol)) throw new Error(`unsupported scheme ${protocol}:// (mqtt, mqtts, ws or wss)`);
    const mod = mqttjsModule(protocol);
    if (!mod || loaded.has(mod)) continue;
    // CommonJS modules: their default import is module.exports (in Node and in the bundle alike).
    if (mod === 'ws') loaded.set(mod, (await import('mqtt/lib/connect/ws')).default.streamBuilder as unknown as Builder);
    else if (mod === 'tls') loaded.set(mod, (await import('mqtt/lib/connect/tls')).default.default as unknown as Builder);
    else loaded.set(mod, (await import('mqtt/lib/connect/tcp')).default.default as unknown as Builder);
  }
}

/** The stream builder for `new MqttClient(…)`: call prepareTransports() for the URLs first. */
export function buildStream(client: MqttClient): Duplex {
  const o = client.options;
  const protocol = o.protocol ?? 'mqtt';
  const mod = mqttjsModule(protocol);
  if (mod) {
    const b = loaded.get(mod);
    if (!b) throw new Error(`the ${protocol}:// transport was not loaded`);
    if (mod !== 'ws') o.socksProxy = socksProxy();
    return b(client, o);
  }
  const host = o.hostname || o.host || 'localhost';
  if (protocol === 'mqtt') return net.createConnection({ host, port: o.port || 1883 });
  const rejectUnauthorized = o.rejectUnauthorized !== false;
  const s = tls.connect({
    host,
    port: o.port || 8883,
    servername: o.servername || (net.isIP(host) ? undefined : host),
    rejectUnauthorized,
    ...(o.ca ? { ca: o.ca as tls.ConnectionOptions['ca'] } : {}),
    ...(o.cert && o.key ? { cert: o.cert as tls.ConnectionOptions['cert'], key: o.key as tls.ConnectionOptions['key'] } : {}),
  });
  // As MQTT.js's TLS builder: a failed handshake is the client's error (net/connect.ts names the
  // cause from it), and the half-open socket is closed.
  const early = (err: Error) => {
    if (rejectUnauthorized) client.emit('error', err);
    s.end();
  };
  s.on('error', early);
  s.once('secureConnect', () => {
    if (rejectUnauthorized && !s.authorized) s.emit('error', new Error('TLS not authorized'));
    else s.removeListener('error', early);
  });
  return s;
}
