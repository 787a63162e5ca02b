/**
 * Drives every configured PTT line idle: what `talkbridge reset` (the unit's ExecStopPost) and
 * `ptt-test --off` run after the daemon is gone, however it went. A CM108 pin or a sysfs GPIO keeps
 * its last level when its process is SIGKILLed, so only a fresh process can release it.
 */
import type { Logger } from '../core/log.js';
import type { RadioConfig } from '../config/schema.js';
import { createPtt, type DriverDeps } from '../radio/factory.js';

export interface ResetResult {
  radio: string;
  /** The driver's description ("CM108 GPIO3 PTT on /dev/hidraw0"), when it could be built. */
  description: string | null;
  /** Why the line could not be driven idle; null = it is idle. */
  error: string | null;
}

/**
 * All radios at once, so one hung or unplugged interface does not hold up the others within
 * systemd's stop timeout. Results come back in config order.
 */
export async function resetAllPtt(radios: readonly RadioConfig[], deps: DriverDeps & { log: Logger; timeoutMs?: number }): Promise<ResetResult[]> {
  const timeoutMs = deps.timeoutMs ?? 5000;
  return Promise.all(
    radios.map(async (r): Promise<ResetResult> => {
      let description: string | null = null;
      let timer: NodeJS.Timeout | undefined;
      const work = (async () => {
        const ptt = await createPtt(r.ptt, deps);
        description = ptt.description;
        try {
          await ptt.open();
        } finally {
          await ptt.close();
        }
      })();
      // Settles after a timeout too; nobody is waiting for it then.
      work.catch(() => undefined);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      });
      try {
        await Promise.race([work, timeout]);
        return { radio: r.name, description, error: null };
      } catch (err) {
        return { radio: r.name, description, error: (err as Error).message };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}
