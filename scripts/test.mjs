#!/usr/bin/env node
// `npm test`: gets the system packages the tests need, builds, type-checks, then runs every test
// file with tap and ends with one plain summary line. Extra arguments go to tap
// (e.g. `npm test -- test/unit/packet.test.ts`).
import { execFileSync, spawn } from 'node:child_process';
import { ensure, TEST_DEPS } from './system-deps.mjs';

ensure(TEST_DEPS, 'test');
const npx = (args) => execFileSync('npx', ['--no-install', ...args], { stdio: 'inherit' });
try {
  npx(['tsc', '-p', 'tsconfig.json']);
  npx(['tsc', '-p', 'test/tsconfig.json']);
} catch (err) {
  process.exit(typeof err.status === 'number' ? err.status : 1);
}

const files = process.argv.slice(2);
const tap = spawn('npx', ['--no-install', 'tap', '--reporter=terse', '--no-color', ...(files.length ? files : ['test/**/*.test.ts'])], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
tap.stdout.on('data', (d) => {
  process.stdout.write(d);
  out += d;
});
tap.on('close', (code) => {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  // terse redraws its progress lines: the last ones are the totals.
  const last = (re) => [...text.matchAll(re)].at(-1);
  const suites = last(/Suites:\s+(\d+) pass\s+(\d+) fail/g);
  const asserts = last(/Asserts:\s+(\d+) pass\s+(\d+) fail/g);
  if (suites) {
    console.log(`\nasserts: ${asserts ? `${asserts[1]} passed, ${asserts[2]} failed` : 'n/a'} (in ${Number(suites[1]) + Number(suites[2])} test files)`);
    console.log(`tests: ${suites[1]} passed, ${suites[2]} failed`);
  }
  process.exit(code ?? 1);
});
