/**
 * What the page shows for a given state: status line, the push-to-talk button's look and the hint
 * under it. Pure, so every state a user can meet is unit-tested without a browser.
 */
import type { TalkerInfo } from '../../src/channel/session.js';
import type { ConnState } from './net.js';
import type { TalkState } from './talker.js';

export type MicState = 'unknown' | 'insecure' | 'unsupported' | 'requesting' | 'ready' | 'denied' | 'missing' | 'error';

export interface Model {
  conn: ConnState | { kind: 'setup' };
  mic: MicState;
  talk: TalkState;
  holder: TalkerInfo | null;
  /** Wall clock now, for the time-out countdown. */
  now: number;
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
