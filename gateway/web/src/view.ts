/**
 * What the page shows for a given state: status line, the push-to-talk button's look and the hint
 * under it. Pure, so every state a user can meet is unit-tested without a browser.
 */
import type { TalkerInfo } from '../../shared/channel/session.js';
import type { ConnState } from './net.js';
import type { TalkState } from './talker.js';

/** 'no-output': the browser has no sound output, and so runs no audio at all, capture included. */
export type MicState = 'unknown' | 'insecure' | 'unsupported' | 'requesting' | 'ready' | 'denied' | 'missing' | 'no-output' | 'error';

export interface Model {
  conn: ConnState | { kind: 'setup' };
  mic: MicState;
  talk: TalkState;
  holder: TalkerInfo | null;
  /** Wall clock now, for the time-out countdown. */
  now: number;
  /** End-to-end encryption of the joined channel; absent before joining. */
  crypto?: CryptoModel;
  /** The broker dropped what we sent on an over: the login may listen here but not talk. */
  listenOnly?: boolean;
}

/** What the join form says when the broker refuses the login (CONNACK), with and without one. */
export function loginRefusedText(user: string | undefined): string {
  return user ? `The broker refused the login: wrong user name or password (user "${user}").` : 'The broker refused the login: it needs a user name and password. Enter the ones you were given.';
}

export const LISTEN_ONLY_HINT = 'Listen only: the broker does not let this login talk on this channel (ask whoever runs the kit).';

/**
 * What went wrong with encryption, as far as the page can tell from what it had to drop:
 * no-key — we have no key and the channel is encrypted; wrong-key — someone's over (or control)
 * fails to authenticate and nothing from anyone else ever has; mismatch — only someone's presence
 * fails so far: their key or ours is wrong, nobody can tell which yet; other-epoch — someone uses a
 * key epoch we do not hold (rotated); foreign — our key works with others, but someone sends under
 * a different key (or forges); clear-sender — someone talks unencrypted on our encrypted channel.
 */
export type CryptoProblem = 'no-key' | 'wrong-key' | 'mismatch' | 'other-epoch' | 'foreign' | 'clear-sender';

export interface CryptoModel {
  encrypted: boolean;
  /** Key epoch we send with, when encrypted. */
  epoch: number | null;
  problem: CryptoProblem | null;
}

/** The sentence shown when a channel is encrypted and this browser cannot do the cryptography. */
export const NEEDS_SECURE_CONTEXT =
  'This channel is end-to-end encrypted, and browsers only allow encryption (WebCrypto) on pages opened over HTTPS or from localhost. Open the client over HTTPS to join it.';

/** How the page tells the person whether the channel is end-to-end encrypted, and what is wrong. */
export function cryptoView(c: CryptoModel): { label: string; tone: Tone; note: string | null; noteTone: Tone; blocksTalk: boolean } {
  const label = c.encrypted ? `End-to-end encrypted · key epoch ${c.epoch}` : 'Not encrypted — anyone with access to the broker can listen';
  const tone: Tone = c.encrypted ? 'ok' : 'warn';
  const problem = (note: string, noteTone: Tone, blocksTalk: boolean) => ({ label, tone, note, noteTone, blocksTalk });
  switch (c.problem) {
    case 'no-key':
      return problem('This channel is encrypted — you need the invite link (or the channel passphrase). Nothing from it can be played.', 'error', true);
    case 'wrong-key':
      return problem('Wrong key: nothing from this channel can be played. Ask for the invite link again (or check the passphrase).', 'error', true);
    case 'mismatch':
      return problem('Someone on this channel has a different key, so you cannot hear each other. If your invite link is old or was mistyped, ask for it again.', 'warn', false);
    case 'other-epoch':
      return problem('Someone uses a channel key this page does not have (was the key changed?): what they send cannot be played. Ask for the new invite link.', 'warn', false);
    case 'foreign':
      return problem('Someone on this channel sends with a different key: what they send is not played.', 'warn', false);
    case 'clear-sender':
      return problem('Someone on this channel talks without encryption: what they send is not played.', 'warn', false);
    default:
      return { label, tone, note: null, noteTone: 'info', blocksTalk: false };
  }
}

/**
 * The problem after a dropped message of this reason (ChannelSession's 'dropped' event), given
 * the current one, whether it was a presence message, and whether anyone else's message has
 * authenticated since joining. Replays, stale and malformed input are counted by the session and
 * need no words here.
 */
export function cryptoProblemAfter(current: CryptoProblem | null, reason: string, othersAuthenticated: boolean, presence = false): CryptoProblem | null {
  switch (reason) {
    case 'encrypted':
      return 'no-key';
    case 'auth':
    case 'sender-mismatch':
      if (current === 'wrong-key' || current === 'no-key') return current;
      // Our key opened someone else's messages: it is right, and this sender's is not.
      if (othersAuthenticated) return current === null || current === 'mismatch' ? 'foreign' : current;
      // Two people with different keys each see the other's presence fail: only an over that
      // fails to open, with nobody else's ever opening, says which side holds the wrong key.
      return presence ? 'mismatch' : 'wrong-key';
    case 'unknown-epoch':
      return current ?? 'other-epoch';
    case 'unencrypted':
      return current ?? 'clear-sender';
    default:
      return current;
  }
}

/** Someone else's message authenticated: our key is right after all. */
export function cryptoProblemAfterAuthenticated(current: CryptoProblem | null): CryptoProblem | null {
  return current === 'wrong-key' || current === 'mismatch' ? 'foreign' : current;
}

export type Tone = 'ok' | 'info' | 'warn' | 'error';

export interface View {
  status: { text: string; tone: Tone };
  ptt: {
    /** CSS state; the accessible name stays "Push to talk" in every state. */
    look: 'ready' | 'talking' | 'busy' | 'starting' | 'blocked';
    /** aria-disabled: pressing does nothing useful now. */
    unavailable: boolean;
    pressed: boolean;
    /** Shown inside the button under its name. */
    caption: string;
  };
  /** Who holds the floor, or null when the channel is clear. */
  talker: { name: string; source: string; self: boolean } | null;
  /** A sentence about the microphone when it needs the user's attention. */
  micNote: string | null;
  hint: string;
}

const SOURCE_LABEL: Record<string, string> = { radio: 'radio', web: 'web', cli: 'computer' };

export function sourceLabel(s: string): string {
  return SOURCE_LABEL[s] ?? s;
}

/** Entries the online list shows at most: the page rebuilds it on every presence message. */
export const MAX_SHOWN_ONLINE = 256;

/**
 * Who the online list shows, by name: at most `max`, ourselves always, then the most recently
 * arrived (the map's order is the broker's, which a sender cannot forge with a made-up `since`);
 * the oldest are dropped. `total` is everyone known, for the count beside the heading.
 */
export function onlineShown<P extends { name: string }>(online: ReadonlyMap<string, P>, self: string, max = MAX_SHOWN_ONLINE): { shown: Array<[string, P]>; total: number } {
  const all = [...online.entries()];
  const mine = all.filter(([s]) => s === self);
  const others = all.filter(([s]) => s !== self);
  const shown = [...mine, ...others.slice(Math.max(0, others.length - (max - mine.length)))];
  return { shown: shown.sort((a, b) => a[1].name.localeCompare(b[1].name)), total: all.length };
}

export function micNote(mic: MicState): string | null {
  switch (mic) {
    case 'insecure':
      return 'The microphone needs HTTPS or localhost: this page was opened over plain HTTP, so you can listen but not talk.';
    case 'unsupported':
      return 'This browser cannot capture audio (no getUserMedia or AudioWorklet): you can listen but not talk.';
    case 'denied':
      return 'Microphone permission denied. Allow the microphone for this site in the browser settings, then press again.';
    case 'missing':
      return 'No microphone found. Plug one in, then press again.';
    case 'no-output':
      return 'No sound output found: this browser runs no audio, so you can neither talk nor hear. Connect a speaker or headphones (or start the sound system), then press again.';
    case 'error':
      return 'The microphone could not be opened. Close other apps using it, then press again.';
    default:
      return null;
  }
}

function seconds(ms: number): string {
  return `${Math.max(0, Math.ceil(ms / 1000))} s`;
}

export function viewOf(m: Model): View {
  const talker = m.holder ? { name: m.holder.name, source: sourceLabel(m.holder.source), self: m.holder.self } : null;
  let status: View['status'];
  switch (m.conn.kind) {
    case 'setup':
      status = { text: 'Not joined', tone: 'info' };
      break;
    case 'connecting':
      status = { text: 'Connecting…', tone: 'info' };
      break;
    case 'connected':
      status = { text: 'Connected', tone: 'ok' };
      break;
    case 'reconnecting':
      status = {
        text: `Broker lost — reconnecting (attempt ${m.conn.attempt}, ${m.conn.retryAt - m.now > 500 ? `next try in ${seconds(m.conn.retryAt - m.now)}` : 'trying now'})`,
        tone: 'error',
      };
      break;
    case 'closed':
      status = { text: 'Left the channel', tone: 'info' };
      break;
    case 'refused':
      status = { text: 'Login refused', tone: 'error' };
      break;
  }
  const online = m.conn.kind === 'connected';
  const micBlocked = m.mic === 'insecure' || m.mic === 'unsupported';
  const base = { pressed: false, unavailable: false };
  let ptt: View['ptt'];
  let hint = 'Hold the button or the space bar to talk';
  const t = m.talk;
  if (t.kind === 'talking') {
    ptt = { ...base, look: 'talking', pressed: true, caption: `On air — ${seconds(t.deadline - m.now)} left` };
    hint = 'Release to end the over';
  } else if (t.kind === 'starting') {
    ptt = { ...base, look: 'starting', pressed: true, caption: m.mic === 'requesting' ? 'Allow the microphone…' : 'Starting…' };
  } else if (t.kind === 'refused') {
    ptt = { ...base, look: 'busy', unavailable: true, pressed: true, caption: `Busy — ${t.holder.name} has the channel` };
    hint = 'Talking refused: wait until the channel is clear';
  } else if (t.kind === 'timeout') {
    ptt = { ...base, look: 'blocked', unavailable: true, pressed: true, caption: 'Time-out — over ended' };
    hint = 'The talk time-out ended your over: release, then press again';
  } else if (t.kind === 'failed') {
    ptt = { ...base, look: 'blocked', unavailable: true, pressed: true, caption: t.reason === 'offline' ? 'Not connected' : 'Cannot talk' };
    hint = t.message;
  } else if (m.crypto && online && cryptoView(m.crypto).blocksTalk) {
    ptt = { ...base, look: 'blocked', unavailable: true, caption: m.crypto.problem === 'no-key' ? 'Needs the channel key' : 'Wrong key' };
    hint = 'Nobody on this channel could hear you: join with the right invite link';
  } else if (m.listenOnly && online) {
    ptt = { ...base, look: 'blocked', unavailable: true, caption: 'Listen only' };
    hint = LISTEN_ONLY_HINT;
  } else if (!online) {
    ptt = { ...base, look: 'blocked', unavailable: true, caption: m.conn.kind === 'reconnecting' ? 'Broker lost' : 'Not connected' };
    hint = 'Talking is possible once connected';
  } else if (micBlocked) {
    ptt = { ...base, look: 'blocked', unavailable: true, caption: 'Listening only' };
    hint = micNote(m.mic)!;
  } else if (m.holder && !m.holder.self) {
    ptt = { ...base, look: 'busy', unavailable: true, caption: `Busy — ${m.holder.name} is talking` };
    hint = 'Wait until the channel is clear';
  } else {
    ptt = { ...base, look: 'ready', caption: 'Hold to talk' };
  }
  return { status, ptt, talker, micNote: micNote(m.mic), hint };
}
