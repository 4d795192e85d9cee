#!/usr/bin/env node
// `npm run pack:client [-- <dir>]`: builds @skein/client and @skein/protocol (ESM, CommonJS,
// declarations) and packs each into a tarball in <dir> (default ./tmp/packages), ready for
// `npm install <protocol.tgz> <client.tgz>` in any project. The client needs protocol at run
// time (SkeinError, the error registry, validation), so both are packed, at the same version.
//
// Each package is packed from a staging copy: dist (without source maps: they point into
// src/), bin and README, with a package.json
// that drops the repo-only `skein-source` condition (it points at src/, which is not shipped)
// and pins the @skein/* dependencies to the versions packed alongside.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build, root } from './build.mjs';

const PACKAGES = ['libs/protocol', 'libs/client'];

/** `exports`/`imports` without the `skein-source` condition, at every depth. */
function withoutSource(map) {
  if (typeof map !== 'object' || map === null) return map;
  return Object.fromEntries(Object.entries(map).filter(([k]) => k !== 'skein-source').map(([k, v]) => [k, withoutSource(v)]));
}

/** Builds and packs; returns the absolute paths of the tarballs, protocol first. */
export function packClient(outDir) {
  // A clean build: a tarball holds no output of a source file deleted since the last build.
  for (const p of PACKAGES) rmSync(join(root, p, 'dist'), { recursive: true, force: true });
  if (!build(PACKAGES.map((p) => join(root, p)))) throw new Error('the build of @skein/protocol and @skein/client failed (above)');
  mkdirSync(outDir, { recursive: true });
  const manifests = PACKAGES.map((p) => JSON.parse(readFileSync(join(root, p, 'package.json'), 'utf8')));
  const versions = Object.fromEntries(manifests.map((m) => [m.name, m.version]));
  const staging = mkdtempSync(join(tmpdir(), 'skein-pack-'));
  try {
    return PACKAGES.map((p, i) => {
      const manifest = manifests[i];
      const dir = join(staging, manifest.name.replace('/', '+'));
      mkdirSync(dir);
      cpSync(join(root, p, 'dist'), join(dir, 'dist'), { recursive: true, filter: (src) => !/\.(tsbuildinfo|map)$/.test(src) });
      for (const extra of ['bin', 'README.md']) if (existsSync(join(root, p, extra))) cpSync(join(root, p, extra), join(dir, extra), { recursive: true });
      const published = { ...manifest, exports: withoutSource(manifest.exports) };
      if (manifest.imports) published.imports = withoutSource(manifest.imports);
      delete published.devDependencies;
      for (const dep of Object.keys(published.dependencies ?? {})) if (versions[dep]) published.dependencies[dep] = versions[dep];
      writeFileSync(join(dir, 'package.json'), JSON.stringify(published, null, 2) + '\n');
      const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', outDir], { cwd: dir, encoding: 'utf8' });
      if (packed.status !== 0) throw new Error(`npm pack of ${manifest.name} failed:\n${packed.stderr}`);
      return join(outDir, JSON.parse(packed.stdout)[0].filename);
    });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  for (const file of packClient(resolve(process.argv[2] ?? join(root, 'tmp', 'packages')))) console.log(file);
}
