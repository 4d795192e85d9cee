// `npm start` as a new user runs it, in an empty directory, with each control plane it can
// pick on its own: (a) a private redis-server from PATH, (b) no `redis-*` program on PATH at
// all (the embedded control plane). Through the `skein` CLI: a tenant, appends, reads and a
// live tail; then SIGINT, a start on the same data, and the same events at the same
// positions. Also: the one-line reasons a start fails (port in use, data directory not
// writable, Redis refusing connections).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { npmStart, pathWithoutRedis, stopNpmStart, type NpmStartRun } from './npm-start.ts';
import { freePort, freeStartPort, isPortFree, tempDir, type TempDir } from '@skein/testing';

const START = fileURLToPath(new URL('../../scripts/start.mjs', import.meta.url));
const CLI = fileURLToPath(new URL('../../libs/client/bin/skein.mjs', import.meta.url));



/** One `skein` CLI command; its stdout. */
function skein(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, '--json', ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`skein ${args.join(' ')} failed: ${stderr}`));
      else resolve(stdout);
    });
  });
}

const lines = (text: string) => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

/** `skein tail` running: the events it printed so far, and how to stop it (SIGINT, as Ctrl-C). */
function tail(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, '--json', 'tail', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    events: () => (out.endsWith('\n') ? lines(out) : lines(out.slice(0, out.lastIndexOf('\n') + 1))),
    async stop() {
      child.kill('SIGINT');
      return { code: await exited, stderr: err };
    },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface RoundTrip {
  printed: string;
  apiKey: string;
  /** `skein read demo order-1` and `skein log demo` at the end. */
  stream: Record<string, unknown>[];
  log: Record<string, unknown>[];
}

/** Starts, creates a tenant, appends, reads and tails with the CLI, stops, starts again and reads the same. */
async function roundTrip(cwd: string, env: NodeJS.ProcessEnv, controlLine: RegExp): Promise<RoundTrip> {
  const port = await freeStartPort();
  let run: NpmStartRun | undefined = await npmStart(cwd, port, env);
  try {
    const printed = run.output();
    assert.match(printed, controlLine);
    // A line per step, in the order they happen.
    const steps = ['skein: build: ', 'skein: control plane: ', 'skein: starting one node process', 'skein: shard-0 is up', 'skein: shard-1 is up', 'skein: shard-2 is up', 'skein: router is up at ', 'Skein is running at '];
    const at = steps.map((s) => printed.indexOf(s));
    assert.ok(at.every((i) => i >= 0), `every step is printed:\n${printed}`);
    assert.deepEqual([...at].sort((a, b) => a - b), at, `steps in order:\n${printed}`);
    assert.match(printed, /curl -s -X POST http:\/\/127\.0\.0\.1:\d+\/v1\/admin\/tenants -H "Authorization: Bearer sk_admin_/);

    const cli = { ...env, SKEIN_URL: run.url, SKEIN_API_KEY: run.adminKey };
    const created = JSON.parse(await skein(['tenant', 'create', 'demo', '--partitions', '3'], cli)) as { apiKey: string };
    const as = { ...cli, SKEIN_API_KEY: created.apiKey };
    const live = tail(['demo', 'order-1', '--from', '1'], as);
    const first = JSON.parse(await skein(['append', 'demo', 'order-1', '--expected-version', '0', '[{"type":"Placed","data":{"n":1}},{"type":"Paid","data":{"n":2}}]'], as));
    assert.equal(first.lastVersion, 2);
    await skein(['append', 'demo', 'order-2', '{"type":"Placed","data":{"n":3}}'], as);
    const second = JSON.parse(await skein(['append', 'demo', 'order-1', '--expected-version', '2', '{"type":"Shipped","data":{"n":4}}'], as));
    assert.equal(second.firstVersion, 3);

    const read = lines(await skein(['read', 'demo', 'order-1'], as));
    assert.deepEqual(read.map((e) => [e.type, e.version]), [['Placed', 1], ['Paid', 2], ['Shipped', 3]]);
    const log = lines(await skein(['log', 'demo'], as));
    assert.equal(log.length, 4);
    const positions = log.map((e) => BigInt(e.position as string));
    assert.deepEqual([...positions].sort((a, b) => (a < b ? -1 : 1)), positions, 'the tenant log is in position order');

    await until('the tail prints the three events of order-1', () => live.events().length >= 3);
    const tailed = await live.stop();
    assert.deepEqual(live.events().map((e) => [e.type, e.position]), read.map((e) => [e.type, e.position]), 'the tail saw the same events at the same positions');
    assert.ok(tailed.code === 0 || tailed.code === 130, `tail ends cleanly on Ctrl-C (code ${tailed.code}): ${tailed.stderr}`);

    await stopNpmStart(run);
    run = undefined;
    for (const p of [port, port + 1, port + 2, port + 3]) assert.ok(await isPortFree(p), `port ${p} was released on SIGINT`);

    run = await npmStart(cwd, port, env);
    const again = { ...env, SKEIN_URL: run.url, SKEIN_API_KEY: created.apiKey };
    assert.deepEqual(lines(await skein(['read', 'demo', 'order-1'], again)), read, 'the same events, versions and positions after a restart');
    assert.deepEqual(lines(await skein(['log', 'demo'], again)), log);
    // Appends continue above every position handed out before.
    const after = JSON.parse(await skein(['append', 'demo', 'order-1', '--expected-version', '3', '{"type":"Closed","data":{}}'], again));
    assert.ok(BigInt(after.firstPosition) > positions.reduce((a, b) => (a > b ? a : b)), 'positions keep growing across the restart');
    return { printed, apiKey: created.apiKey, stream: lines(await skein(['read', 'demo', 'order-1'], again)), log: lines(await skein(['log', 'demo'], again)) };
  } finally {
    if (run) await stopNpmStart(run).catch(() => undefined);
  }
}

test('npm start with a private redis-server from PATH: a tenant, appends, reads and a tail with the CLI; the same events at the same positions after SIGINT and a restart', { timeout: 300_000 }, async () => {
  assert.equal(spawnSync('redis-server', ['--version']).status, 0, 'this case needs redis-server on PATH');
  const dir = await tempDir('skein-start-redis-');
  try {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.SKEIN_REDIS_URL;
    delete env.SKEIN_DATA_DIR;
    await roundTrip(dir.path, env, /skein: control plane: starting a private redis-server on 127\.0\.0\.1:\d+/);
    assert.ok(existsSync(join(dir.path, '.skein', 'redis')), 'the private Redis keeps its data in ./.skein/redis');
    assert.ok(!existsSync(join(dir.path, '.skein', 'control')), 'no embedded control store');
  } finally {
    await dir.remove();
  }
});

test('npm start with no redis-* program on PATH runs on the embedded control plane and says so in one line; the same round trip and restart hold; the data then starts with a private redis-server, everything there', { timeout: 300_000 }, async () => {
  const dir = await tempDir('skein-start-embedded-');
  try {
    const bin = pathWithoutRedis(join(dir.path, 'bin'));
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin };
    delete env.SKEIN_REDIS_URL;
    delete env.SKEIN_DATA_DIR;
    assert.ok(spawnSync('redis-server', ['--version'], { env }).error, 'redis-server is not reachable on this PATH');
    assert.ok(!readdirSync(bin).some((n) => n.startsWith('redis')));
    const work = join(dir.path, 'work');
    mkdirSync(work);
    const { printed, apiKey, stream, log } = await roundTrip(work, env, /skein: control plane: embedded, no Redis \(no SKEIN_REDIS_URL, no redis-server on PATH\)/);
    assert.equal(printed.match(/control plane: /g)?.length, 1, 'one line says which control plane');
    assert.ok(existsSync(join(work, '.skein', 'control')), 'the embedded control store is in ./.skein/control');
    assert.ok(!existsSync(join(work, '.skein', 'redis')), 'no Redis data');
    assert.doesNotMatch(printed, /redis-server is up/);

    // The same data directory with redis-server back on PATH: the private Redis's control
    // plane is rebuilt from the shards' records; the tenant, its key, the events and their
    // positions are all there, and new positions continue above them.
    const withRedis: NodeJS.ProcessEnv = { ...process.env };
    delete withRedis.SKEIN_REDIS_URL;
    delete withRedis.SKEIN_DATA_DIR;
    const port = await freeStartPort();
    const run = await npmStart(work, port, withRedis);
    try {
      assert.match(run.output(), /skein: control plane: starting a private redis-server/);
      const as = { ...withRedis, SKEIN_URL: run.url, SKEIN_API_KEY: apiKey };
      assert.deepEqual(lines(await skein(['read', 'demo', 'order-1'], as)), stream);
      assert.deepEqual(lines(await skein(['log', 'demo'], as)), log);
      const next = JSON.parse(await skein(['append', 'demo', 'order-1', '--expected-version', String(stream.length), '{"type":"Reopened","data":{}}'], as));
      assert.ok(BigInt(next.firstPosition) > BigInt(log.at(-1)!.position as string), 'positions continue above the embedded ones');
    } finally {
      await stopNpmStart(run);
    }
  } finally {
    await dir.remove();
  }
});

/** `npm start` that must fail: its exit code and everything it printed. */
function failing(cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [START], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test('a start that cannot work fails at once with one line saying why: port in use, data directory not writable, Redis refusing connections', { timeout: 120_000 }, async () => {
  const dir: TempDir = await tempDir('skein-start-fail-');
  let occupied: Server | undefined;
  try {
    const base: NodeJS.ProcessEnv = { ...process.env };
    delete base.SKEIN_REDIS_URL;
    const port = await freeStartPort();
    occupied = createServer();
    await new Promise<void>((r) => occupied!.listen(port + 2, '127.0.0.1', () => r()));
    const inUse = await failing(dir.path, { ...base, SKEIN_PORT: String(port), SKEIN_DATA_DIR: join(dir.path, 'a') });
    assert.equal(inUse.code, 1);
    assert.match(inUse.output, new RegExp(`^skein: port ${port + 2} \\(shard-1's internal API\\) is in use; set SKEIN_PORT to another base port`, 'm'));
    assert.doesNotMatch(inUse.output, /starting|\n\s+at /, 'nothing was started; no stack trace');

    const file = join(dir.path, 'a-file');
    writeFileSync(file, '');
    const notWritable = await failing(dir.path, { ...base, SKEIN_PORT: String(await freeStartPort()), SKEIN_DATA_DIR: join(file, 'data') });
    assert.equal(notWritable.code, 1);
    assert.match(notWritable.output, /^skein: the data directory .*a-file\/data is not writable \(ENOTDIR\); set SKEIN_DATA_DIR to a directory you can write to$/m);

    const closed = await freePort();
    const refused = await failing(dir.path, { ...base, SKEIN_PORT: String(await freeStartPort()), SKEIN_DATA_DIR: join(dir.path, 'b'), SKEIN_REDIS_URL: `redis://:secret@127.0.0.1:${closed}` });
    assert.equal(refused.code, 1);
    assert.match(refused.output, new RegExp(`^skein: Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${closed} \\(SKEIN_REDIS_URL\\) cannot be reached \\(ECONNREFUSED\\)`, 'm'));
    assert.doesNotMatch(refused.output, /secret/, 'the password is never printed');
    assert.doesNotMatch(refused.output, /starting/);
  } finally {
    occupied?.close();
    await dir.remove();
  }
});

test('--nodes (SKEIN_NODES): a value out of range fails in one line; with the embedded control plane the cluster stays at one node and the control plane line says so', { timeout: 120_000 }, async () => {
  const dir = await tempDir('skein-start-nodes-');
  try {
    const base: NodeJS.ProcessEnv = { ...process.env };
    delete base.SKEIN_REDIS_URL;
    for (const value of ['0', '4', 'many']) {
      const bad = await failing(dir.path, { ...base, SKEIN_NODES: value, SKEIN_PORT: String(await freeStartPort()), SKEIN_DATA_DIR: join(dir.path, 'bad') });
      assert.equal(bad.code, 1);
      assert.match(bad.output, new RegExp(`^skein: --nodes \\(SKEIN_NODES\\) is a number of node processes from 1 to 3 \\(one per shard at most\\) or auto \\(one per core\\), got "${value}"$`, 'm'));
      assert.doesNotMatch(bad.output, /starting/);
    }

    const bin = pathWithoutRedis(join(dir.path, 'bin'));
    const env: NodeJS.ProcessEnv = { ...base, PATH: bin, SKEIN_NODES: '2' };
    delete env.SKEIN_DATA_DIR;
    const run = await npmStart(dir.path, await freeStartPort(), env);
    try {
      assert.match(run.output(), /^skein: control plane: embedded, no Redis .*; one node process, not 2 \(--nodes needs Redis: the embedded control plane serves one process only\)$/m);
      assert.match(run.output(), /^skein: starting one node process: /m);
      assert.match(run.output(), /Skein is running at .*\(one node process hosting 3 shards; embedded control plane, no Redis;/);
    } finally {
      await stopNpmStart(run);
    }
  } finally {
    await dir.remove();
  }
});
