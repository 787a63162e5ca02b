import { setFlagsFromString } from 'node:v8';

/**
 * The interrupt budget, in bytes of bytecode run, that V8 charges a function before it checks
 * whether to optimize it (Node 20's default: 67,584; a function needs three of them, more if large).
 */
export const INTERRUPT_BUDGET = 8192;

/**
 * Lets V8 optimize the daemon's per-packet code after seconds of audio instead of minutes.
 *
 * That code is many small functions, each run 25–50 times a second for a few hundred bytes of
 * bytecode: at V8's default budget they stay in baseline code (an inline-cache call for every
 * property access) for two to three minutes of bridged audio, and some longer. Eight bridged overs
 * of 20 s in a row measured here: at the default, both gateways' CPU per second of audio was still
 * falling at the eighth; at 8,192 it reached that level by the fourth and went ~15 % below it, for
 * ~5 % more in the first over (the compiling). docs/operations.md has the figures.
 *
 * Called once the daemon is up, so that start-up code, which runs once, is not optimized for
 * nothing (optimized code is memory). Node only accepts this V8 flag on its command line, not in
 * NODE_OPTIONS, so setting it here is what makes every way of starting the daemon (systemd, pm2,
 * `npm start`) run the same. A V8 that refuses it only warms up more slowly.
 */
export function tuneTiering(budget = INTERRUPT_BUDGET): void {
  try {
    setFlagsFromString(`--interrupt-budget=${budget}`);
  } catch {
    // Not fatal: this is about speed, never behaviour.
  }
}
