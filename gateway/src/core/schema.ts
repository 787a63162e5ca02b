/** Small schema pieces every config section uses. */
import { z } from 'zod';

export const port = z.number().int().min(1).max(65535);
export const host = z.string().min(1);

/** Turns a validator that throws into a zod refinement carrying its message. */
export const check = (fn: (s: string) => unknown) => (s: string, ctx: z.RefinementCtx) => {
  try {
    fn(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
};
