/**
 * The browser client's page: creates its parts (each a module owning its piece of the DOM), joins
 * and leaves, and wires the joined channel (channel.ts, no DOM) to the parts. docs/web-client.md,
 * "Where things are in the page's code", says which module holds what.
 */
import { loginSender } from '../../shared/channel/topics.js';
import { AudioEngine } from './audio.js';
import { type ChannelState, JoinedChannel, joiningState, talkBlocked } from './channel.js';
import { type Codecs, loadCodecs } from './codec.js';
import { type JoinParams, keyFor, storeKey } from './config.js';
import { perFrame } from './dom.js';
import { JoinForm } from './join-form.js';
import { prepareJoin } from './joining.js';
import { clearLink, readLink, watchLink } from './link.js';
import { OversList } from './overs.js';
import { PttInput } from './ptt.js';
import { Room } from './room.js';
import { Share } from './share.js';
import { StatusBar } from './status.js';
import { forgetPassword, refOf, senderFor, storage, tabStorage } from './store.js';
import { installHook, watchChannel } from './test-hook.js';
import { type Model, viewOf } from './view.js';
import { ScreenOn } from './wake-lock.js';

const base = new URL('./', location.href);
const audio = new AudioEngine(new URL('worklet.js', base));
/** The joined channel; null while joining and on the join form. */
let channel: JoinedChannel | null = null;
let joining = false;
/** What the room shows: the state of the channel joined or being joined; null on the join form. */
let shown: ChannelState | null = null;

const status = new StatusBar(audio);
const room = new Room(audio, () => shown?.talk.kind === 'talking', leave);
const overs = new OversList(audio);
const share = new Share(() => channel, status);
const screenOn = new ScreenOn(() => channel !== null);
const form = new JoinForm((params) => {
  void audio.resume();
  void join(params);
});
const ptt = new PttInput(() => channel, press);

function model(): Model {
  return { ...(shown ?? { conn: { kind: 'setup' }, talk: { kind: 'idle' }, holder: null }), mic: audio.mic, now: Date.now() };
}

const render = perFrame(() => {
  const m = model();
  const v = viewOf(m);
  status.render(v.status);
  ptt.render(v);
  room.render(v, m);
  if (m.crypto) share.render(m.crypto.encrypted);
});

async function join(asked: JoinParams): Promise<void> {
  if (channel || joining) return;
  joining = true;
  const ready = await prepareJoin(asked, form);
  if (!ready) {
    joining = false;
    return;
  }
  const { params, crypto } = ready;
  form.hide();
  room.show(!!crypto && keyFor(storage, refOf(params)) !== null);
  status.channel(params.channel);
  shown = joiningState(params.broker, crypto);
  overs.clear();
  render();
  let codecs: Codecs;
  try {
    [codecs] = await Promise.all([loadCodecs(base, params.codec), audio.start()]);
  } catch (err) {
    joining = false;
    shown = null;
    room.hide();
    form.show([`Cannot start audio: ${(err as Error).message}`]);
    render();
    return;
  }
  status.askForSound();
  const c = new JoinedChannel({ params, crypto, codecs, audio, sender: loginSender(params.user) ?? senderFor(params.name) });
  channel = c;
  shown = c.state;
  joining = false;
  for (const part of [status, room, overs]) part.attach(c);
  watchChannel(c);
  c.on('change', render);
  c.on('entered', render);
  c.on('talk', (s) => s.kind === 'refused' && navigator.vibrate?.(150));
  c.on('conn', (s) => {
    if (s.kind !== 'refused') return;
    // Back to the form, saying so, with the password forgotten: the same login would be refused again.
    forgetPassword(c.params.broker);
    void leave().then(() => form.refused(c.params.user));
  });
  await c.start();
  void screenOn.request();
}

async function leave(): Promise<void> {
  const c = channel;
  if (!c) return;
  channel = null;
  room.attach(null);
  // A key shown to be wrong is not offered again on the join form.
  if (c.state.crypto.problem === 'wrong-key') storeKey(tabStorage, refOf(c.params), null);
  await c.close();
  audio.closeMic();
  await screenOn.release();
  shown = null;
  share.hideQr(false);
  status.channel(null);
  clearLink();
  form.prefill(c.params);
  room.hide();
  form.show();
  render();
}

function press(): void {
  void audio.resume();
  if (shown && talkBlocked(shown)) return void navigator.vibrate?.(150);
  status.banner(null);
  void channel?.talker.press();
}

/** Joins what the link in the address bar names, or shows the join form. */
function start(): void {
  const asked = readLink();
  form.prefill(asked.prefill);
  if ('join' in asked) return void join(asked.join);
  form.show(asked.errors);
  if (asked.askPasswordOf) form.askPassword(asked.askPasswordOf, !!asked.focusPassword);
}

audio.on('mic', () => render());
window.addEventListener('unhandledrejection', (e) => console.error('talkbridge:', e.reason));
// The button's time-out and the reconnect countdown tick.
setInterval(() => {
  if (shown && (shown.talk.kind === 'talking' || shown.conn.kind === 'reconnecting')) render();
}, 250);
watchLink({ joined: () => channel?.params ?? null, joining: () => joining, leave, start });
if ('serviceWorker' in navigator && isSecureContext) navigator.serviceWorker.register('sw.js').catch(() => {});
installHook(audio, { model, channel: () => channel });
start();
render();
