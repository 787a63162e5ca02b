#!/usr/bin/env node
// `npm run bench`: prints figures, never pass/fail. Runs the TypeScript benchmarks in test/bench
// (through tsx) after making sure the native reference tools and Mosquitto are present.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BENCH_DEPS, ensure } from './system-deps.mjs';

ensure(BENCH_DEPS, 'bench');
execFileSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
const only = process.argv.slice(2);
const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/bench/run.ts', ...only], { stdio: 'inherit' });
if (existsSync('scripts/bench-web.mjs') && (only.length === 0 || only.includes('web'))) spawnSync(process.execPath, ['scripts/bench-web.mjs'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
