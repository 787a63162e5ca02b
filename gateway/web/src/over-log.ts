/**
 * The overs a joined channel has received since joining, each with its audio kept for replay
 * (in memory and nowhere else). No DOM: overs.ts shows it.
 */
import type { AudioFrame, OverReport, TalkerInfo } from '../../shared/channel/session.js';
import { sourceLabel } from './view.js';

/** Received overs kept for replay, and the audio kept for them (16 kHz samples, ~10 minutes). */
const MAX_OVERS = 30;
const MAX_KEPT_SAMPLES = 16000 * 600;

export interface OverEntry {
  stream: string;
  name: string;
  source: string;
  at: Date;
  chunks: Int16Array[];
  samples: number;
  /** Null while the over is still coming in. */
  report: OverReport | null;
}

/** The over's audio as one buffer (empty once no longer kept). */
export function keptPcm(o: OverEntry): Int16Array {
  const pcm = new Int16Array(o.samples);
  let at = 0;
  for (const c of o.chunks) pcm.set(c, at), (at += c.length);
  return pcm;
}

export class OverLog {
  /** Oldest first. */
  readonly entries: OverEntry[] = [];

  start(i: TalkerInfo, at: Date): void {
    this.entries.push({ stream: i.stream, name: i.name, source: sourceLabel(i.source), at, chunks: [], samples: 0, report: null });
    if (this.entries.length > MAX_OVERS) this.entries.shift();
  }

  audio(f: AudioFrame): void {
    const o = this.entries.at(-1);
    if (o && o.stream === f.stream) {
      o.chunks.push(f.pcm);
      o.samples += f.pcm.length;
    }
  }

  end(r: OverReport): void {
    const o = this.entries.find((x) => x.stream === r.stream);
    if (o) o.report = r;
    this.trimKept();
  }

  private trimKept(): void {
    let total = 0;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const o = this.entries[i]!;
      total += o.samples;
      if (total > MAX_KEPT_SAMPLES && o.report) {
        o.chunks = [];
        o.samples = 0;
      }
    }
  }
}
