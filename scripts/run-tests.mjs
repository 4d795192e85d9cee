#!/usr/bin/env node
// Runs every *.spec.ts under the given directories (default: the current one), or the given files, with
// node's built-in test runner and tsx. Node 20 expands no globs, so we find them here.
// Tests run the TypeScript sources, never dist/: the `skein-source` export condition
// makes every @skein/* import resolve to src/, in the test process and, through
// NODE_OPTIONS, in every node process a test starts (services, the CLI, npm start).
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('--'));
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.spec.ts')) files.push(path);
  }
}
for (const root of roots.length ? roots : ['.']) {
  if (statSync(root).isFile()) files.push(root);
  else walk(root);
}
files.sort();
if (files.length === 0) {
  console.error(`no *.spec.ts files under ${roots.join(', ') || '.'}`);
  process.exit(1);
}
console.log(`running ${files.length} spec file(s): ${files.map((f) => relative('.', f)).join(' ')}`);
const SOURCE = '--conditions=skein-source';
const nodeOptions = [process.env.NODE_OPTIONS, SOURCE].filter(Boolean).join(' ');
const result = spawnSync(
  process.execPath,
  // --test-force-exit: a spec that leaves a handle open (a failed test that never reached its
  // cleanup) ends when its tests do, instead of holding the run until CI's own timeout.
  // --test-timeout: no single test runs longer than 5 minutes (the slowest takes ~45 s).
  [SOURCE, '--import', 'tsx', '--test', '--test-concurrency=1', '--test-force-exit', '--test-timeout=300000', ...passthrough, ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: nodeOptions } },
);
process.exit(result.status ?? 1);
