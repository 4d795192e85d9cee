// @skein/client as an application outside this repo gets it: built, packed (with
// @skein/protocol), installed from the tarballs into a project in the OS temp dir (no
// workspace links, no tsx), then used from an ES module, from CommonJS and from the
// README's example (as .mjs, and as .mts and .cts compiled by tsc) against a real cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createClient } from '@skein/client';
import { startCluster, tempDir, type Cluster, type TempDir } from '@skein/testing';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

// The consumer processes run as an application would: without the repo's `skein-source`
// condition (which the test runner puts in NODE_OPTIONS) and outside the repo.
const plainEnv: NodeJS.ProcessEnv = { ...process.env };
delete plainEnv.NODE_OPTIONS;
// Nx forces colours for its children; console.log of a bigint would then carry ANSI codes.
delete plainEnv.FORCE_COLOR;
plainEnv.NO_COLOR = '1';

let cluster: Cluster;
let project: TempDir;
let apiKey: string;

before(async () => {
  project = await tempDir('skein-consumer-');
  assert.ok(!project.path.startsWith(ROOT), 'the consumer project is outside the repo');
  const packing = run(process.execPath, [join(ROOT, 'scripts/pack-client.mjs'), join(project.path, 'packages')], { env: plainEnv, cwd: ROOT });
  cluster = await startCluster({ shards: 2 });
  const tarballs = (await packing).stdout.trim().split('\n');
  assert.deepEqual(tarballs.map((t) => t.replace(/.*\//, '')), ['skein-protocol-0.1.0.tgz', 'skein-client-0.1.0.tgz']);
  writeFileSync(join(project.path, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  // --prefer-offline: undici from npm's cache when `npm ci` put it there, else the registry.
  await run('npm', ['install', ...tarballs, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: project.path, env: plainEnv });
  const created = await createClient({ url: cluster.url, apiKey: cluster.adminKey }).admin.createTenant('acme', { partitions: 2 });
  apiKey = created.apiKey;
});
after(async () => {
  await cluster?.stop();
  await project?.remove();
});

function node(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, args, { cwd: project.path, env: { ...plainEnv, SKEIN_URL: cluster.url, SKEIN_API_KEY: apiKey }, timeout: 30_000 });
}

test('the packages are installed as copies from the tarballs, with no src/ and no skein-source condition', () => {
  for (const name of ['client', 'protocol']) {
    const dir = join(project.path, 'node_modules/@skein', name);
    assert.ok(lstatSync(dir).isDirectory() && !lstatSync(dir).isSymbolicLink(), `${dir} is a directory, not a link into the repo`);
    const manifest = readFileSync(join(dir, 'package.json'), 'utf8');
    assert.doesNotMatch(manifest, /skein-source|"private"/);
    assert.throws(() => lstatSync(join(dir, 'src')), /ENOENT/);
  }
  const client = JSON.parse(readFileSync(join(project.path, 'node_modules/@skein/client/package.json'), 'utf8'));
  assert.deepEqual(Object.keys(client.dependencies).sort(), ['@skein/protocol', 'undici']);
  assert.equal(client.dependencies['@skein/protocol'], '0.1.0');
});

// One program body, run as an ES module and as CommonJS: appends with expected versions,
// meets a conflict, reads the stream back.
const BODY = `
async function main({ createClient, isSkeinError }, stream) {
  const skein = createClient({ url: process.env.SKEIN_URL, apiKey: process.env.SKEIN_API_KEY });
  const first = await skein.append('acme', stream, { events: [{ type: 'Opened', data: { stream } }], expectedVersion: 'no_stream' });
  const second = await skein.append('acme', stream, { events: [{ type: 'Noted', data: 1 }, { type: 'Noted', data: 2 }], expectedVersion: 1 });
  let conflict = null;
  try {
    await skein.append('acme', stream, { events: [{ type: 'Late', data: null }], expectedVersion: 1 });
  } catch (err) {
    if (!isSkeinError(err, 'WRONG_EXPECTED_VERSION')) throw err;
    conflict = err.details;
  }
  const events = [];
  for await (const e of skein.streamEvents('acme', stream)) events.push({ version: e.version, type: e.type, data: e.data, position: String(e.position) });
  return {
    positionType: typeof second.lastPosition,
    first: [first.firstVersion, first.lastVersion],
    second: [second.firstVersion, second.lastVersion, String(second.lastPosition)],
    conflict,
    events,
  };
}
const print = (loadedFrom, r) => console.log(JSON.stringify({ loadedFrom, ...r }));
`;

for (const kind of ['esm', 'cjs'] as const) {
  test(`${kind === 'esm' ? 'an ES module' : 'a CommonJS'} program appends with an expected version and reads the stream back`, async () => {
    const file = kind === 'esm' ? 'program.mjs' : 'program.cjs';
    const source =
      kind === 'esm'
        ? `import * as skein from '@skein/client';\n${BODY}\nprint(import.meta.resolve('@skein/client'), await main(skein, process.argv[2]));\n`
        : `const skein = require('@skein/client');\n${BODY}\nmain(skein, process.argv[2]).then((r) => print(require.resolve('@skein/client'), r), (err) => { console.error(err); process.exitCode = 1; });\n`;
    writeFileSync(join(project.path, file), source);
    const stream = `${kind}-1`;
    const out = JSON.parse((await node([file, stream])).stdout);
    assert.match(out.loadedFrom, kind === 'esm' ? /node_modules\/@skein\/client\/dist\/index\.js$/ : /node_modules\/@skein\/client\/dist\/cjs\/index\.js$/);
    assert.equal(out.positionType, 'bigint');
    assert.deepEqual(out.first, [1, 1]);
    assert.deepEqual(out.second.slice(0, 2), [2, 3]);
    assert.deepEqual(out.conflict, { ...out.conflict, expected: 1, actual: 3 });
    assert.deepEqual(out.events.map((e: { version: number; type: string; data: unknown }) => [e.version, e.type, e.data]), [[1, 'Opened', { stream }], [2, 'Noted', 1], [3, 'Noted', 2]]);
    assert.equal(out.events[2].position, out.second[2]);
    // What the program read is what the cluster stored.
    const stored = await createClient({ url: cluster.url, apiKey }).readStream('acme', stream);
    assert.deepEqual(stored.events.map((e) => String(e.position)), out.events.map((e: { position: string }) => e.position));
  });
}

test("the README's example runs as written: as .mjs, and as .mts and .cts compiled by tsc", async () => {
  const readme = readFileSync(join(ROOT, 'libs/client/README.md'), 'utf8');
  const example = /```ts\n([\s\S]*?)```/.exec(readme)![1]!;
  for (const ext of ['mjs', 'mts', 'cts']) writeFileSync(join(project.path, `readme.${ext}`), example);
  // Types from the tarballs' `import` and `require` entries; node's types from the repo's install.
  await run(process.execPath, [TSC, '--strict', '--module', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--typeRoots', join(ROOT, 'node_modules/@types'), '--types', 'node', '--outDir', 'out', 'readme.mts', 'readme.cts'], { cwd: project.path, env: plainEnv });
  for (const file of ['readme.mjs', 'out/readme.mjs', 'out/readme.cjs']) {
    const { stdout } = await node([file]);
    assert.match(stdout, /^appended at position \d+n\n/, file);
    assert.match(stdout, /^stream is at 1$/m, file);
    assert.match(stdout, /^1 OrderPlaced \{ total: 42 \}$/m, file);
    assert.match(stdout, /^\d+n order-123 OrderPlaced$/m, file);
    assert.match(stdout, /^snapshot null$/m, file);
  }
  assert.match(readFileSync(join(project.path, 'out/readme.cjs'), 'utf8'), /require\("@skein\/client"\)/);
});

test('the installed `skein` command runs its compiled code (no tsx there), and so does the repo bin without the source condition', async () => {
  const installed = join(project.path, 'node_modules/@skein/client/bin/skein.mjs');
  const repoBin = join(ROOT, 'libs/client/bin/skein.mjs');
  assert.throws(() => lstatSync(join(project.path, 'node_modules/tsx')), /ENOENT/);
  for (const bin of [installed, repoBin]) assert.equal((await node([bin, '--version'])).stdout, '0.1.0\n');
  const read = await node([installed, 'read', 'acme', 'esm-1', '--json']);
  assert.deepEqual(read.stdout.trim().split('\n').map((l) => JSON.parse(l).version), [1, 2, 3]);
  // A figure for the report, not a bound: startup of the compiled CLI on this machine.
  for (const [name, bin] of [['installed', installed], ['repo', repoBin]] as const) {
    const ms: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await node([bin, '--version']);
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    console.log(`skein --version (${name}, compiled): median ${ms[2]!.toFixed(0)} ms, min ${ms[0]!.toFixed(0)} ms over 5 runs`);
  }
});
