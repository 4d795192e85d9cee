#!/usr/bin/env node
// `npm run build`: compiles every lib and service to JavaScript with type declarations,
// each into its own `dist/` (tsc -b over every tsconfig.build.json, and the tsconfig.cjs.json
// of @skein/protocol and @skein/client: their CommonJS build in dist/cjs), then copies the files
// the code reads at run time (Lua scripts) beside the compiled code, and marks dist/cjs as CommonJS.
// `npm start` calls `buildIfStale` so that a fresh clone needs no separate build step.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Directories of the projects `npm run build` compiles (those with a tsconfig.build.json). */
export function buildProjects() {
  const out = [];
  for (const group of ['libs', 'services']) {
    for (const name of readdirSync(join(root, group))) {
      const dir = join(root, group, name);
      if (existsSync(join(dir, 'tsconfig.build.json'))) out.push(dir);
    }
  }
  return out;
}

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

// tsc -b skips up-to-date projects without touching their build info, so the build
// touches it afterwards: then "older than its sources" means exactly "not built since".
const stampOf = (dir) => join(dir, 'dist', 'tsconfig.build.tsbuildinfo');

/** Projects whose dist is missing or older than a source file, package.json or tsconfig. */
export function staleProjects() {
  const inputs = ['package.json', 'tsconfig.base.json', 'tsconfig.build.base.json'].map((f) => join(root, f));
  const shared = Math.max(...inputs.map((f) => statSync(f).mtimeMs));
  return buildProjects().filter((dir) => {
    const stamp = stampOf(dir);
    if (!existsSync(stamp)) return true;
    const built = statSync(stamp).mtimeMs;
    const own = [join(dir, 'package.json'), ...walk(join(dir, 'src'))].concat(existsSync(join(dir, 'tsconfig.cjs.json')) ? [join(dir, 'tsconfig.cjs.json')] : []);
    return shared > built || statSync(join(dir, 'tsconfig.build.json')).mtimeMs > built || own.some((f) => statSync(f).mtimeMs > built);
  });
}

/**
 * Builds `projects` (directories; default every one) and what they reference; returns
 * false (after tsc printed why) when it fails.
 */
export function build(projects = buildProjects()) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    console.error('skein: building needs the dev dependencies (typescript): run `npm ci` (without --omit=dev), then `npm run build`');
    return false;
  }
  const configs = projects.flatMap((dir) => ['tsconfig.build.json', 'tsconfig.cjs.json'].map((f) => join(dir, f)).filter((f) => existsSync(f)));
  const ok = spawnSync(process.execPath, [tsc, '-b', ...configs], { cwd: root, stdio: 'inherit' }).status === 0;
  const now = new Date();
  for (const dir of projects) {
    // Every non-TypeScript file under src/ (Lua scripts) is read at run time relative to the module.
    for (const file of walk(join(dir, 'src'))) {
      if (file.endsWith('.ts')) continue;
      const target = join(dir, 'dist', relative(join(dir, 'src'), file));
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(file, target);
    }
    if (existsSync(join(dir, 'dist', 'cjs'))) writeFileSync(join(dir, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
    if (ok) utimesSync(stampOf(dir), now, now);
  }
  return ok;
}

/** Builds when a project's dist is missing or stale, saying so; returns false when the build failed. */
export function buildIfStale() {
  const stale = staleProjects();
  if (stale.length === 0) return true;
  const first = buildProjects().every((dir) => !existsSync(stampOf(dir)));
  console.log(
    first
      ? 'skein: compiling the services to JavaScript (npm run build; the first start takes a little while)…'
      : `skein: sources changed in ${stale.map((d) => relative(root, d)).join(', ')}: rebuilding (npm run build)…`,
  );
  return build();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exit(build() ? 0 : 1);
}
