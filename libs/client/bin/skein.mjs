#!/usr/bin/env node
// The `skein` command line: runs the compiled CLI (dist/cli/main.js, built by `npm run build`).
// Under the `skein-source` export condition (the repo's tests: node --conditions=skein-source)
// `#cli` is src/cli/main.ts instead, run through tsx, so that tests never see a stale dist.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = import.meta.resolve('#cli');
if (main.endsWith('.ts')) (await import('tsx/esm/api')).register();
else if (!existsSync(fileURLToPath(main))) {
  console.error('skein: the CLI is not compiled (dist/cli/main.js is missing): run `npm run build` in the Skein repository');
  process.exit(1);
}
await import(main);
