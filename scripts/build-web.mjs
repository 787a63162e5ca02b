#!/usr/bin/env node
// Builds the browser client into gateway/web/dist: type-checks gateway/web (strict, DOM), bundles
// the page, the audio worklet and the service worker with esbuild, copies the static files and the
// libopus WASM, and stamps the service worker with a hash of everything it caches.
//
// Source maps are written to gateway/dist/web-maps, outside the folder the gateway serves, and the
// built files carry no sourceMappingURL: the page never hands out its sources. For debugging, load
// them into the browser's developer tools by hand.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.join(root, 'gateway/web');
const out = path.join(web, 'dist');
const maps = path.join(root, 'gateway/dist/web-maps');
const require = createRequire(import.meta.url);
const quiet = process.argv.includes('--quiet');

try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(web, 'tsconfig.json')], { stdio: 'inherit' });
} catch {
  process.exit(1); // tsc printed the errors
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
rmSync(maps, { recursive: true, force: true });
mkdirSync(maps, { recursive: true });

// 'external': the .map files without a link to them in the code (moved out of `out` below).
const common = { bundle: true, minify: true, sourcemap: 'external', target: ['es2022', 'chrome100', 'firefox110', 'safari16'], platform: 'browser', legalComments: 'linked', logLevel: 'warning' };
await build({ ...common, entryPoints: { app: path.join(web, 'src/main.ts'), worklet: path.join(web, 'src/worklet.ts') }, format: 'esm', outdir: out });

for (const f of readdirSync(path.join(web, 'public'))) copyFileSync(path.join(web, 'public', f), path.join(out, f));
const opus = path.join(path.dirname(require.resolve('@evan/opus/package.json')), 'wasm');
copyFileSync(path.join(opus, 'simd.wasm'), path.join(out, 'opus-simd.wasm'));
copyFileSync(path.join(opus, 'opus.wasm'), path.join(out, 'opus.wasm'));

// The service worker caches exactly the files the page needs; its version changes with any of them.
const moveMaps = () => {
  for (const f of readdirSync(out)) if (f.endsWith('.map')) renameSync(path.join(out, f), path.join(maps, f));
};
moveMaps();
const shell = readdirSync(out)
  .filter((f) => !f.endsWith('.LEGAL.txt'))
  .sort();
const hash = createHash('sha256');
for (const f of shell) hash.update(f).update(readFileSync(path.join(out, f)));
const version = hash.digest('hex').slice(0, 12);
await build({
  ...common,
  entryPoints: { sw: path.join(web, 'src/sw.ts') },
  format: 'iife',
  outdir: out,
  define: { SHELL_VERSION: JSON.stringify(version), SHELL_FILES: JSON.stringify(['./', ...shell]) },
});
moveMaps();
if (!quiet) {
  const size = (f) => readFileSync(path.join(out, f)).length;
  console.log(`web client built in ${path.relative(root, out)}: app.js ${(size('app.js') / 1024).toFixed(0)} KiB, worklet.js ${(size('worklet.js') / 1024).toFixed(1)} KiB, shell ${version}`);
}
