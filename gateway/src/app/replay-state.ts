/**
 * Keeps each encrypted channel's replay memory (every sender's newest over) and the newest key epoch
 * in use (with when it was first seen) in the state directory across restarts (docs/security.md,
 * "Replay" and "Key rotation and epochs"). Written atomically every 30 s, at once when a newer epoch
 * comes into use, and at stop; a missing or damaged file only means starting with an empty memory,
 * as before.
 *
 * File: `replay-<channel>.json`, an object whose keys are sender ids (ReplayGuard.snapshot) plus
 * `"#epoch": {"epoch": N, "since": ms}`. No sender id can start with "#" (an MQTT wildcard), and
 * the entry has no `newest` field, so older gateways reading a newer file skip it, and files
 * written before it existed read as before (no epoch known).
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChannelCrypto } from '../../shared/crypto/channel-crypto.js';
import type { Logger } from '../core/log.js';

export const EPOCH_FIELD = '#epoch';

export function keepReplayState(crypto: ChannelCrypto, dir: string, log: Logger): () => Promise<void> {
  const file = path.join(dir, `replay-${crypto.channel}.json`);
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    const now = Date.now();
    const n = crypto.replay.restore(saved, now);
    const epoch = typeof saved === 'object' && saved !== null ? (saved as Record<string, unknown>)[EPOCH_FIELD] : undefined;
    const restored = epoch !== undefined && crypto.restoreEpochInUse(epoch, now);
    if (epoch !== undefined && !restored) log.warn({ event: 'replay-state', file, epoch }, `ignoring the saved key epoch in use in ${file} (malformed, or newer than every key configured)`);
    log.debug({ event: 'replay-state', file, senders: n, epoch: crypto.epochInUse() }, 'replay memory restored');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ event: 'replay-state', file, err: (err as Error).message }, `ignoring unreadable ${file}`);
  }
  let last = '';
  const write = async () => {
    const snap: Record<string, unknown> = crypto.replay.snapshot();
    const epoch = crypto.epochInUse();
    if (epoch) snap[EPOCH_FIELD] = epoch;
    const text = JSON.stringify(snap);
    if (text === last) return;
    try {
      await writeFile(file + '.tmp', text, { mode: 0o600 });
      await rename(file + '.tmp', file);
      last = text;
    } catch (err) {
      log.warn({ event: 'replay-state', file, err: (err as Error).message }, `cannot save ${file}`);
    }
  };
  // One write at a time: the timer, an epoch change and stop share the temporary file.
  let writing = Promise.resolve();
  const save = () => (writing = writing.then(write));
  crypto.onEpochInUse = () => void save();
  const timer = setInterval(() => void save(), 30_000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    crypto.onEpochInUse = null;
    await save();
  };
}
