/**
 * The composition root: the only place that knows how the pieces fit. Starts them in dependency
 * order and stops them in reverse; each piece gets a child logger and only what it needs.
 */
import { packagePath } from '../core/paths.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { EmbeddedBroker } from '../broker/embedded.js';
import type { HttpServer } from '../http/server.js';
import { type OpenChannel, SOFTWARE, openChannel } from '../talk/open.js';
import { type OpusRate, QUEUED_PLAYOUT } from '../../shared/channel/session.js';
import { UserError } from '../core/errors.js';
import { Bridge, capturePeriodMs } from '../bridge/bridge.js';
import { createEncoder, opusBackend } from '../codec/opus-node.js';
import { createChannelCrypto } from '../../shared/crypto/channel-crypto.js';
import { keepReplayState } from './replay-state.js';
import { connect, disconnect } from '../net/connect.js';
import { brokerConnection, brokerUrls } from '../net/broker-options.js';
import { brokerOf as brokerOfRaw } from '../net/failover.js';
import { redactUrl } from '../net/redact.js';
import type { Uplink } from '../net/uplink.js';
import type { Recorder } from '../history/recorder.js';
import { type Monitor, startMonitor, statusClientId, statusWill } from './status.js';
import { type Notifier, createNotifier } from './sd-notify.js';

/** The broker a client is on, as logged: never with its login (net/redact.ts). */
const brokerOf = (client: object) => redactUrl(brokerOfRaw(client));

const OPUS_RATES: ReadonlySet<number> = new Set([8000, 12000, 16000, 24000, 48000]);

export interface Daemon {
  broker: EmbeddedBroker | null;
  http: HttpServer | null;
  /** The first broker in the list (the preferred one); brokerOf(channel.client) says which is in use. */
  brokerUrl: string;
  uplink: Uplink | null;
  channels: OpenChannel[];
  bridges: Bridge[];
  monitor: Monitor;
  notify: Notifier;
  /** The history recorder, where `history:` is configured. */
  history: Recorder | null;
  stop(): Promise<void>;
}

const WEB_ROOT = packagePath('gateway/web/dist/');

const SECURITY_DROPS = new Set(['encrypted', 'auth', 'unknown-epoch', 'old-epoch', 'replay', 'stale', 'sender-mismatch', 'unencrypted', 'envelope']);

function localHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  const stack: Array<() => Promise<void>> = [];
  // Run before the stack, side by side: every transmitter is unkeyed first, before anything that
  // can stall (a lost broker, a status message to publish) and within the stop limit (cli/run.ts).
  const first: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const r of await Promise.allSettled(first.splice(0).map((f) => f()))) if (r.status === 'rejected') log.error({ err: (r.reason as Error)?.message }, 'error while stopping');
    while (stack.length) {
      try {
        await stack.pop()!();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'error while stopping');
      }
    }
  };
  try {
    let broker: EmbeddedBroker | null = null;
    let embeddedAuth: import('../broker/auth.js').EmbeddedAuth | null = null;
    if (config.embeddedBroker.enabled) {
      // Loaded only when used: aedes and ws cost memory a gateway on an external broker does not need.
      const { startEmbeddedBroker } = await import('../broker/embedded.js');
      const authConfig = config.embeddedBroker.auth;
      if (authConfig) {
        const { embeddedTeam, internalLogin } = await import('../broker/auth.js');
        // The daemon's own clients log in with a random per-start credential: no password of ours on disk.
        embeddedAuth = { team: await embeddedTeam(authConfig, config.broker.topicPrefix), internal: internalLogin(config.gateway.id) };
      }
      broker = await startEmbeddedBroker({
        host: config.embeddedBroker.host,
        port: config.embeddedBroker.port,
        log: log.child({ module: 'broker' }),
        auth: embeddedAuth,
        owner: { id: config.gateway.id, channels: config.channels.map((c) => c.name) },
      });
      stack.push(() => broker!.close());
      log.info({ event: 'listening', service: 'mqtt', url: `mqtt://${broker.tcp!.host}:${broker.tcp!.port}` }, `embedded MQTT broker on mqtt://${broker.tcp!.host}:${broker.tcp!.port}`);
    }

    let http: HttpServer | null = null;
    const channels: OpenChannel[] = [];
    let monitor: Monitor | null = null;
    let uplink: Uplink | null = null;
    if (config.http.enabled) {
      // Loaded only when used, like the embedded broker: node:https and the TLS code stay out otherwise.
      const { json, startHttpServer } = await import('../http/server.js');
      const { staticFiles } = await import('../http/static.js');
      http = await startHttpServer({
        host: config.http.host,
        port: config.http.port,
        tls: config.http.tls,
        redirectPort: config.http.redirectPort,
        log: log.child({ module: 'http' }),
        routes: [
          (req, res) => {
            if (req.url !== '/healthz') return false;
            // The same judgement as the systemd watchdog, and the same view of the channels as the
            // status topic (app/status.ts: a sealed channel's talker stays sealed, URLs without logins).
            if (!monitor) return json(res, 503, { status: 'starting' });
            const h = monitor.health();
            return json(res, h.status === 'ok' ? 200 : 503, h);
          },
          (req, res) => monitor?.metricsRoute?.(req, res) ?? false,
          staticFiles(WEB_ROOT, {
            missingIndex:
              `<!doctype html><meta charset="utf-8"><title>talkbridge</title><h1>talkbridge</h1>` +
              `<p>${SOFTWARE} — channels: ${config.channels.map((c) => c.name).join(', ')}</p>` +
              `<p>MQTT over WebSocket: <code>/mqtt</code>. The browser client is not built: run <code>npm run build</code>.</p>\n`,
          }),
        ],
      });
      stack.push(() => http!.close());
      if (broker) broker.attachWebSocket(http.server, '/mqtt');
      const base = http.url;
      const ws = broker ? `${base.replace(/^http/, 'ws')}/mqtt` : null;
      log.info(
        { event: 'listening', service: 'http', url: base, websocket: ws, open: http.openAt },
        `web on ${base}${ws ? `, MQTT over WebSocket on ${ws}` : ''}${http.openAt[0] !== `${base}/` ? ` — open ${http.openAt.join(' or ')}` : ''}`,
      );
      if (http.redirect)
        log.info(
          { event: 'listening', service: 'http-redirect', port: http.redirect.port },
          `team CA and redirect to HTTPS on http://${http.redirect.host}:${http.redirect.port}/ (phones: open it to install the CA)`,
        );
    }

    const configured = brokerUrls(config.broker);
    const urls = configured.length ? configured : broker ? [`mqtt://${localHost(broker.tcp!.host)}:${broker.tcp!.port}`] : [];
    const brokerUrl = urls[0];
    if (!brokerUrl) throw new UserError('no broker: set broker.url (or broker.urls) or enable embeddedBroker');

    const connection = brokerConnection(config.broker, urls);
    if (broker && !configured.length) Object.assign(connection, { username: broker.internal.username, password: broker.internal.password });
    else if (connection.username !== undefined && connection.username !== config.gateway.id)
      // Brokers with talkbridge ACLs let a login publish only under its own name (docs/security.md).
      log.warn(
        { event: 'broker', username: connection.username, gatewayId: config.gateway.id },
        `broker.username "${connection.username}" differs from gateway.id "${config.gateway.id}": a broker using talkbridge ACLs will drop this gateway's audio and status`,
      );
    // systemd's StateDirectory= (docs/operations.md): encrypted channels keep their replay memory
    // there across restarts; without one it lasts a run.
    const stateDir = process.env.STATE_DIRECTORY?.split(':')[0];
    for (const c of config.channels) {
      const clog = log.child({ module: 'channel', channel: c.name });
      // The sound cards that play this channel: at one Opus rate, the decoder produces it directly.
      const playRates = new Set(config.bridge.links.filter((l) => l.monitor.includes(c.name.toLowerCase())).map((l) => config.radios.find((r) => r.name === l.radio)!.audio.sampleRate));
      const [only] = playRates;
      const decodeRate = playRates.size === 1 && OPUS_RATES.has(only!) ? (only as OpusRate) : undefined;
      const crypto = await createChannelCrypto({
        channel: c.name,
        keys: c.keys,
        passphrase: c.passphrase,
        epoch: c.epoch,
        maxSkewMs: config.encryption.maxClockSkewSeconds * 1000,
        overlapMs: config.encryption.overlapMinutes * 60_000,
      });
      if (crypto && stateDir) {
        const save = keepReplayState(crypto, stateDir, clog);
        stack.push(save);
      }
      const ch = await openChannel({
        crypto,
        url: urls,
        connection,
        prefix: config.broker.topicPrefix,
        channel: c.name,
        name: config.gateway.name,
        sender: `${config.gateway.id}`,
        source: 'radio',
        silenceMs: config.floor.silenceMs,
        jitter: config.jitter,
        decodeRate,
        lateAfterMs: config.bridge.maxStartLagMs,
        // Every radio output queues what it is given (aplay's buffer, a file, nothing), so frames
        // leave on arrival and the queue holds the jitter depth (docs/operations.md).
        ...QUEUED_PLAYOUT,
        onRetry: (err, attempt, next, url) =>
          clog.warn(
            { event: 'broker', state: 'waiting', attempt, retryMs: next, next: redactUrl(url), err: redactUrl(err.message) },
            `${redactUrl(err.message)}; ${urls.length > 1 ? `trying ${redactUrl(url)} ` : 'retrying '}${next ? `in ${(next / 1000).toFixed(1)} s` : 'now'}`,
          ),
      });
      channels.push(ch);
      stack.push(() => ch.close());
      const s = ch.session;
      s.on('overStart', (i) => clog.info({ event: 'over-start', stream: i.stream, talker: i.name, sender: i.sender, source: i.source }, `over from ${i.name}`));
      s.on('overEnd', (r) => clog.info({ event: 'over-end', stream: r.stream, talker: r.name, reason: r.reason, seconds: r.durationMs / 1000, ...r.stats }, `over from ${r.name} ended (${r.reason})`));
      s.on('presence', (sender, p) => clog.info({ event: 'presence', sender, online: p !== null, name: p?.name }, p ? `${p.name} joined` : `${sender} left`));
      // Input refused by the encryption layer means a wrong key, a stale clock or someone injecting:
      // the operator must see it, but a flood must not flood the log (once a minute per reason).
      const warned = new Map<string, number>();
      s.on('dropped', (reason, detail) => {
        if (!SECURITY_DROPS.has(reason)) return clog.debug({ event: 'dropped', reason, detail }, 'dropped input');
        const now = Date.now();
        if (now - (warned.get(reason) ?? 0) < 60_000) return;
        warned.set(reason, now);
        clog.warn({ event: 'dropped', reason, detail, total: s.counters[reason] }, `refused input on channel ${c.name}: ${reason} (${detail})`);
      });
      let lastBroker = brokerOf(ch.client);
      ch.client.on('offline', () => clog.warn({ event: 'broker', state: 'offline', url: lastBroker }, `broker ${lastBroker} lost, reconnecting`));
      ch.client.on('connect', () => {
        const url = brokerOf(ch.client);
        const switched = url !== lastBroker;
        clog.info({ event: 'broker', state: 'online', url, switched, from: switched ? lastBroker : undefined }, switched ? `switched to broker ${url} (was ${lastBroker})` : `broker ${url} connected`);
        lastBroker = url;
      });
      clog.info(
        { event: 'joined', broker: brokerOf(ch.client), sender: s.sender, encrypted: crypto !== null, epochs: crypto?.epochs ?? [] },
        `joined channel ${c.name} on ${brokerOf(ch.client)} (${crypto ? `end-to-end encrypted, key epoch ${crypto.sendEpoch}` : 'NOT encrypted: anyone on the broker can listen'})`,
      );
    }

    // The recorder (and node:sqlite) loads only on gateways that keep history.
    let history: Recorder | null = null;
    if (config.history) {
      const h = config.history;
      const hlog = log.child({ module: 'history' });
      const [{ HistoryStore }, { Recorder }] = await Promise.all([import('../history/store.js'), import('../history/recorder.js')]);
      const store = await HistoryStore.open(h.dir);
      stack.push(async () => store.close());
      const recorder = new Recorder({ store, prefix: config.broker.topicPrefix, maxAgeMs: h.maxAgeDays * 86_400_000, maxBytes: h.maxMegabytes * 1024 * 1024 });
      stack.push(async () => recorder.stop());
      const wanted = h.channels?.map((c) => c.toLowerCase()) ?? config.channels.map((c) => c.name);
      for (const ch of channels) if (wanted.includes(ch.session.topics.channel)) recorder.attach(ch.client, ch.session.topics.channel);
      history = recorder;
      hlog.info({ event: 'history', state: store.state, file: store.file, channels: wanted, storedBytes: store.bytes }, `recording ${wanted.join(', ')} into ${store.file}`);
    }

    const bridges: Bridge[] = [];
    const session = (name: string) => channels.find((c) => c.session.topics.channel === name)!.session;
    // Radio drivers (serialport, onoff, …) load only on gateways that have radios.
    const factory = config.bridge.links.length ? await import('../radio/factory.js') : null;
    for (const link of config.bridge.links) {
      const { createAudioIn, createAudioOut, createCos, createPtt, programModule } = factory!;
      const rc = config.radios.find((r) => r.name === link.radio)!;
      const rlog = log.child({ module: 'radio', radio: rc.name });
      const deps = { log: rlog };
      await programModule(rc.name, rc.module, deps);
      const input = createAudioIn(rc.audio, deps, capturePeriodMs(config.codec.frameMs, config.codec.framesPerPacket));
      const output = createAudioOut(rc.audio, deps);
      const ptt = await createPtt(rc.ptt, deps);
      const cos = await createCos(rc.cos, input, deps);
      const encoder = await createEncoder(config.codec);
      const bridge = new Bridge({
        radio: { name: rc.name, ptt, cos, input, output },
        transmit: link.transmit ? session(link.transmit) : null,
        monitor: link.monitor.map(session),
        encoder,
        frameMs: config.codec.frameMs,
        framesPerPacket: config.codec.framesPerPacket,
        config: config.bridge,
        log: rlog,
      });
      // Registered before start: a half-started bridge still unkeys on the way out.
      first.push(() => bridge.stop());
      await bridge.start();
      bridges.push(bridge);
    }

    const id = { prefix: config.broker.topicPrefix, gatewayId: config.gateway.id, name: config.gateway.name, version: SOFTWARE };
    if (config.uplink?.enabled) {
      // Started, not awaited: the upstream may be unreachable for hours, and the kit works without it.
      // Nothing about it may stop the kit from starting, not even an unreadable password file.
      const ulog = log.child({ module: 'uplink' });
      try {
        const { startUplink } = await import('../net/uplink.js');
        const u = config.uplink;
        const remotePrefix = u.topicPrefix ?? config.broker.topicPrefix;
        const up = startUplink({
          local: connection,
          remote: brokerConnection({ ...u, topicPrefix: remotePrefix }, brokerUrls(u), 'uplink'),
          localPrefix: config.broker.topicPrefix,
          remotePrefix,
          channels: u.channels ?? config.channels.map((c) => c.name),
          gatewayId: config.gateway.id,
          remoteWill: statusWill({ ...id, prefix: remotePrefix }),
          log: ulog,
        });
        uplink = up;
        stack.push(() => up.stop());
        const shown = brokerUrls(u).map((x) => redactUrl(x));
        ulog.info({ event: 'uplink', state: 'starting', brokers: shown, channels: up.status().channels }, `uplink to ${shown.join(', ')} for channel(s) ${up.status().channels.join(', ')}`);
      } catch (err) {
        ulog.error({ event: 'uplink', state: 'failed', err: (err as Error).message }, `uplink not started: ${(err as Error).message}`);
      }
    }

    // Gateway status: its own connection, whose Last Will says offline.
    const statusClient = await connect({
      ...connection,
      clientId: statusClientId(id.gatewayId),
      will: statusWill(id),
    });
    stack.push(() => disconnect(statusClient));
    // /metrics is served by the web server: without it, prom-client is not even loaded.
    const metricsModule = http ? await import('./metrics.js') : null;
    const mon = startMonitor({
      ...id,
      bridges,
      channels,
      client: statusClient,
      uplink: uplink ? () => uplink!.status() : undefined,
      history: history ? () => history!.status() : undefined,
      log: log.child({ module: 'status' }),
      ...(metricsModule ? { createMetrics: (m) => metricsModule.createMetrics({ ...m, broker }) } : {}),
    });
    monitor = mon;
    stack.push(() => mon.stop());

    // Which codec a kit ended up with is the first question when its CPU is higher than expected.
    const backend = opusBackend();
    log.info({ event: 'codec', backend }, backend === 'native' ? 'Opus: native libopus' : 'Opus: the WebAssembly build (the native library did not load here)');
    const notify = createNotifier({ log: log.child({ module: 'systemd' }) });
    await notify.ready(`bridging ${bridges.length} radio(s) on ${channels.length} channel(s)`);
    // The watchdog is fed only while the pipeline is healthy, not merely while the loop turns.
    notify.watchdog(() => mon.healthy());
    stack.push(() => notify.stopping('stopping'));
    return { broker, http, brokerUrl, uplink, channels, bridges, monitor: mon, notify, history, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
