/**
 * The browser client: joins a talk channel over MQTT-over-WebSocket with the shared ChannelSession
 * and wires it to the page — push-to-talk, who is talking, level meter, presence, the overs
 * received (each replayable) and every connection and microphone state.
 */
import { ChannelSession, type AudioFrame, type OverReport, type TalkerInfo } from '../../src/channel/session.js';
import { loginSender, makeSenderId } from '../../src/channel/topics.js';
import { createChannelCrypto } from '../../src/crypto/channel-crypto.js';
import { KeyError, formatKey, keyFromPassphrase, parseKey } from '../../src/crypto/keys.js';
import { AudioEngine } from './audio.js';
import { type Codecs, loadCodecs } from './codec.js';
import {
  CODEC,
  type JoinParams,
  SILENCE_MS,
  brokerProblem,
  buildFragment,
  cleanName,
  type ChannelRef,
  defaultBroker,
  fragmentHasKey,
  keyFor,
  loadName,
  type Login,
  loginFor,
  storeLogin,
  userProblem,
  loadRecent,
  parseFragment,
  rememberRecent,
  saveName,
  storeKey,
  withDefaults,
  withoutKey,
} from './config.js';
import { BrokerConnection, type ConnState } from './net.js';
import { Talker, type TalkState } from './talker.js';
import { type MicState, type Model, NEEDS_SECURE_CONTEXT, cryptoProblemAfter, cryptoProblemAfterAuthenticated, cryptoView, loginRefusedText, onlineShown, sourceLabel, viewOf } from './view.js';
import { DEFAULT_PREFIX, normalizeChannel } from '../../src/channel/topics.js';

const SOFTWARE = 'talkbridge-web/0.1';
/** Received overs kept for replay, and the audio kept for them (16 kHz samples, ~10 minutes). */
const MAX_OVERS = 30;
const MAX_KEPT_SAMPLES = 16000 * 600;

interface TestHook {
  state?: () => unknown;
  decoded?: Array<{ stream: string; name: string; chunks: Int16Array[] }>;
  played?: Float32Array[];
  playedRate?: number;
  latencies?: number[];
  sent?: number;
  stats?: unknown[];
  /** How long the last passphrase took to turn into a key, ms. */
  deriveMs?: number;
  /** The text the last QR code was drawn from, and the SVG the library drew. */
  qr?: { text: string; svg: string };
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const base = new URL('./', location.href);
const storage = (() => {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
})();
/** Channel keys for this tab only (config.ts: where keys are kept). */
const tabStorage = (() => {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
})();
const hook: TestHook | null = typeof (window as { __talkbridgeTest?: unknown }).__talkbridgeTest === 'object' ? (window as unknown as { __talkbridgeTest: TestHook }).__talkbridgeTest : null;

interface OverEntry {
  stream: string;
  name: string;
  source: string;
  at: Date;
  chunks: Int16Array[];
  samples: number;
  report: OverReport | null;
}

interface Joined {
  params: JoinParams;
  conn: BrokerConnection;
  session: ChannelSession;
  talker: Talker;
  codecs: Codecs;
  offs: Array<() => void>;
}

const audio = new AudioEngine(new URL('worklet.js', base));
const model: Model = { conn: { kind: 'setup' }, mic: audio.mic, talk: { kind: 'idle' }, holder: null, now: Date.now() };
let joined: Joined | null = null;
let joining = false;
let overs: OverEntry[] = [];
let wakeLock: { release(): Promise<void> } | null = null;
let level = { value: 0, at: 0 };
/** Someone else's message authenticated under our key since joining (so our key is right). */
let othersAuthenticated = false;

// ---- rendering ----------------------------------------------------------------------------------

let renderQueued = false;
function render(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderNow();
  });
}

function renderNow(): void {
  model.now = Date.now();
  const v = viewOf(model);
  const st = $('status');
  st.textContent = v.status.text;
  st.dataset.tone = v.status.tone;
  const ptt = $('ptt');
  ptt.dataset.look = v.ptt.look;
  ptt.setAttribute('aria-disabled', String(v.ptt.unavailable));
  ptt.setAttribute('aria-pressed', String(v.ptt.pressed));
  $('ptt-caption').textContent = v.ptt.caption;
  $('ptt-hint').textContent = v.hint;
  const note = $('mic-note');
  note.hidden = !v.micNote;
  note.textContent = v.micNote ?? '';
  const tk = $('talker');
  tk.dataset.state = v.talker ? (v.talker.self ? 'self' : 'other') : 'clear';
  $('talker-name').textContent = v.talker ? (v.talker.self ? 'You are talking' : v.talker.name) : 'Channel clear';
  $('talker-source').textContent = v.talker && !v.talker.self ? v.talker.source : '';
  $('talker-source').hidden = !v.talker || v.talker.self;
  $('talker-source').className = `badge src-${model.holder?.source ?? ''}`;
  document.body.dataset.talk = model.talk.kind;
  if (model.crypto) {
    const c = cryptoView(model.crypto);
    const e2e = $('e2e');
    e2e.textContent = c.label;
    e2e.dataset.tone = c.tone;
    const n = $('e2e-note');
    n.hidden = !c.note;
    n.textContent = c.note ?? '';
    n.dataset.tone = c.noteTone;
    $('remember-wrap').hidden = !model.crypto.encrypted;
    $('share').textContent = model.crypto.encrypted ? 'Copy invite link' : 'Copy link';
    if ($('qr-wrap').hidden) $('show-qr').textContent = model.crypto.encrypted ? 'Show invite QR' : 'Show QR';
  }
}

function renderPresence(): void {
  const ul = $('presence');
  ul.replaceChildren();
  if (!joined) return;
  const { shown: list, total } = onlineShown(joined.session.online, joined.session.sender);
  for (const [sender, p] of list) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = p.name + (sender === joined.session.sender ? ' (you)' : '');
    const src = document.createElement('span');
    src.className = `badge src-${p.source}`;
    src.textContent = sourceLabel(p.source);
    li.append(name, src);
    ul.append(li);
  }
  $('online-count').textContent = total > list.length ? `(${list.length} of ${total})` : `(${list.length})`;
}

function fmtTime(d: Date): string {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function renderOvers(): void {
  const ol = $('overs');
  ol.replaceChildren();
  $('overs-empty').hidden = overs.length > 0;
  for (const o of [...overs].reverse()) {
    const li = document.createElement('li');
    li.dataset.stream = o.stream;
    const text = document.createElement('span');
    text.className = 'over-text';
    const secs = o.report ? `${(o.report.durationMs / 1000).toFixed(1)} s` : 'receiving…';
    const reason = o.report && o.report.reason !== 'done' ? ` · ${o.report.reason}` : '';
    text.textContent = `${fmtTime(o.at)} · ${o.name} (${o.source}) · ${secs}${reason}`;
    li.append(text);
    if (o.report && o.samples > 0) {
      const b = document.createElement('button');
      b.className = 'replay';
      b.textContent = 'Replay';
      b.setAttribute('aria-label', `Replay the over from ${o.name} at ${fmtTime(o.at)}`);
      b.addEventListener('click', () => {
        const pcm = new Int16Array(o.samples);
        let at = 0;
        for (const c of o.chunks) pcm.set(c, at), (at += c.length);
        b.textContent = 'Playing…';
        audio.replay(pcm, () => (b.textContent = 'Replay')).catch(() => (b.textContent = 'Replay'));
      });
      li.append(b);
    } else if (o.report) {
      const s = document.createElement('span');
      s.className = 'muted';
      s.textContent = 'audio no longer kept';
      li.append(s);
    }
    ol.append(li);
  }
}

function meterLoop(): void {
  const bar = $('meter-bar');
  // Falls back to zero 150 ms after the last report (the worklets report only while audio flows).
  const age = performance.now() - level.at;
  const v = age > 150 ? 0 : level.value;
  const db = v > 0 ? 20 * Math.log10(v) : -100;
  const w = Math.max(0, Math.min(1, (db + 60) / 60));
  bar.style.transform = `scaleX(${w.toFixed(3)})`;
  requestAnimationFrame(meterLoop);
}

function banner(text: string | null, tone: 'warn' | 'error' | 'info' = 'warn'): void {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text ?? '';
  b.dataset.tone = tone;
}

// ---- joining ------------------------------------------------------------------------------------

function senderFor(name: string): string {
  const key = `talkbridge.sender.${name}`;
  try {
    const s = sessionStorage.getItem(key);
    if (s && /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(s)) return s;
    const id = makeSenderId(name);
    sessionStorage.setItem(key, id);
    return id;
  } catch {
    return makeSenderId(name);
  }
}

function showJoin(errors: string[] = []): void {
  $('join').hidden = false;
  $('room').hidden = true;
  $('join-error').textContent = errors.join(' ');
  renderRecent();
}

function renderRecent(): void {
  const ul = $('recent');
  ul.replaceChildren();
  const list = loadRecent(storage);
  $('recent-wrap').hidden = list.length === 0;
  for (const r of list) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'recent';
    b.textContent = r.channel;
    b.classList.toggle('lock', r.encrypted === true);
    const small = document.createElement('small');
    small.textContent = r.broker;
    b.append(small);
    b.addEventListener('click', () => {
      $<HTMLInputElement>('f-channel').value = r.channel;
      $<HTMLInputElement>('f-broker').value = r.broker;
      const key = storedKey(r);
      showKeyNote(
        key ? `Using the key kept for #${r.channel} (epoch ${parseKey(key).epoch}).` : r.encrypted ? `#${r.channel} is encrypted: open its invite link, or type its passphrase.` : null,
        !!key,
      );
      if (r.encrypted && !key) return $<HTMLInputElement>('f-passphrase').focus();
      $<HTMLInputElement>('f-name').focus();
      if (cleanName($<HTMLInputElement>('f-name').value)) $<HTMLFormElement>('join-form').requestSubmit();
    });
    li.append(b);
    ul.append(li);
  }
}

function refOf(p: { broker: string; prefix: string; channel: string }): ChannelRef {
  return { broker: p.broker, prefix: p.prefix, channel: p.channel };
}

/** The key this tab holds for a channel, else the one remembered on the device. */
function storedKey(r: ChannelRef): string | null {
  return keyFor(tabStorage, r) ?? keyFor(storage, r);
}

/** The note on the join form about the channel's key; a passphrase typed anyway replaces the key. */
function showKeyNote(text: string | null, haveKey = false): void {
  const n = $('f-key-note');
  n.hidden = !text;
  n.textContent = text ?? '';
  $('f-passphrase-hint').textContent = haveKey ? '(only to replace the key above)' : '(if the channel has one)';
}

/**
 * Turns a passphrase into a key (PBKDF2, about half a second, shown on the form) and checks that
 * this browser can do the cryptography at all. Returns the key text, or null after showing why not.
 */
async function resolveKey(params: JoinParams): Promise<string | null | undefined> {
  const s = params.secret;
  if (!s) return undefined;
  if (!globalThis.crypto?.subtle) {
    showJoin([NEEDS_SECURE_CONTEXT]);
    return null;
  }
  if (s.kind === 'key') return s.key;
  const progress = $('join-progress');
  const button = $<HTMLButtonElement>('join-button');
  progress.textContent = 'Deriving the channel key from the passphrase…';
  button.disabled = true;
  const t0 = performance.now();
  try {
    const key = formatKey(await keyFromPassphrase(params.channel, s.passphrase));
    if (hook) hook.deriveMs = performance.now() - t0;
    return key;
  } catch (err) {
    showJoin([err instanceof KeyError ? `Passphrase: ${err.message}.` : `Cannot derive the key: ${(err as Error).message}`]);
    return null;
  } finally {
    progress.textContent = '';
    button.disabled = false;
  }
}

async function join(params: JoinParams): Promise<void> {
  if (joined || joining) return;
  joining = true;
  const keyText = await resolveKey(params);
  if (keyText === null) {
    joining = false;
    return;
  }
  let crypto = null;
  if (keyText) {
    try {
      crypto = await createChannelCrypto({ channel: params.channel, keys: [keyText] });
    } catch (err) {
      joining = false;
      showJoin([`Channel key: ${(err as Error).message}`]);
      return;
    }
    // From here on the key (never a passphrase) is what the page holds: for this tab, and on the
    // device only if the person ticked "remember" for this channel before (then a new key replaces it).
    params = { ...params, secret: { kind: 'key', key: keyText } };
    storeKey(tabStorage, refOf(params), keyText);
    if (keyFor(storage, refOf(params))) storeKey(storage, refOf(params), keyText);
  }
  saveName(storage, params.name);
  rememberRecent(storage, { broker: params.broker, channel: params.channel, prefix: params.prefix, ...(crypto ? { encrypted: true } : {}) }, Date.now());
  history.replaceState(null, '', buildFragment(params, { includeName: true, defaultBrokerUrl: defaultBroker(location) }));
  $('join').hidden = true;
  $('room').hidden = false;
  $('channel-label').textContent = `#${params.channel}`;
  document.title = `${params.channel} · talkbridge`;
  model.conn = { kind: 'connecting', url: params.broker };
  model.crypto = { encrypted: !!crypto, epoch: crypto?.sendEpoch ?? null, problem: null };
  othersAuthenticated = false;
  $<HTMLInputElement>('remember-key').checked = !!crypto && keyFor(storage, refOf(params)) !== null;
  overs = [];
  renderOvers();
  render();
  let codecs: Codecs;
  try {
    [codecs] = await Promise.all([loadCodecs(base, params.codec), audio.start()]);
  } catch (err) {
    joining = false;
    model.conn = { kind: 'setup' };
    showJoin([`Cannot start audio: ${(err as Error).message}`]);
    render();
    return;
  }
  if (audio.suspended) banner('Tap anywhere to turn on sound', 'info');
  const sender = loginSender(params.user) ?? senderFor(params.name);
  const will = ChannelSession.willFor(params.prefix, params.channel, sender);
  // As talk/open.ts: two tabs (or a tab and a CLI) on one login must not kick each other off.
  const clientId = (sender === params.user ? `tb-${makeSenderId('').slice(-8)}-${sender}` : `tb-${sender}`).slice(0, 64);
  const conn = new BrokerConnection({
    url: params.broker,
    clientId,
    will: { topic: will.topic, qos: will.qos, retain: will.retain },
    ...(params.user ? { username: params.user, password: params.password ?? '' } : {}),
  });
  model.listenOnly = false;
  listenOnlyProbe = { echoed: false, sent: 0 };
  const ownPrefix = `${params.prefix}/${params.channel}/`;
  const session = new ChannelSession(conn.client, {
    prefix: params.prefix,
    channel: params.channel,
    sender,
    name: params.name,
    source: 'web',
    silenceMs: SILENCE_MS,
    software: SOFTWARE,
    createDecoder: (s) => codecs.wasm.createDecoder(s),
    ...(crypto ? { crypto } : {}),
  });
  const talker = new Talker({
    session,
    openMic: () => audio.openMic(),
    arm: () => audio.arm(),
    disarm: () => audio.disarm(),
    createEncoder: () => codecs.createEncoder(),
    silence: () => codecs.silence(),
    connected: () => conn.client.connected,
    codec: CODEC,
    talkTimeoutMs: params.talkTimeoutS * 1000,
  });
  const j: Joined = { params, conn, session, talker, codecs, offs: [] };
  joined = j;
  joining = false;
  $('codec-info').textContent = `Opus encoder: ${codecs.encoderBackend === 'webcodecs' ? 'WebCodecs' : 'WASM'} · decoder: WASM`;
  j.offs.push(
    audio.on('frame', (pcm: Int16Array) => talker.frame(pcm)),
    conn.on('state', (s: ConnState) => {
      model.conn = s;
      if (s.kind === 'refused') return void loginRefused(j);
      if (s.kind === 'reconnecting') {
        talker.abort('offline');
        banner(null);
      }
      render();
    }),
    session.on('floor', (h: TalkerInfo | null) => {
      model.holder = h;
      render();
    }),
    session.on('presence', (sender, p) => {
      if (p && sender !== session.sender && session.encrypted) authenticated();
      renderPresence();
    }),
    // What could not be opened says what is wrong with the key; nothing of it is ever played.
    session.on('dropped', (reason: string, detail: string) => {
      if (!model.crypto) return;
      // The session's detail names the kind of message first ("presence from …").
      const next = cryptoProblemAfter(model.crypto.problem, reason, othersAuthenticated, detail.startsWith('presence'));
      if (next !== model.crypto.problem) {
        model.crypto.problem = next;
        render();
      }
    }),
    // A gateway's notice (its transmitter timed out…) is for everyone on the channel to see.
    session.on('notice', (_sender: string, _code: string, text: string) => banner(text, 'warn')),
    session.on('overStart', (i: TalkerInfo) => {
      if (session.encrypted) authenticated();
      audio.overStart();
      overs.push({ stream: i.stream, name: i.name, source: sourceLabel(i.source), at: new Date(), chunks: [], samples: 0, report: null });
      if (overs.length > MAX_OVERS) overs.shift();
      hook?.decoded?.push({ stream: i.stream, name: i.name, chunks: [] });
      renderOvers();
    }),
    session.on('audio', (f: AudioFrame) => {
      audio.play(f.pcm);
      const o = overs.at(-1);
      if (o && o.stream === f.stream) {
        o.chunks.push(f.pcm);
        o.samples += f.pcm.length;
      }
      if (hook) {
        hook.decoded?.at(-1)?.chunks.push(f.pcm);
        if (f.packetStart && !f.concealed) hook.latencies?.push(f.latencyMs);
      }
    }),
    session.on('overEnd', (r: OverReport) => {
      audio.overEnd();
      const o = overs.find((x) => x.stream === r.stream);
      if (o) o.report = r;
      trimKept();
      renderOvers();
    }),
    talker.on('state', (s: TalkState) => {
      if (s.kind === 'talking' && model.talk.kind !== 'talking') probeListenOnly(j);
      model.talk = s;
      if (s.kind === 'refused') navigator.vibrate?.(150);
      render();
    }),
    talker.on('sent', () => {
      listenOnlyProbe.sent++;
      if (hook) hook.sent = (hook.sent ?? 0) + 1;
    }),
  );
  // The broker echoes what we publish back to us (MQTT 3.1.1 has no "no local"); a broker that
  // drops a listen-only login's audio (embedded broker, Mosquitto's ACL) says nothing else.
  const onMessage = (topic: string) => {
    if (topic.startsWith(ownPrefix) && !topic.includes('/presence/') && topic.endsWith(`/${sender}`)) listenOnlyProbe.echoed = true;
  };
  conn.client.on('message', onMessage);
  j.offs.push(() => void conn.client.off('message', onMessage));
  if (conn.client.connected) await enter(j);
  else conn.client.once('connect', () => void enter(j));
  void requestWakeLock();
}

/** What we published on the current over, and whether any of it came back from the broker. */
let listenOnlyProbe = { echoed: false, sent: 0 };
const LISTEN_ONLY_AFTER_MS = 3000;

function probeListenOnly(j: Joined): void {
  listenOnlyProbe = { echoed: false, sent: 0 };
  setTimeout(() => {
    if (joined !== j || !j.conn.client.connected || listenOnlyProbe.echoed || listenOnlyProbe.sent === 0) return;
    model.listenOnly = true;
    j.talker.release();
    render();
  }, LISTEN_ONLY_AFTER_MS);
}

/** The broker refused the login: back to the form, saying so, with the password forgotten. */
function loginRefused(j: Joined): void {
  const { user, broker } = j.params;
  for (const s of [tabStorage, storage]) {
    const l = loginFor(s, broker);
    if (l) storeLogin(s, broker, { user: l.user });
  }
  void leave().then(() => {
    showJoin([loginRefusedText(user)]);
    $<HTMLInputElement>(user ? 'f-password' : 'f-user').focus();
  });
}

function authenticated(): void {
  othersAuthenticated = true;
  if (!model.crypto) return;
  const next = cryptoProblemAfterAuthenticated(model.crypto.problem);
  if (next !== model.crypto.problem) {
    model.crypto.problem = next;
    render();
  }
}

async function enter(j: Joined): Promise<void> {
  if (joined !== j) return;
  try {
    await j.session.join();
  } catch (err) {
    banner(`Could not join: ${(err as Error).message}`, 'error');
  }
  renderPresence();
  render();
}

function trimKept(): void {
  let total = 0;
  for (let i = overs.length - 1; i >= 0; i--) {
    const o = overs[i]!;
    total += o.samples;
    if (total > MAX_KEPT_SAMPLES && o.report) {
      o.chunks = [];
      o.samples = 0;
    }
  }
}

async function leave(): Promise<void> {
  const j = joined;
  if (!j) return;
  joined = null;
  // A key shown to be wrong is not offered again on the join form.
  if (model.crypto?.problem === 'wrong-key') storeKey(tabStorage, refOf(j.params), null);
  j.talker.release();
  j.talker.abort('hidden');
  for (const off of j.offs) off();
  await j.session.leave().catch(() => {});
  await j.conn.close().catch(() => {});
  audio.closeMic();
  await wakeLock?.release().catch(() => {});
  wakeLock = null;
  model.conn = { kind: 'setup' };
  model.holder = null;
  model.talk = { kind: 'idle' };
  delete model.crypto;
  model.listenOnly = false;
  hideQr();
  $('channel-label').textContent = '';
  document.title = 'talkbridge';
  history.replaceState(null, '', location.pathname + location.search);
  prefillForm(j.params);
  showJoin();
  render();
}

/** The link "Copy link" copies: without the name (and password, always); with the key when encrypted. */
function shareUrl(j: Joined): string {
  return location.href.split('#')[0] + buildFragment(j.params, { includeName: false, defaultBrokerUrl: defaultBroker(location), includeKey: j.session.encrypted });
}

function hideQr(): void {
  $('qr-wrap').hidden = true;
  $('qr').replaceChildren();
  $('show-qr').setAttribute('aria-expanded', 'false');
  $('show-qr').textContent = model.crypto?.encrypted ? 'Show invite QR' : 'Show QR';
}

/** Draws the share link as a QR code for a phone's camera; the qrcode package loads only when asked. */
async function toggleQr(): Promise<void> {
  const j = joined;
  if (!j) return;
  if (!$('qr-wrap').hidden) return hideQr();
  const url = shareUrl(j);
  const { toString: qrCode } = await import('qrcode');
  // Medium error correction: still reads from a scratched or glare-lit phone screen; SVG stays sharp at any size.
  const svg = await qrCode(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  if (joined !== j) return;
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  $('qr').replaceChildren(document.importNode(doc.documentElement, true));
  $('qr').setAttribute('aria-label', j.session.encrypted ? 'QR code of the invite link' : 'QR code of the link');
  $('qr-note').textContent = j.session.encrypted
    ? 'This QR code holds the channel key: anyone who scans it can listen and talk. Show it only to your team, and hide it after.'
    : 'Scan to join this channel.';
  $('qr-wrap').hidden = false;
  $('show-qr').setAttribute('aria-expanded', 'true');
  $('show-qr').textContent = 'Hide QR';
  if (hook) hook.qr = { text: url, svg };
}

async function requestWakeLock(): Promise<void> {
  const wl = (navigator as Navigator & { wakeLock?: { request(t: 'screen'): Promise<{ release(): Promise<void> }> } }).wakeLock;
  if (!wl || !joined || document.visibilityState !== 'visible') return;
  try {
    wakeLock = await wl.request('screen');
  } catch {
    /* refused (battery saver, no permission): the page still works */
  }
}

function prefillForm(p: Partial<JoinParams>): void {
  $<HTMLInputElement>('f-name').value = p.name ?? loadName(storage);
  $<HTMLInputElement>('f-channel').value = p.channel ?? '';
  $<HTMLInputElement>('f-broker').value = p.broker ?? defaultBroker(location);
  $<HTMLInputElement>('f-passphrase').value = '';
  const broker = p.broker ?? defaultBroker(location);
  $<HTMLInputElement>('f-user').value = p.user ?? (loginFor(tabStorage, broker) ?? loginFor(storage, broker))?.user ?? '';
  $<HTMLInputElement>('f-password').value = '';
  $<HTMLInputElement>('f-remember-login').checked = !!loginFor(storage, broker)?.password;
  updateKeyNote();
}

/** The password kept for this broker and user (tab first, then device), if any. */
function storedPassword(broker: string, user: string): string | undefined {
  for (const s of [tabStorage, storage]) {
    const l = loginFor(s, broker);
    if (l?.user === user && l.password !== undefined) return l.password;
  }
  return undefined;
}

/** Keeps a login that is about to be used: for the tab, and on the device (the password only if ticked). */
function keepLogin(broker: string, login: Login, remember: boolean): void {
  storeLogin(tabStorage, broker, login);
  storeLogin(storage, broker, remember ? login : { user: login.user });
}

/** Whether the channel typed into the form has a key in this tab or on the device. */
function updateKeyNote(): void {
  let channel: string;
  try {
    channel = normalizeChannel($<HTMLInputElement>('f-channel').value);
  } catch {
    return showKeyNote(null);
  }
  const broker = $<HTMLInputElement>('f-broker').value.trim() || defaultBroker(location);
  const prefix = parseFragment(location.hash, location.protocol).params.prefix ?? DEFAULT_PREFIX;
  const key = storedKey({ broker, prefix, channel });
  showKeyNote(key ? `Channel key for #${channel} (epoch ${parseKey(key).epoch}) — the channel is end-to-end encrypted.` : null, !!key);
}

// ---- input --------------------------------------------------------------------------------------

function press(): void {
  void audio.resume();
  // Nobody could hear an over sealed with the wrong key (or sent in clear on an encrypted channel).
  if ((model.crypto && cryptoView(model.crypto).blocksTalk) || model.listenOnly) {
    navigator.vibrate?.(150);
    return;
  }
  banner(null);
  void joined?.talker.press();
}

function release(): void {
  joined?.talker.release();
}

function isTyping(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

function wireInput(): void {
  const ptt = $('ptt');
  ptt.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    try {
      ptt.setPointerCapture(e.pointerId);
    } catch {
      /* synthetic pointer */
    }
    press();
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture'] as const) ptt.addEventListener(ev, () => release());
  ptt.addEventListener('contextmenu', (e) => e.preventDefault());
  // The button is driven by press and release, not click; Enter/Space on it are handled below.
  ptt.addEventListener('click', (e) => e.preventDefault());
  window.addEventListener('keydown', (e) => {
    if (!joined || e.code !== 'Space' || isTyping(e.target)) return;
    const t = e.target as HTMLElement | null;
    if (t && t !== ptt && (t.tagName === 'BUTTON' || t.tagName === 'A' || t.tagName === 'SUMMARY')) return;
    e.preventDefault();
    if (!e.repeat) press();
  });
  window.addEventListener('keyup', (e) => {
    if (e.code !== 'Space' || !joined) return;
    if (joined.talker.isPressed) e.preventDefault();
    release();
  });
  // A key or pointer released while the page had no focus never arrives: never keep talking then.
  window.addEventListener('blur', () => release());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') release();
    else void requestWakeLock();
  });
  window.addEventListener('pagehide', () => {
    if (joined) joined.talker.abort('hidden');
  });
  const unlock = () => {
    void audio.resume().then(() => {
      if (!audio.suspended && $('banner').textContent === 'Tap anywhere to turn on sound') banner(null);
    });
  };
  document.addEventListener('pointerdown', unlock);
  document.addEventListener('keydown', unlock);

  $<HTMLFormElement>('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = cleanName($<HTMLInputElement>('f-name').value);
    const broker = $<HTMLInputElement>('f-broker').value.trim() || defaultBroker(location);
    const errors: string[] = [];
    let channel = '';
    try {
      channel = normalizeChannel($<HTMLInputElement>('f-channel').value);
    } catch (err) {
      errors.push((err as Error).message);
    }
    if (!name) errors.push('Enter a name so others know who is talking.');
    const why = brokerProblem(broker, location.protocol);
    if (why) errors.push(`Broker: ${why}.`);
    const user = $<HTMLInputElement>('f-user').value.trim();
    const password = $<HTMLInputElement>('f-password').value || (user ? storedPassword(broker, user) : undefined);
    const userWhy = user ? userProblem(user) : null;
    if (userWhy) errors.push(`User name: ${userWhy}.`);
    else if (user && !password) errors.push(`Enter the password for "${user}".`);
    else if (!user && password) errors.push('Enter the user name that goes with the password.');
    if (errors.length) return showJoin(errors);
    if (user) keepLogin(broker, { user, password: password! }, $<HTMLInputElement>('f-remember-login').checked);
    else for (const s of [tabStorage, storage]) storeLogin(s, broker, null);
    const frag = withDefaults(parseFragment(location.hash, location.protocol).params, location);
    const passphrase = $<HTMLInputElement>('f-passphrase').value;
    const key = storedKey(refOf({ broker, prefix: frag.prefix, channel }));
    const secret = passphrase ? { kind: 'passphrase' as const, passphrase } : key ? { kind: 'key' as const, key } : undefined;
    void audio.resume();
    const { user: _u, ...rest } = frag;
    void join({ ...rest, broker, channel, name, secret, ...(user ? { user, password: password! } : {}) });
  });
  $('leave').addEventListener('click', () => void leave());
  $('show-qr').addEventListener('click', () => void toggleQr());
  for (const id of ['f-channel', 'f-broker']) $(id).addEventListener('input', () => updateKeyNote());
  $<HTMLInputElement>('remember-key').addEventListener('change', (e) => {
    const s = joined?.params.secret;
    if (!joined || s?.kind !== 'key') return;
    storeKey(storage, refOf(joined.params), (e.target as HTMLInputElement).checked ? s.key : null);
  });
  $('share').addEventListener('click', () => {
    if (!joined) return;
    const invite = joined.session.encrypted;
    const url = shareUrl(joined);
    navigator.clipboard?.writeText(url).then(
      () =>
        banner(invite ? 'Invite link copied: it holds the channel key — anyone with it can listen and talk, so share it like a password' : 'Link copied: anyone with it can join this channel', 'info'),
      () => banner(url, 'info'),
    ) ?? banner(url, 'info');
  });
  window.addEventListener('hashchange', () => {
    const f = parseFragment(location.hash, location.protocol);
    const newKey = f.params.secret?.kind === 'key' && f.params.secret.key !== (joined?.params.secret as { key?: string } | undefined)?.key;
    if (joined && f.params.channel && (newKey || f.params.channel !== joined.params.channel || (f.params.broker && f.params.broker !== joined.params.broker))) {
      // Leaving clears the address bar: the new link must survive it.
      const hash = location.hash;
      history.replaceState(null, '', location.pathname + location.search + withoutKey(hash));
      void leave().then(() => {
        history.replaceState(null, '', location.pathname + location.search + hash);
        start();
      });
    } else if (!joined && !joining && f.params.channel) {
      start();
    } else if (fragmentHasKey(location.hash)) {
      history.replaceState(null, '', location.pathname + location.search + withoutKey(location.hash));
    }
  });
}

// ---- start --------------------------------------------------------------------------------------

function start(): void {
  const f = parseFragment(location.hash, location.protocol);
  const p = withDefaults(f.params, location);
  if (fragmentHasKey(location.hash)) {
    // The key leaves the address bar at once (not shown, bookmarked, synced or shared by
    // accident); this tab keeps it so that a reload still joins.
    history.replaceState(null, '', location.pathname + location.search + withoutKey(location.hash));
    if (p.channel && p.secret?.kind === 'key') storeKey(tabStorage, refOf({ ...p, channel: p.channel }), p.secret.key);
  }
  const name = p.name ?? loadName(storage);
  prefillForm({ ...p, name });
  if (p.channel && !p.secret) {
    const key = storedKey(refOf({ ...p, channel: p.channel }));
    if (key) p.secret = { kind: 'key', key };
  }
  // A login named by the link, else the one kept for this broker; its password only from storage.
  const user = p.user ?? (loginFor(tabStorage, p.broker) ?? loginFor(storage, p.broker))?.user;
  const password = user ? storedPassword(p.broker, user) : undefined;
  if (user && password === undefined) {
    showJoin(f.errors.length ? f.errors : p.channel ? [`Enter the password for "${user}" to join #${p.channel}.`] : []);
    $<HTMLInputElement>('f-user').value = user;
    if (p.channel && name) $<HTMLInputElement>('f-password').focus();
    return;
  }
  if (p.channel && name && f.errors.length === 0) void join({ ...p, channel: p.channel, name, ...(user ? { user, password: password! } : {}) });
  else showJoin(f.errors);
}

function installHook(): void {
  if (!hook) return;
  hook.decoded = [];
  hook.played = [];
  hook.latencies = [];
  hook.sent = 0;
  hook.stats = [];
  hook.state = () => ({
    conn: model.conn.kind,
    talk: model.talk.kind,
    holder: model.holder ? { name: model.holder.name, source: model.holder.source, self: model.holder.self } : null,
    mic: model.mic,
    encoder: joined?.codecs.encoderBackend ?? null,
    sender: joined?.session.sender ?? null,
    listenOnly: !!model.listenOnly,
    joined: !!joined && joined.session.online.has(joined.session.sender),
    online: joined ? [...joined.session.online.values()].map((p) => p.name) : [],
    sampleRate: audio.sampleRate,
    outputLatencyMs: audio.outputLatencyMs,
    e2e: model.crypto ? { ...model.crypto } : null,
    drops: joined ? { ...joined.session.counters } : {},
  });
  audio.on('tap', (s) => hook.played!.push(s));
  audio.on('stats', (s) => hook.stats!.push(s));
  void audio.start().then(() => {
    hook.playedRate = audio.sampleRate;
    audio.setTap(true);
  });
}

audio.on('mic', (s: MicState) => {
  model.mic = s;
  render();
});
audio.on('level', (kind, rms) => {
  // The meter follows whoever is audible: our microphone while talking, the channel otherwise.
  if ((kind === 'mic') === (model.talk.kind === 'talking')) level = { value: rms, at: performance.now() };
});
window.addEventListener('unhandledrejection', (e) => console.error('talkbridge:', e.reason));
setInterval(() => {
  if (model.talk.kind === 'talking' || model.conn.kind === 'reconnecting') render();
}, 250);

if ('serviceWorker' in navigator && isSecureContext) navigator.serviceWorker.register('sw.js').catch(() => {});
installHook();
wireInput();
requestAnimationFrame(meterLoop);
start();
render();
