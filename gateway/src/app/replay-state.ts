/**
 * Keeps each encrypted channel's replay memory (every sender's newest over) in the state directory
 * across restarts (docs/security.md, "Replay"). Written atomically every 30 s and at stop; a missing
 * or damaged file only means starting with an empty memory, as before.
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChannelCrypto } from '../crypto/channel-crypto.js';
import type { Logger } from '../core/log.js';

export function keepReplayState(crypto: ChannelCrypto, dir: string, log: Logger): () => Promise<void> {
  const file = path.join(dir, `replay-${crypto.channel}.json`);
  try {
    const n = crypto.replay.restore(JSON.parse(readFileSync(file, 'utf8')), Date.now());
    log.debug({ event: 'replay-state', file, senders: n }, 'replay memory restored');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ event: 'replay-state', file, err: (err as Error).message }, `ignoring unreadable ${file}`);
  }
  let last = '';
  const save = async () => {
    const text = JSON.stringify(crypto.replay.snapshot());
    if (text === last) return;
    try {
      await writeFile(file + '.tmp', text, { mode: 0o600 });
      await rename(file + '.tmp', file);
      last = text;
    } catch (err) {
      log.warn({ event: 'replay-state', file, err: (err as Error).message }, `cannot save ${file}`);
    }
  };
  const timer = setInterval(() => void save(), 30_000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await save();
  };
}
