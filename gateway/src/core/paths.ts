/**
 * Where the package's own files are. This module sits two folders below gateway/ in every form the
 * code runs in: the sources (gateway/src/core), the compiled modules (gateway/dist/core) and the
 * daemon bundle (gateway/dist/bundle, where every module shares one folder). So the root is three
 * levels up from here, and everything else is named from the root rather than from the folder of
 * whichever module asks.
 */
import { fileURLToPath } from 'node:url';

const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function packagePath(...parts: string[]): string {
  return PACKAGE_ROOT + parts.join('/');
}

/** The CLI entry point: what `run` starts its config check with. */
export const CLI_BIN = packagePath('gateway/bin/talkbridge.js');
