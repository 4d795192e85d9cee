#!/usr/bin/env node
// `npm test`: type-checks and tests every Nx project, streaming the output, then prints one
// closing line adding up every project's node:test summary. Three rounds, so the suite fits
// CI's 15 minutes on 2 cores without timing-sensitive tests sharing the machine:
//   1. typecheck every project, two at a time (tsc only: nothing here measures time);
//   2. the libraries' and services' tests, two projects at a time;
//   3. the end-to-end project (`test`: clusters, kills, load) alone.
// Extra arguments go to every `nx run-many` (for example `--projects=engine`).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' };
const extra = process.argv.slice(2);
const common = ['--outputStyle=stream', '--skipNxCache', ...extra];
const rounds = [
  ['run-many', '-t', 'typecheck', '--parallel=2', ...common],
  ['run-many', '-t', 'test', '--exclude=test', '--parallel=2', ...common],
  ['run-many', '-t', 'test', '--projects=test', '--parallel=1', ...common],
];
// A --projects filter given by the caller replaces the rounds' own selection.
if (extra.some((a) => a.startsWith('--projects'))) rounds.splice(1, 2, ['run-many', '-t', 'test', '--parallel=1', ...common]);

let passed = 0;
let failed = 0;
function run(args) {
  return new Promise((resolve) => {
    const child = spawn('npx', ['nx', ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: child.stdout }).on('line', (line) => {
      process.stdout.write(line + '\n');
      const m = /# (pass|fail) (\d+)\s*$/.exec(line);
      if (m) {
        if (m[1] === 'pass') passed += Number(m[2]);
        else failed += Number(m[2]);
      }
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

const started = Date.now();
let code = 0;
for (const args of rounds) {
  const roundStarted = Date.now();
  const c = await run(args);
  console.log(`\n[npm test] nx ${args.slice(0, 5).join(' ')}: exit ${c} after ${((Date.now() - roundStarted) / 1000).toFixed(0)} s`);
  // Every round runs even after a failure, so one run reports every failing test.
  if (c !== 0) code = c;
}
console.log(`\nTests: ${passed} passed, ${failed} failed (${((Date.now() - started) / 60000).toFixed(1)} min)`);
process.exit(code);
