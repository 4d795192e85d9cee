// The README's configuration reference names every SKEIN_* variable the code reads: the
// libraries, services and scripts (specs and test helpers aside), the CLI and the
// benchmarks. A documentation check, by text: a name mentioned in code is taken as read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist' || name === 'testing' || name.startsWith('.')) continue;
    if (statSync(path).isDirectory()) files(path, out);
    else if (/\.(ts|mjs|js)$/.test(name) && !name.endsWith('.spec.ts')) out.push(path);
  }
  return out;
}

// A whole name: not a prefix written as `SKEIN_SHARD_*` or `SKEIN_REDIS_TLS_*_FILE`.
const NAME = /SKEIN_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_]*\*)/g;

function namesInCode(): Map<string, string> {
  const dirs = [
    ...['libs', 'services'].flatMap((group) => readdirSync(join(root, group)).map((p) => join(root, group, p, 'src'))),
    join(root, 'libs/client/bin'),
    join(root, 'scripts'),
    join(root, 'test/bench'),
  ];
  const found = new Map<string, string>();
  for (const dir of dirs) {
    try {
      statSync(dir);
    } catch {
      continue;
    }
    for (const file of files(dir)) for (const [name] of readFileSync(file, 'utf8').matchAll(NAME)) if (!found.has(name)) found.set(name, relative(root, file));
  }
  return found;
}

function readmeReference(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Configuration\n');
  assert.ok(start >= 0, 'README.md has a "## Configuration" section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

test('every SKEIN_* variable read in the code is in the README configuration reference', () => {
  const code = namesInCode();
  assert.ok(code.size > 40, `found ${code.size} names: the scan reaches the config readers`);
  for (const must of ['SKEIN_REDIS_URL', 'SKEIN_ROUTER_PORT', 'SKEIN_SHARD_DATA_DIR', 'SKEIN_NODE_SHARDS', 'SKEIN_PORT', 'SKEIN_URL']) assert.ok(code.has(must), `${must} is found in the code`);
  const reference = readmeReference();
  const documented = new Set([...reference.matchAll(/`(SKEIN_[A-Z0-9_]+)(?:=[^`]*)?`/g)].map((m) => m[1]!));
  const missing = [...code].filter(([name]) => !documented.has(name)).map(([name, file]) => `${name} (read in ${file})`);
  assert.deepEqual(missing, [], 'add each to README.md "## Configuration" with its default, unit and meaning');
});

test('every variable in the README reference table is read somewhere (no stale rows)', () => {
  const code = namesInCode();
  const rows = [...readmeReference().matchAll(/^\| `(SKEIN_[A-Z0-9_]+)`(?:, `(SKEIN_[A-Z0-9_]+)`)? \|/gm)].flatMap((m) => [m[1]!, m[2]].filter((n): n is string => n !== undefined));
  assert.ok(rows.length > 40, `the reference has ${rows.length} rows`);
  assert.deepEqual(rows.filter((name) => !code.has(name)), []);
});
