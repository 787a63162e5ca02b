import type { Logger } from 'pino';
import { PttBase } from './base.js';

/** No PTT line: the radio keys itself on its own VOX when audio arrives. */
export class NonePtt extends PttBase {
  constructor(log?: Logger) {
    super("none (the radio's own VOX keys it)", log);
  }
  protected async openLine(): Promise<void> {}
  protected async setLine(): Promise<void> {}
  protected async closeLine(): Promise<void> {}
}
