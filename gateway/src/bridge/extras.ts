/**
 * What goes out in the hang time after an over, before we unkey: the courtesy tone after every
 * over, the recorded announcement and the CW station ID each at most once per their interval. The
 * state machine decides when an over has ended and plays what this hands it.
 */
import type { Logger } from 'pino';
import { resampleAll } from '../../shared/audio/resample.js';
import { readWav } from '../audio/wav.js';
import { toFloat } from '../../shared/dsp/stage.js';
import { courtesyTone, cw } from '../../shared/dsp/tones.js';
import type { BridgeConfig } from './schema.js';

export class HangExtras {
  private lastId = -Infinity;
  private lastAnnouncement = -Infinity;
  private announcement: Float32Array | null = null;

  constructor(
    private readonly c: Pick<BridgeConfig, 'courtesyTone' | 'cwId' | 'announcement'>,
    /** The output's rate: what is handed out is at it. */
    private readonly rate: number,
    private readonly radio: string,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    if (!this.c.announcement.file) return;
    // Read now, so a missing or broken file stops the start with its name, not a later over.
    const a = await readWav(this.c.announcement.file);
    this.announcement = toFloat(resampleAll(a.samples, a.sampleRate, this.rate));
  }

  /** What is due after an over that ended at `now` (ms), in order, each block the caller's to keep. */
  due(now: number): Float32Array[] {
    const out: Float32Array[] = [];
    const id = this.c.cwId.callsign && now - this.lastId >= this.c.cwId.intervalMinutes * 60000 ? this.c.cwId.callsign : null;
    if (this.c.courtesyTone) out.push(courtesyTone(this.rate));
    if (this.announcement && now - this.lastAnnouncement >= this.c.announcement.intervalMinutes * 60000) {
      this.lastAnnouncement = now;
      out.push(this.announcement.slice());
      this.log.info({ event: 'announcement', radio: this.radio, file: this.c.announcement.file }, `${this.radio}: announcement`);
    }
    if (id) {
      this.lastId = now;
      out.push(cw(`DE ${id}`, this.rate, { wpm: this.c.cwId.wpm }));
      this.log.info({ event: 'station-id', radio: this.radio, callsign: id }, `${this.radio}: CW ID ${id}`);
    }
    return out;
  }
}
