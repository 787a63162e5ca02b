import { randomBytes } from 'node:crypto';
import { DEFAULT_PREFIX, validatePrefix, validateSender } from '../../../shared/channel/topics.js';
import { UserError } from '../../core/errors.js';
import { connect, disconnect } from '../../net/connect.js';
import type { ChannelStatusJson, RadioStatusJson } from '../../app/status.js';
import { STATUS_SEGMENT, statusFilter } from '../../../shared/channel/topics.js';
import { type Command, UsageError, intFlag, urlsFlag } from '../command.js';
import { brokerOf } from '../../net/failover.js';
import { redactUrl } from '../../net/redact.js';
import { safeText } from '../terminal.js';
import { authFlags, connectionFromFlags, prefixFlag } from './shared.js';

/** A string field of a status document, fit for a terminal (a status topic is anyone's to write). */
const str = (x: unknown, max = 64): string | null => (typeof x === 'string' ? safeText(x.slice(0, max)) : null);
/** A broker URL from a status document: an older gateway may still publish one with a login in it. */
const url = (x: unknown): string | null => (typeof x === 'string' ? str(redactUrl(x), 200) : null);
const db = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? `${Math.round(x)} dBFS` : 'silent');

function radioText(r: Partial<RadioStatusJson>): string {
  const parts = [`${str(r.state, 16) ?? '?'}`, `PTT ${r.ptt === true ? 'ON' : 'off'}`, `COS ${r.cos === true ? 'open' : 'closed'}`];
  if (r.audioOk === false) parts.push('AUDIO DEVICE MISSING');
  const over = r.over && typeof r.over === 'object' ? r.over : null;
  if (over) {
    const dir = over.direction === 'channel-to-radio' ? `transmitting ${str(over.talker) ?? '?'} from ${str(over.channel) ?? '?'}` : `sending to ${str(over.channel) ?? '?'}`;
    parts.push(dir);
  }
  if (r.rx && typeof r.rx === 'object') parts.push(`rx ${db(r.rx.rmsDb)}`);
  return `radio ${str(r.radio) ?? '?'}: ${parts.join(', ')}`;
}

function channelText(c: Partial<ChannelStatusJson>): string {
  const talking = str(c.talking);
  return `channel ${str(c.channel) ?? '?'}: ${c.connected === true ? 'connected' : 'DISCONNECTED'}${talking ? `, ${talking} talking` : ''}`;
}

function uplinkText(u: Record<string, unknown>): string {
  const c = (u.counters && typeof u.counters === 'object' ? u.counters : {}) as Record<string, unknown>;
  const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  const where = url(u.broker);
  return `uplink ${u.connected === true ? `connected to ${where ?? '?'}` : `DISCONNECTED${where ? ` (last ${where})` : ''}`}, ${n(c.up)} up / ${n(c.down)} down, ${n(c.loops)} loops dropped`;
}

/** One line per gateway, from whatever arrived: a status topic is anyone's to write, so nothing is trusted. */
export function statusLine(rawId: string, payload: Uint8Array): string | null {
  if (payload.length === 0) return null;
  // The id is a topic level: as much the publisher's choice as the document.
  const id = safeText(rawId);
  let doc: Record<string, unknown>;
  try {
    const j: unknown = JSON.parse(new TextDecoder().decode(payload));
    if (!j || typeof j !== 'object' || Array.isArray(j)) throw new Error('not an object');
    doc = j as Record<string, unknown>;
  } catch (err) {
    return `${id}: unreadable status (${(err as Error).message.slice(0, 80)})`;
  }
  const name = str(doc.name);
  const head = `${id}${name ? ` (${name})` : ''}: ${doc.online === true ? 'online' : 'OFFLINE'}${str(doc.version) ? ` ${str(doc.version)}` : ''}`;
  if (doc.online !== true) return head;
  const radios = Array.isArray(doc.radios) ? doc.radios.filter((r) => r && typeof r === 'object').map((r) => radioText(r as Partial<RadioStatusJson>)) : [];
  const channels = Array.isArray(doc.channels) ? doc.channels.filter((c) => c && typeof c === 'object').map((c) => channelText(c as Partial<ChannelStatusJson>)) : [];
  const broker = url(doc.broker);
  const parts = [head, ...(broker ? [`broker ${broker}`] : []), ...radios, ...channels];
  if (doc.uplink && typeof doc.uplink === 'object') parts.push(uplinkText(doc.uplink as Record<string, unknown>));
  return parts.join(' | ');
}

export const status: Command = {
  name: 'status',
  summary: "Show each gateway's status (online, PTT, carrier, current over, levels, channels) from its retained status topic.",
  usage: 'status --broker URL [--prefix TOPIC] [--gateway ID] [--watch]',
  details:
    'Reads <prefix>/_gateways/<id>/status. Without --watch it prints one line per gateway and exits\n' +
    '(1 when no gateway has published a status); with --watch it keeps printing a line whenever a\n' +
    "gateway's status changes, until Ctrl-C.",
  positionals: [0, 0],
  flags: {
    broker: { type: 'string', short: 'b', arg: 'URL', multiple: true, help: 'MQTT broker, e.g. mqtt://127.0.0.1:1883; several (repeat the flag or a comma list) are tried in order' },
    ...authFlags,
    ...prefixFlag,
    gateway: { type: 'string', short: 'g', arg: 'ID', help: 'only this gateway' },
    watch: { type: 'boolean', short: 'w', help: 'keep following changes' },
    wait: { type: 'string', arg: 'MS', help: 'how long to collect retained statuses before printing, 100-10000', default: '500' },
  },
  async run(flags) {
    const urls = urlsFlag(flags, 'broker');
    const waitMs = intFlag(flags, 'wait', 100, 10000)!;
    const prefix = String(flags.prefix ?? DEFAULT_PREFIX);
    const gateway = flags.gateway as string | undefined;
    try {
      validatePrefix(prefix);
      if (gateway !== undefined) validateSender(gateway);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const filter = statusFilter(prefix, gateway);
    const client = await connect({
      ...connectionFromFlags(flags),
      url: urls,
      clientId: `tb-status-${randomBytes(4).toString('hex')}`,
      reconnectMs: 1000,
    });
    const lines = new Map<string, string>();
    const idOf = (topic: string) => topic.slice(`${prefix}/${STATUS_SEGMENT}/`.length, -'/status'.length);
    let live = false;
    client.on('message', (topic, payload) => {
      const id = idOf(topic);
      const line = statusLine(id, payload);
      if (line === null) {
        lines.delete(id);
        if (live) process.stdout.write(`${safeText(id)}: status cleared\n`);
        return;
      }
      if (lines.get(id) === line) return;
      lines.set(id, line);
      if (live) process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
    });
    try {
      await new Promise<void>((resolve, reject) => client.subscribe(filter, { qos: 1 }, (err) => (err ? reject(new UserError(`subscribe to ${filter} refused: ${err.message}`)) : resolve())));
      // Retained messages follow the SUBACK at once; a short quiet spell collects them all.
      await new Promise((r) => setTimeout(r, waitMs));
      for (const id of [...lines.keys()].sort()) process.stdout.write(`${lines.get(id)}\n`);
      if (!flags.watch) {
        if (lines.size === 0) {
          process.stderr.write(`talkbridge: no gateway status ${gateway ? `for ${gateway} ` : ''}under ${prefix}/${STATUS_SEGMENT} on ${redactUrl(brokerOf(client))}\n`);
          return 1;
        }
        return 0;
      }
      live = true;
      if (lines.size === 0) process.stdout.write(`waiting for gateway status under ${prefix}/${STATUS_SEGMENT} on ${redactUrl(brokerOf(client))} (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      return 0;
    } finally {
      await disconnect(client);
    }
  },
};
