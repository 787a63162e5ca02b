#!/usr/bin/env node
// Thin shim: the CLI lives in gateway/src/cli, bundled into gateway/dist/bundle by `npm ci` /
// `npm run build` (scripts/build-daemon.mjs says why a bundle).
import { main } from '../dist/bundle/cli.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`talkbridge: ${err?.message ?? err}\n`);
    process.exit(70);
  },
);
