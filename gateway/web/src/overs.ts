/** The list of overs received since joining, newest first, each with a Replay button while its audio is kept. */
import type { AudioEngine } from './audio.js';
import type { JoinedChannel } from './channel.js';
import { $ } from './dom.js';
import { type OverEntry, keptPcm } from './over-log.js';

function fmtTime(d: Date): string {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export class OversList {
  constructor(private readonly audio: Pick<AudioEngine, 'replay'>) {}

  /** A channel being joined: nothing received yet. */
  clear(): void {
    this.render([]);
  }

  attach(c: JoinedChannel): void {
    c.on('overs', () => this.render(c.overs.entries));
  }

  private render(overs: readonly OverEntry[]): void {
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
          const pcm = keptPcm(o);
          b.textContent = 'Playing…';
          this.audio.replay(pcm, () => (b.textContent = 'Replay')).catch(() => (b.textContent = 'Replay'));
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
}
