#!/usr/bin/env node
// Enforces the dependency direction of STYLE.md on the Nx project graph (project tags →
// allowed project tags and forbidden npm packages), and refuses import cycles between
// source files of any project. Runs before the tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** tag → tags its projects may depend on, and npm packages they must not use. */
const CONSTRAINTS = {
  'type:protocol': { allow: [], forbidNpm: ['*'] },
  'type:ring': { allow: [], forbidNpm: ['lmdb', 'ioredis', 'bullmq'] },
  'type:engine': { allow: ['type:protocol'], forbidNpm: ['ioredis', 'bullmq'] },
  'type:sequencer': { allow: ['type:protocol'], forbidNpm: ['lmdb'] },
  'type:client': { allow: ['type:protocol'], forbidNpm: ['lmdb', 'ioredis', 'bullmq'] },
  'type:lib': { allow: ['type:protocol', 'type:lib', 'type:ring', 'type:sequencer'], forbidNpm: ['lmdb'] },
  'type:testing': { allow: ['type:protocol', 'type:lib', 'type:engine', 'type:sequencer', 'type:ring', 'type:client'], forbidNpm: [] },
  // The router reaches shards only through the ShardApi interface of protocol, never their engine.
  'type:router': { allow: ['type:protocol', 'type:ring', 'type:sequencer', 'type:lib'], forbidNpm: ['lmdb', 'bullmq'] },
  'type:shard': { allow: ['type:protocol', 'type:engine', 'type:ring', 'type:sequencer', 'type:lib'], forbidNpm: ['bullmq'] },
  // Entry points compose libraries by role; no service imports another.
  'type:service': { allow: ['type:protocol', 'type:engine', 'type:sequencer', 'type:ring', 'type:lib', 'type:router', 'type:shard'], forbidNpm: [] },
  'type:e2e': { allow: ['type:protocol', 'type:engine', 'type:sequencer', 'type:ring', 'type:lib', 'type:client', 'type:testing', 'type:router', 'type:shard'], forbidNpm: [] },
};

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dir = mkdtempSync(join(tmpdir(), 'skein-graph-'));
const file = join(dir, 'graph.json');
execFileSync(join(root, 'node_modules/.bin/nx'), ['graph', `--file=${file}`], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
});
const { graph } = JSON.parse(readFileSync(file, 'utf8'));
rmSync(dir, { recursive: true, force: true });

const problems = [];
const tagOf = (name) => (graph.nodes[name]?.data.tags ?? []).find((t) => t.startsWith('type:'));
for (const [name, node] of Object.entries(graph.nodes)) {
  const tag = tagOf(name);
  const rule = CONSTRAINTS[tag];
  if (!rule) {
    problems.push(`${name}: needs exactly one known type:* tag (has ${JSON.stringify(node.data.tags)})`);
    continue;
  }
  for (const dep of graph.dependencies[name] ?? []) {
    if (dep.target.startsWith('npm:')) {
      const pkg = dep.target.slice(4);
      if (rule.forbidNpm.includes('*') || rule.forbidNpm.includes(pkg)) problems.push(`${name} (${tag}) must not use ${pkg}`);
      continue;
    }
    const depTag = tagOf(dep.target);
    if (depTag === 'type:testing' && !importedOutsideSpecs(node, graph.nodes[dep.target])) continue;
    if (!rule.allow.includes(depTag)) problems.push(`${name} (${tag}) must not depend on ${dep.target} (${depTag})`);
  }
}

// Any project's *.spec.ts and src/testing/ (spec helpers, never built) may use the test
// harness; its other sources may not.
function importedOutsideSpecs(node, target) {
  const pkg = JSON.parse(readFileSync(join(root, target.data.root, 'package.json'), 'utf8')).name;
  let files;
  try { files = walk(join(root, node.data.root, 'src'), []); } catch { return false; }
  const specHelpers = join(root, node.data.root, 'src', 'testing') + '/';
  return files.some((f) => !f.startsWith(specHelpers) && readFileSync(f, 'utf8').includes(`'${pkg}'`));
}

// File-level import cycles, per project source tree.
function walk(d, out) {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (n === 'node_modules') continue;
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}
for (const node of Object.values(graph.nodes)) {
  const src = join(root, node.data.root, 'src');
  let files;
  try { files = walk(src, []); } catch { continue; }
  const edges = new Map();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const deps = [];
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
      if (/^\s*import\s+type\s/.test(m[0]) || /^\s*export\s+type\s/.test(m[0])) continue;
      deps.push(resolve(dirname(f), m[1]));
    }
    edges.set(f, deps);
  }
  const state = new Map();
  const stack = [];
  const visit = (f) => {
    if (state.get(f) === 2) return;
    if (state.get(f) === 1) {
      problems.push(`import cycle: ${stack.slice(stack.indexOf(f)).concat(f).map((x) => x.slice(root.length + 1)).join(' → ')}`);
      return;
    }
    state.set(f, 1);
    stack.push(f);
    for (const d of edges.get(f) ?? []) if (edges.has(d)) visit(d);
    stack.pop();
    state.set(f, 2);
  };
  for (const f of files) visit(f);
}

if (problems.length) {
  console.error('dependency rules broken:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log(`boundaries ok: ${Object.keys(graph.nodes).length} projects, no forbidden dependencies, no import cycles`);
