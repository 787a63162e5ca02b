/**
 * The joined channel's card: who is talking, the level meter, whether the channel is end-to-end
 * encrypted (and what is wrong with its key), who is online, the encoder in use, "Remember key on
 * this device", and Leave.
 */
import type { AudioEngine } from './audio.js';
import type { JoinedChannel } from './channel.js';
import { storeKey } from './config.js';
import { $ } from './dom.js';
import { refOf, storage } from './store.js';
import { type Model, type View, cryptoView, onlineShown, sourceLabel } from './view.js';

export class Room {
  /** The channel shown, once joined; null while joining and after leaving. */
  private channel: JoinedChannel | null = null;
  private level = { value: 0, at: 0 };

  /**
   * @param talking whether we are talking now (the meter then shows our microphone)
   * @param leave what the Leave button does
   */
  constructor(audio: Pick<AudioEngine, 'on'>, talking: () => boolean, leave: () => Promise<void>) {
    audio.on('level', (kind, rms) => {
      // The meter follows whoever is audible: our microphone while talking, the channel otherwise.
      if ((kind === 'mic') === talking()) this.level = { value: rms, at: performance.now() };
    });
    $<HTMLInputElement>('remember-key').addEventListener('change', (e) => {
      const s = this.channel?.params.secret;
      if (!this.channel || s?.kind !== 'key') return;
      storeKey(storage, refOf(this.channel.params), (e.target as HTMLInputElement).checked ? s.key : null);
    });
    $('leave').addEventListener('click', () => void leave());
    requestAnimationFrame(() => this.meterLoop());
  }

  /** @param keyRemembered the channel's key is kept on this device */
  show(keyRemembered: boolean): void {
    $('room').hidden = false;
    $<HTMLInputElement>('remember-key').checked = keyRemembered;
  }

  hide(): void {
    $('room').hidden = true;
  }

  attach(c: JoinedChannel | null): void {
    this.channel = c;
    if (!c) return;
    $('codec-info').textContent = `Opus encoder: ${c.codecs.encoderBackend === 'webcodecs' ? 'WebCodecs' : 'WASM'} · decoder: WASM`;
    c.on('presence', () => this.renderPresence());
    c.on('entered', () => this.renderPresence());
  }

  render(v: View, m: Model): void {
    const tk = $('talker');
    tk.dataset.state = v.talker ? (v.talker.self ? 'self' : 'other') : 'clear';
    $('talker-name').textContent = v.talker ? (v.talker.self ? 'You are talking' : v.talker.name) : 'Channel clear';
    $('talker-source').textContent = v.talker && !v.talker.self ? v.talker.source : '';
    $('talker-source').hidden = !v.talker || v.talker.self;
    $('talker-source').className = `badge src-${m.holder?.source ?? ''}`;
    document.body.dataset.talk = m.talk.kind;
    if (m.crypto) {
      const c = cryptoView(m.crypto);
      const e2e = $('e2e');
      e2e.textContent = c.label;
      e2e.dataset.tone = c.tone;
      const n = $('e2e-note');
      n.hidden = !c.note;
      n.textContent = c.note ?? '';
      n.dataset.tone = c.noteTone;
      $('remember-wrap').hidden = !m.crypto.encrypted;
    }
  }

  private renderPresence(): void {
    const ul = $('presence');
    ul.replaceChildren();
    const joined = this.channel;
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

  private meterLoop(): void {
    const bar = $('meter-bar');
    // Falls back to zero 150 ms after the last report (the worklets report only while audio flows).
    const age = performance.now() - this.level.at;
    const v = age > 150 ? 0 : this.level.value;
    const db = v > 0 ? 20 * Math.log10(v) : -100;
    const w = Math.max(0, Math.min(1, (db + 60) / 60));
    bar.style.transform = `scaleX(${w.toFixed(3)})`;
    requestAnimationFrame(() => this.meterLoop());
  }
}
