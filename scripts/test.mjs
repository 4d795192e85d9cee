#!/usr/bin/env node
// `npm test`: type-checks and tests every Nx project, one at a time, streaming the
// output, then prints one closing line adding up every project's node:test summary.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' };
const args = ['run-many', '-t', 'typecheck,test', '--outputStyle=stream', '--parallel=1', '--skipNxCache', ...process.argv.slice(2)];
const child = spawn('npx', ['nx', ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
let passed = 0;
let failed = 0;
createInterface({ input: child.stdout }).on('line', (line) => {
  process.stdout.write(line + '\n');
  const m = /# (pass|fail) (\d+)\s*$/.exec(line);
  if (m) {
    if (m[1] === 'pass') passed += Number(m[2]);
    else failed += Number(m[2]);
  }
});
child.on('exit', (code) => {
  console.log(`\nTests: ${passed} passed, ${failed} failed`);
  process.exit(code ?? 1);
});
