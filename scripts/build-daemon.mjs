#!/usr/bin/env node
// Bundles the CLI and daemon (gateway/src/cli) into gateway/dist/bundle with esbuild: what
// gateway/bin/talkbridge.js runs. Why a bundle: each of the ~200 modules the daemon would otherwise
// load keeps its full source text and its own module record on the heap for as long as the daemon
// runs; minified and tree-shaken into a few files, an idle gateway is ~3 MB smaller (measured:
// 62.0–62.7 MB → 58.7–58.9 MB RSS, docs/operations.md). Code that is only needed on some paths
// (the embedded broker, the web server, radio drivers, metrics, the config schema) stays in chunks
// of its own that load when used, as the dynamic imports in the sources say.
//
// Left out of the bundle: packages that find files of their own at run time (native addons, pino's
// worker transports). gateway/dist (tsc's output, one file per module) stays for scripts and tests
// that import single modules.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Bundles the CLI into `out` (replaced); also used by scripts/fuzz.mjs for a bundle of its own. */
export async function bundleDaemon(out) {
  rmSync(out, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { cli: path.join(root, 'gateway/src/cli/index.ts') },
    outdir: out,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    // Stack traces name the sources with NODE_OPTIONS=--enable-source-maps (docs/operations.md).
    sourcemap: 'linked',
    external: ['@evan/opus', 'serialport', '@serialport/*', 'onoff', 'epoll', 'pino', 'pino-pretty', 'thread-stream'],
    // The CommonJS dependencies inside call require() for Node's built-in modules.
    banner: { js: "import { createRequire as __tbRequire } from 'node:module'; const require = __tbRequire(import.meta.url);" },
    logLevel: 'warning',
    metafile: true,
  });
  // Which sources went into which file: test/ops/memory.test.ts reads what a running daemon loaded from it.
  writeFileSync(path.join(out, 'meta.json'), JSON.stringify(result.metafile));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await bundleDaemon(path.join(root, 'gateway/dist/bundle'));
