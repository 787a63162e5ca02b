/** Keeps a phone's screen on while joined (Screen Wake Lock, where the browser has it). */
type Lock = { release(): Promise<void> };

export class ScreenOn {
  private lock: Lock | null = null;

  /** @param wanted whether the page is joined */
  constructor(private readonly wanted: () => boolean) {
    // The browser drops the lock when the page is hidden; it is asked for again on the way back.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'hidden') void this.request();
    });
  }

  async request(): Promise<void> {
    const wl = (navigator as Navigator & { wakeLock?: { request(t: 'screen'): Promise<Lock> } }).wakeLock;
    if (!wl || !this.wanted() || document.visibilityState !== 'visible') return;
    try {
      this.lock = await wl.request('screen');
    } catch {
      /* refused (battery saver, no permission): the page still works */
    }
  }

  async release(): Promise<void> {
    await this.lock?.release().catch(() => {});
    this.lock = null;
  }
}
