#!/usr/bin/env node
// `npm test`: gets the system packages the tests need, builds, type-checks (daemon, tests, web
// client), lints (biome.json), checks the import rules (.dependency-cruiser.cjs), then runs every test
// file with tap. Prints one line per test file, the failures in full, and a closing summary line
// ("tests: N passed, N failed"). Extra arguments go to tap (e.g. `npm test -- test/unit/packet.test.ts`).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensure, TEST_DEPS } from './system-deps.mjs';
import { rebuildNativeFor, testNode } from './test-node.mjs';

ensure(TEST_DEPS, 'test');
// The whole run (tsc, tap, every daemon and CLI the tests start) on a Node with node:sqlite.
const node = testNode();
if (node !== process.execPath) {
  rebuildNativeFor(node, process.cwd());
  const env = { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}` };
  const r = spawnSync(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env });
  process.exit(r.status ?? 1);
}
console.log(`[test] Node ${process.version}`);
const npx = (args) => execFileSync('npx', ['--no-install', ...args], { stdio: 'inherit' });
try {
  npx(['tsc', '-p', 'tsconfig.json']);
  npx(['tsc', '-p', 'gateway/shared/tsconfig.json']);
  npx(['tsc', '-p', 'test/tsconfig.json']);
  npx(['tsc', '-p', 'gateway/web/tsconfig.json']);
  npx(['biome', 'check', '--error-on-warnings', '.']);
  npx(['depcruise', 'gateway/src', 'gateway/shared', 'gateway/web/src', '--config', '.dependency-cruiser.cjs']);
  // The tests run the CLI as users do: the bundle gateway/bin/talkbridge.js loads.
  execFileSync(process.execPath, ['scripts/build-daemon.mjs'], { stdio: 'inherit' });
  // The browser tests load the built web client.
  execFileSync(process.execPath, ['scripts/build-web.mjs', '--quiet'], { stdio: 'inherit' });
} catch (err) {
  process.exit(typeof err.status === 'number' ? err.status : 1);
}

mkdirSync('.tap', { recursive: true });
rmSync('.tap/report.tap', { force: true });
const report = '.tap/report.tap';
const files = process.argv.slice(2);
const started = Date.now();
// The full TAP stream goes to a file; the console gets a line per file as each finishes.
const tap = spawn('npx', ['--no-install', 'tap', '--reporter=tap', `--reporter-file=${report}`, ...(files.length ? files : ['test/**/*.test.ts'])], { stdio: 'inherit' });
let shown = 0;
const progress = setInterval(() => {
  if (!existsSync(report)) return;
  const done = readFileSync(report, 'utf8')
    .split('\n')
    .filter((l) => /^(not )?ok \d+ - /.test(l));
  for (const l of done.slice(shown)) console.log(l.replace(/ # time=([\d.]+)ms$/, (_, ms) => `  (${(Number(ms) / 1000).toFixed(1)} s)`));
  shown = done.length;
}, 500);
tap.on('close', (code, signal) => {
  clearInterval(progress);
  const text = existsSync(report) ? readFileSync(report, 'utf8') : '';
  const lines = text.split('\n');
  const top = lines.filter((l) => /^(not )?ok \d+ - /.test(l));
  for (const l of top.slice(shown)) console.log(l.replace(/ # time=([\d.]+)ms$/, (_, ms) => `  (${(Number(ms) / 1000).toFixed(1)} s)`));
  // Each failing file: its failing tests and what tap said about them.
  const failedFiles = top.filter((l) => l.startsWith('not ok')).map((l) => l.replace(/^not ok \d+ - /, '').replace(/ # .*$/, ''));
  let passed = 0;
  let failed = 0;
  for (const l of top) {
    const file = l.replace(/^(not )?ok \d+ - /, '').replace(/ # .*$/, '');
    const own = path.join('.tap/test-results', `${file}.tap`);
    const body = existsSync(own) ? readFileSync(own, 'utf8').split('\n') : [];
    const ok = body.filter((x) => /^ok \d+/.test(x)).length;
    const bad = body.filter((x) => /^not ok \d+/.test(x)).length;
    passed += ok;
    // A file that failed without a failing test (crash, timeout, exit code) counts as one failure.
    failed += bad || (l.startsWith('not ok') ? 1 : 0);
  }
  if (failedFiles.length) {
    console.log('\nFailures:');
    for (const f of failedFiles) {
      console.log(`\n# ${f}`);
      const own = path.join('.tap/test-results', `${f}.tap`);
      const body = existsSync(own) ? readFileSync(own, 'utf8') : '(no output)';
      // The failing assertions with their diagnostics, and the file's last lines (a crash shows there).
      const out = body.split('\n');
      const keep = out.filter((x, i) => /not ok/.test(x) || out.slice(Math.max(0, i - 40), i).some((y) => /not ok/.test(y)));
      console.log(keep.slice(0, 200).join('\n'));
      console.log(out.slice(-15).join('\n'));
    }
  }
  console.log(`\n${top.length} test files in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log(`tests: ${passed} passed, ${failed} failed`);
  process.exit(code || (signal ? 1 : 0) || (failed ? 1 : 0));
});
