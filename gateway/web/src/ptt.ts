/**
 * The push-to-talk input: the big button (mouse, pen, touch) and the space bar, every way a press
 * can end without its release ever arriving, and how the button looks.
 */
import type { JoinedChannel } from './channel.js';
import { $ } from './dom.js';
import type { View } from './view.js';

function isTyping(t: EventTarget | null): boolean {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
}

export class PttInput {
  /**
   * @param channel the joined channel, if any
   * @param press what a press does (it may be refused before it reaches the channel's talker)
   */
  constructor(channel: () => JoinedChannel | null, press: () => void) {
    const release = () => channel()?.talker.release();
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
      if (!channel() || e.code !== 'Space' || isTyping(e.target)) return;
      const t = e.target as HTMLElement | null;
      if (t && t !== ptt && (t.tagName === 'BUTTON' || t.tagName === 'A' || t.tagName === 'SUMMARY')) return;
      e.preventDefault();
      if (!e.repeat) press();
    });
    window.addEventListener('keyup', (e) => {
      const joined = channel();
      if (e.code !== 'Space' || !joined) return;
      if (joined.talker.isPressed) e.preventDefault();
      release();
    });
    // A key or pointer released while the page had no focus never arrives: never keep talking then.
    window.addEventListener('blur', () => release());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'hidden') release();
    });
    window.addEventListener('pagehide', () => channel()?.talker.abort('hidden'));
  }

  render(v: View): void {
    const ptt = $('ptt');
    ptt.dataset.look = v.ptt.look;
    ptt.setAttribute('aria-disabled', String(v.ptt.unavailable));
    ptt.setAttribute('aria-pressed', String(v.ptt.pressed));
    $('ptt-caption').textContent = v.ptt.caption;
    $('ptt-hint').textContent = v.hint;
    const note = $('mic-note');
    note.hidden = !v.micNote;
    note.textContent = v.micNote ?? '';
  }
}
