/**
 * Where the package's own files are, named from the package root rather than from the folder of
 * whichever module asks. The code runs from the sources (gateway/src/core), from tsc's output
 * (gateway/dist/src/core) and from the daemon bundle (gateway/dist/bundle, or the fuzzer's copy in
 * test/fuzz/.bundle), each at its own depth: the root is the nearest folder above that holds both
 * package.json and gateway/.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'gateway'))) return dir + path.sep;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`talkbridge: no package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

const PACKAGE_ROOT = findRoot();

export function packagePath(...parts: string[]): string {
  return PACKAGE_ROOT + parts.join('/');
}

/** The CLI entry point: what `run` starts its config check with. */
export const CLI_BIN = packagePath('gateway/bin/talkbridge.js');
