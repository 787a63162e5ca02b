#!/usr/bin/env node
// `npm test`: gets the system packages the tests need, builds, type-checks, then runs every test
// file with tap and ends with one plain summary line ("tests: N passed, N failed").
// Extra arguments go to tap (e.g. `npm test -- test/unit/packet.test.ts`).
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensure, TEST_DEPS } from './system-deps.mjs';

ensure(TEST_DEPS, 'test');
const npx = (args) => execFileSync('npx', ['--no-install', ...args], { stdio: 'inherit' });
try {
  npx(['tsc', '-p', 'tsconfig.json']);
  npx(['tsc', '-p', 'test/tsconfig.json']);
  // The browser tests load the built web client.
  execFileSync(process.execPath, ['scripts/build-web.mjs', '--quiet'], { stdio: 'inherit' });
} catch (err) {
  process.exit(typeof err.status === 'number' ? err.status : 1);
}

const started = Date.now();
const files = process.argv.slice(2);
const tap = spawn('npx', ['--no-install', 'tap', '--reporter=dot', '--no-color', ...(files.length ? files : ['test/**/*.test.ts'])], { stdio: 'inherit' });
tap.on('close', (code) => {
  // tap keeps each file's TAP output; count the top-level tests of the files this run wrote.
  const results = '.tap/test-results';
  const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  let passed = 0;
  let failed = 0;
  const failures = [];
  for (const f of walk(results).filter((f) => f.endsWith('.tap') && statSync(f).mtimeMs >= started - 1000)) {
    const lines = readFileSync(f, 'utf8').split('\n');
    const ok = lines.filter((l) => /^ok \d+/.test(l)).length;
    const bad = lines.filter((l) => /^not ok \d+/.test(l));
    passed += ok;
    failed += bad.length || (ok === 0 ? 1 : 0);
    for (const l of bad) failures.push(`${path.relative(results, f).replace(/\.tap$/, '')}: ${l.replace(/^not ok \d+ - /, '')}`);
    if (!bad.length && ok === 0) failures.push(`${path.relative(results, f).replace(/\.tap$/, '')}: no test ran (crashed?)`);
  }
  if (failures.length) console.log(`\nfailed:\n${failures.map((f) => `  ${f}`).join('\n')}`);
  console.log(`\ntests: ${passed} passed, ${failed} failed`);
  process.exit(code || (failed ? 1 : 0));
});
