import { setFlagsFromString } from 'node:v8';

/**
 * Lets V8 optimize the daemon's per-packet code after seconds of audio instead of minutes.
 *
 * V8 checks a function for optimization each time it has run an "interrupt budget" of bytecode
 * (Node 20's default: 67,584 bytes; three of them, more for a large function). The audio path is
 * many small functions, each run 25–50 times a second for a few hundred bytes: at the default they
 * stay in baseline code (an inline-cache call for every property access) for minutes of bridged
 * audio. Measured here over consecutive 20 s overs: at the default both gateways' CPU per second of
 * audio was still falling at the eighth; at 8,192 overs 4–6 cost 13–14 % less than at the default,
 * for up to ~10 % more in the first over (the compiling). docs/operations.md has the figures.
 * Node 24's V8 already optimizes such functions after ~510 calls by default; there the flag
 * changes nothing (test/unit/tiering.test.ts measures both).
 *
 * Called once the daemon is up, so that start-up code, which runs once, is not optimized for
 * nothing (optimized code is memory). Node only accepts this V8 flag on its command line, not in
 * NODE_OPTIONS, so setting it here is what makes every way of starting the daemon (systemd, pm2,
 * `npm start`) run the same. A V8 that refuses it only warms up more slowly.
 */
export function tuneTiering(): void {
  try {
    setFlagsFromString('--interrupt-budget=8192');
  } catch {
    // Not fatal: this is about speed, never behaviour.
  }
}
