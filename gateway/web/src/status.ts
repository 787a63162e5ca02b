/**
 * The top of the page: the channel's name (also in the window's title), the connection status
 * line, and the banner under it for notices, confirmations and what went wrong.
 */
import type { AudioEngine } from './audio.js';
import type { JoinedChannel } from './channel.js';
import { $ } from './dom.js';
import type { Tone, View } from './view.js';

const SOUND_OFF = 'Tap anywhere to turn on sound';

export class StatusBar {
  constructor(private readonly audio: Pick<AudioEngine, 'resume' | 'suspended'>) {
    const unlock = () => {
      void audio.resume().then(() => {
        if (!audio.suspended && $('banner').textContent === SOUND_OFF) this.banner(null);
      });
    };
    document.addEventListener('pointerdown', unlock);
    document.addEventListener('keydown', unlock);
  }

  /** What a channel has to say: a gateway's notice, a failed join. Once the broker is lost, the status line has the news. */
  attach(c: JoinedChannel): void {
    c.on('notice', (text) => this.banner(text, 'warn'));
    c.on('conn', (s) => {
      if (s.kind === 'reconnecting') this.banner(null);
    });
    c.on('entered', (err) => {
      if (err) this.banner(`Could not join: ${err.message}`, 'error');
    });
  }

  render(s: View['status']): void {
    const st = $('status');
    st.textContent = s.text;
    st.dataset.tone = s.tone;
  }

  channel(name: string | null): void {
    $('channel-label').textContent = name === null ? '' : `#${name}`;
    document.title = name === null ? 'talkbridge' : `${name} · talkbridge`;
  }

  banner(text: string | null, tone: Extract<Tone, 'warn' | 'error' | 'info'> = 'warn'): void {
    const b = $('banner');
    b.hidden = !text;
    b.textContent = text ?? '';
    b.dataset.tone = tone;
  }

  /** Browsers start audio suspended until the person touches the page: ask them to. */
  askForSound(): void {
    if (this.audio.suspended) this.banner(SOUND_OFF, 'info');
  }
}
