#!/usr/bin/env node
// `npm run fuzz`: the standing attack suite (test/fuzz/run.ts; not part of `npm test`). Builds the
// daemon from this working tree — bundled by scripts/build-daemon.mjs, but into
// test/fuzz/.bundle, so a run never replaces gateway/dist/bundle under someone else's tests — and
// runs the suite through tsx. Prints a table; exits 1 when a target is missed, 2 when the harness
// failed. `npm run fuzz -- --quick` is the ≤ 60 s version for development; other flags:
// --seed N (repeat a run's mutations), --only a,b (some attacks), --bin FILE (another CLI, e.g.
// gateway/bin/talkbridge.js).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleDaemon } from './build-daemon.mjs';
import { ensure } from './system-deps.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
ensure(
  [
    ['mosquitto', 'mosquitto'],
    ['python3', 'python3'],
    ['mkfifo', 'coreutils'],
  ],
  'fuzz',
);
const args = process.argv.slice(2);
let bin = null;
if (!args.includes('--bin')) {
  // Inside the package, so core/paths.ts finds the package root above it.
  const out = path.join(root, 'test/fuzz/.bundle');
  await bundleDaemon(out);
  bin = path.join(out, 'talkbridge.js');
  // gateway/bin/talkbridge.js, pointing at this bundle.
  writeFileSync(
    bin,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: this string is the source of a module, template literal included
    "import { main } from './cli.js';\nmain(process.argv.slice(2)).then((code) => process.exit(code), (err) => { process.stderr.write(`talkbridge: ${err?.message ?? err}\\n`); process.exit(70); });\n",
  );
}
const child = spawn(process.execPath, ['--import', 'tsx', 'test/fuzz/run.ts', ...args], { cwd: root, stdio: 'inherit', env: bin ? { ...process.env, TB_FUZZ_BIN: bin } : process.env });
// Ctrl-C reaches the suite too (same process group); it stops everything it started, then exits.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 130 : 1)));
