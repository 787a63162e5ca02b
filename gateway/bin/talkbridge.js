#!/usr/bin/env node
// Thin shim: the CLI lives in gateway/src/cli (compiled to gateway/dist by `npm ci` / `npm run build`).
import { main } from '../dist/cli/index.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`talkbridge: ${err?.message ?? err}\n`);
    process.exit(70);
  },
);
