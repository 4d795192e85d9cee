#!/usr/bin/env node
// `npm start`: a whole local cluster on one machine — its control plane (SKEIN_REDIS_URL;
// else a private redis-server when one is on PATH; else embedded in the node process:
// LMDB, no Redis) and one node process (services/node) hosting the router on
// 127.0.0.1:SKEIN_PORT (default 8080) and three shards, which it calls in-process; with
// `--processes 3` (or SKEIN_PROCESSES=3) three shard processes and a router process
// instead; with `--nodes N` (or SKEIN_NODES=N; `auto` = one per core, at most one per shard)
// N node processes forked with Node's cluster module, all serving the public API on
// SKEIN_PORT (the launcher accepts and hands each connection to a node in turn), each
// hosting a share of the three shards and reaching the others' over the internal API.
// Data in SKEIN_DATA_DIR (default ./.skein), the same layout either way. Once the cluster is up, a process that
// exits is started again after a backoff (0.5 s doubling to 10 s; back to 0.5 s after a
// minute of uptime); before that, one that exits stops everything with its last lines.
// SIGINT/SIGTERM stop everything it started. Each step prints a line as it happens, and a
// step that fails prints one line saying why.
import { spawn, spawnSync } from 'node:child_process';
import cluster from 'node:cluster';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildIfStale } from './build.mjs';

/**
 * Node processes when neither --nodes nor SKEIN_NODES says: measured in README ("One node
 * process or one per core").
 */
const DEFAULT_NODES = '1';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const dataDir = resolve(env.SKEIN_DATA_DIR ?? '.skein');
const port = Number(env.SKEIN_PORT ?? 8080);
const shardCount = 3;
const processesArg = process.argv.indexOf('--processes');
const processes = processesArg >= 0 ? process.argv[processesArg + 1] : env.SKEIN_PROCESSES;
if (processes !== undefined && processes !== '1' && processes !== String(shardCount)) {
  console.error(`skein: --processes (SKEIN_PROCESSES) is 1 (one node process, the default) or ${shardCount} (a process per shard and a router)`);
  process.exit(1);
}
/** One node process hosting the router and every shard (default), or a process each. */
const separate = processes === String(shardCount);
const nodesArg = process.argv.indexOf('--nodes');
const nodesSetting = (nodesArg >= 0 ? process.argv[nodesArg + 1] : env.SKEIN_NODES) ?? DEFAULT_NODES;
if (nodesSetting !== 'auto' && !(/^[1-9]\d*$/.test(nodesSetting) && Number(nodesSetting) <= shardCount)) {
  console.error(`skein: --nodes (SKEIN_NODES) is a number of node processes from 1 to ${shardCount} (one per shard at most) or auto (one per core), got ${JSON.stringify(nodesSetting)}`);
  process.exit(1);
}
if (separate && nodesArg >= 0 && nodesSetting !== '1') {
  console.error(`skein: --nodes and --processes ${shardCount} do not go together: --processes ${shardCount} runs a process per shard and a router, no node`);
  process.exit(1);
}
/** Node processes asked for (before the control plane is known: the embedded one serves one process only). */
let nodeCount = separate ? 0 : nodesSetting === 'auto' ? Math.min(availableParallelism(), shardCount) : Number(nodesSetting);
const RESTART_FIRST_MS = 500;
const RESTART_MAX_MS = 10_000;
/** A process up this long is healthy again: its next restart waits RESTART_FIRST_MS. */
const STABLE_MS = 60_000;
/** Every supervised process: { name, child, timer, delayMs }, in start order. */
const services = [];
let ready = false;
/** Names of the node processes (of several) that logged 'node listening' before the cluster was ready. */
const nodesListening = new Set();
let stopping = false;

function fail(message) {
  console.error(`skein: ${message}`);
  stop(1);
}

/** A failure before anything was started: one line, exit. */
function abort(message) {
  console.error(`skein: ${message}`);
  process.exit(1);
}

/** The one-line reason a child gave for failing: its last fatal or error log line (pino JSON), if any. */
function reasonOf(lines) {
  for (const line of lines.slice().reverse()) {
    try {
      const entry = JSON.parse(line);
      if (entry.level < 50) continue;
      const cause = entry.err?.message ?? entry.problems?.join('; ');
      return cause ? `${entry.msg}: ${cause}` : entry.msg;
    } catch {
      // not a log line (redis-server prints plain text)
      if (/# (Failed|Can't|Could not)|Address already in use|FATAL/i.test(line)) return line.replace(/^\d+:\w \d+ \w+ \d+ [\d:.]+ # /, '');
    }
  }
  return null;
}

/** Step lines from a child's log: the control plane, each shard, the router (pino JSON; redis-server's text). */
function stepOf(name, line) {
  if (name === 'redis') return /Ready to accept connections/.test(line) ? 'redis-server is up' : null;
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return null;
  }
  if (entry.msg === 'shard listening') return `${entry.shard} is up (internal API ${entry.url}, data in ${entry.dataDir})`;
  if (entry.msg === 'node listening' && name.startsWith('node-')) {
    nodesListening.add(name);
    return `${name} is up: its router at ${entry.url}, ${entry.shards?.join(', ') || 'no shard'} in-process`;
  }
  if (entry.msg === 'node listening' || entry.msg === 'router listening') return `router is up at ${entry.url}`;
  return null;
}

function running(c) {
  return c !== null && c.exitCode === null && c.signalCode === null;
}

function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const s of services) clearTimeout(s.timer);
  for (const s of services.slice().reverse()) if (running(s.child)) s.child.kill('SIGTERM');
  const deadline = setTimeout(() => {
    for (const s of services) if (running(s.child)) s.child.kill('SIGKILL');
    process.exit(code);
  }, 12_000);
  deadline.unref();
  Promise.all(services.map((s) => (running(s.child) ? new Promise((r) => s.child.once('exit', r)) : null))).then(() => process.exit(code));
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

function portFree(p) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Starts `command` now and, once the cluster was ready, again whenever it exits. `stdin` is written to its standard input. */
function supervise(name, command, args, extraEnv, stdin) {
  superviseChild(name, () => {
    const child = spawn(command, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (stdin !== undefined) child.stdin.end(stdin);
    return child;
  });
}

/** Forks a cluster worker (cluster.setupPrimary set what it runs) with `extraEnv`, supervised as any process. */
function superviseWorker(name, extraEnv) {
  superviseChild(name, () => cluster.fork(extraEnv).process);
}

/** Runs `launch()` (a child process with piped stdout and stderr) now and, once the cluster was ready, again whenever it exits. */
function superviseChild(name, launch) {
  const service = { name, child: null, timer: null, delayMs: RESTART_FIRST_MS };
  services.push(service);
  const lines = [];
  const start = () => {
    const startedAt = Date.now();
    const child = launch();
    service.child = child;
    const onData = (chunk) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line);
        if (lines.length > 50) lines.shift();
        if (env.SKEIN_VERBOSE) console.log(`[${name}] ${line}`);
        const step = ready ? null : stepOf(name, line);
        if (step) console.log(`skein: ${step}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      if (stopping) return;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!ready) {
        const reason = reasonOf(lines);
        return fail(`${name} could not start${reason ? `: ${reason}` : ` (exited with ${how})`}\n  its last lines (SKEIN_VERBOSE=1 shows all):\n${lines.slice(-10).map((l) => `    ${l}`).join('\n')}`);
      }
      if (Date.now() - startedAt >= STABLE_MS) service.delayMs = RESTART_FIRST_MS;
      const delayMs = service.delayMs;
      service.delayMs = Math.min(delayMs * 2, RESTART_MAX_MS);
      console.log(`skein: ${name} exited (${how}); restarting it in ${delayMs / 1000} s`);
      service.timer = setTimeout(start, delayMs);
    });
  };
  start();
}

/** A secret from `envValue`, or kept in `file` (created with mode 0600 on first start). */
function secret(envValue, file, make) {
  if (envValue) return envValue;
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const value = make();
  writeFileSync(file, value + '\n', { mode: 0o600 });
  return value;
}

async function waitFor(what, check, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (stopping) return;
    try {
      if (await check()) return;
    } catch {}
    if (Date.now() > until) return fail(`${what} did not become ready within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const fromSource = import.meta.resolve('@skein/shard').endsWith('.ts');
if (fromSource) console.log('skein: build: running the TypeScript sources (skein-source condition), nothing to compile');
else {
  const began = Date.now();
  if (!buildIfStale()) abort('the build failed (above); `npm run build` runs it again');
  console.log(`skein: build: the compiled JavaScript is up to date${Date.now() - began > 1000 ? ` (built in ${((Date.now() - began) / 1000).toFixed(1)} s)` : ''}`);
}
const entry = (service) => (fromSource ? ['--conditions=skein-source', '--import', 'tsx', `services/${service}/src/main.ts`] : [`services/${service}/dist/main.js`]);

// The data directory must take files before anything is started in it.
try {
  mkdirSync(dataDir, { recursive: true });
  const probe = join(dataDir, `.write-test-${process.pid}`);
  writeFileSync(probe, '');
  rmSync(probe);
} catch (err) {
  abort(`the data directory ${dataDir} is not writable (${err.code ?? err.message}); set SKEIN_DATA_DIR to a directory you can write to`);
}
// One npm start per data directory: a second one would start its own redis-server on the
// same append-only file and its shards on the same stores. Held by a socket in Linux's
// abstract namespace, which the kernel releases when this process ends (SIGKILL included);
// each shard holds its own directory too (libs/shard/src/data-dir-hold.ts, the same
// technique; not imported: the launcher loads no workspace library, it runs before any is built).
if (process.platform === 'linux') {
  const name = `\0skein-npm-start-${createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 40)}`;
  const holder = createServer();
  const held = await new Promise((resolve) => {
    holder.once('error', (err) => resolve(err.code));
    holder.listen({ path: name, exclusive: true }, () => resolve(true));
  });
  if (held === 'EADDRINUSE') abort(`another npm start is running on the data directory ${dataDir}; stop it, or set SKEIN_DATA_DIR (and SKEIN_PORT) for a second cluster`);
  if (held !== true) abort(`could not hold the data directory ${dataDir} (${held})`);
  holder.unref();
}
const adminKey = secret(env.SKEIN_ADMIN_KEY, join(dataDir, 'admin-key'), () => `sk_admin_${randomBytes(24).toString('base64url')}`);
if (adminKey.length < 32) abort('SKEIN_ADMIN_KEY must be at least 32 characters');
// Shared by the router and the shards: a shard serves its internal API to holders only.
const clusterSecret = secret(env.SKEIN_CLUSTER_SECRET, join(dataDir, 'cluster-secret'), () => randomBytes(32).toString('base64url'));
if (clusterSecret.length < 32) abort('SKEIN_CLUSTER_SECRET must be at least 32 characters');

for (let i = 0; i <= shardCount; i++) {
  const what = i === 0 ? 'the router' : `shard-${i - 1}'s internal API`;
  if (!(await portFree(port + i))) abort(`port ${port + i} (${what}) is in use; set SKEIN_PORT to another base port (npm start uses SKEIN_PORT to SKEIN_PORT+${shardCount})`);
}

/** Null when a TCP connection to `url`'s host and port opens within 2 s; otherwise why not (ECONNREFUSED, ETIMEDOUT, ...). */
function unreachable(url) {
  let host;
  let redisPort;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    redisPort = Number(u.port || 6379);
  } catch {
    return Promise.resolve('not a redis:// URL');
  }
  return new Promise((resolve) => {
    const socket = connect({ host, port: redisPort, timeout: 2000 });
    socket.once('connect', () => (socket.destroy(), resolve(null)));
    socket.once('timeout', () => (socket.destroy(), resolve('ETIMEDOUT')));
    socket.once('error', (err) => resolve(err.code ?? err.message));
  });
}
const withoutPassword = (url) => url.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1***@');
const hasRedisServer = () => {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
};

let redisUrl = env.SKEIN_REDIS_URL?.trim() || undefined;
/** No Redis at all: the node process runs the control plane itself (SKEIN_REDIS_URL unset for it). */
let embedded = false;
if (redisUrl) {
  const why = await unreachable(redisUrl);
  if (why) abort(`Redis at ${withoutPassword(redisUrl)} (SKEIN_REDIS_URL) cannot be reached (${why}); start it, fix SKEIN_REDIS_URL, or unset it to run without one`);
  console.log(`skein: control plane: Redis at ${withoutPassword(redisUrl)} (SKEIN_REDIS_URL)`);
} else if (hasRedisServer()) {
  const redisPort = port + 100;
  if (!(await portFree(redisPort))) abort(`port ${redisPort} (private redis-server) is in use; set SKEIN_PORT or SKEIN_REDIS_URL`);
  const redisDir = join(dataDir, 'redis');
  mkdirSync(redisDir, { recursive: true });
  // The private Redis requires a password too (other local users can reach 127.0.0.1); it
  // goes in on standard input ("-"), not on the command line where `ps` shows it.
  const password = secret(undefined, join(dataDir, 'redis-password'), () => randomBytes(24).toString('base64url'));
  const redisArgs = ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '-'];
  console.log(`skein: control plane: starting a private redis-server on 127.0.0.1:${redisPort} (data in ${redisDir})`);
  supervise('redis', 'redis-server', redisArgs, {}, `requirepass ${password}\n`);
  redisUrl = `redis://:${password}@127.0.0.1:${redisPort}`;
} else {
  if (separate) abort(`--processes ${shardCount} needs Redis (SKEIN_REDIS_URL, or redis-server on PATH): separate processes cannot share the embedded control plane`);
  embedded = true;
  // The embedded control plane lives in one process: several nodes could share neither the sequencer nor the topology.
  const oneNode = nodeCount > 1 ? `; one node process, not ${nodeCount} (--nodes needs Redis: the embedded control plane serves one process only)` : '';
  if (nodeCount > 1) nodeCount = 1;
  console.log(`skein: control plane: embedded, no Redis (no SKEIN_REDIS_URL, no redis-server on PATH): sequencer, tenants, keys and placement in LMDB (${join(dataDir, 'control')}), maintenance on in-process timers${oneNode}`);
}

const shards = [];
const shardIds = Array.from({ length: shardCount }, (_, i) => `shard-${i}`);
if (nodeCount === 1) {
  console.log(`skein: starting one node process: the router on port ${port}, ${shardIds.join(', ')} (internal API on ports ${port + 1}-${port + shardCount})`);
  supervise('node', process.execPath, entry('node'), {
    SKEIN_ROLE: 'node',
    SKEIN_ROUTER_PORT: String(port),
    SKEIN_CLUSTER_SECRET: clusterSecret,
    // Embedded: the node's own control plane; an inherited empty value means the same.
    SKEIN_REDIS_URL: embedded ? '' : redisUrl,
    SKEIN_ADMIN_KEY: adminKey,
    SKEIN_NODE_SHARDS: shardIds.join(','),
    SKEIN_NODE_DATA_DIR: dataDir,
    SKEIN_NODE_SHARD_PORT: String(port + 1),
  });
} else if (nodeCount > 1) {
  // Each node hosts a contiguous block of shards (3 over 2 nodes: shard-0 | shard-1, shard-2),
  // each shard on the port it has in every topology (SKEIN_PORT+1+k), and lists every shard
  // in SKEIN_ROUTER_SHARDS: its own are called in-process, the others over the internal API.
  // Every node's router listens on SKEIN_PORT through the cluster module: the launcher holds
  // the socket and hands accepted connections to the nodes round-robin (SCHED_RR; Node 20's
  // net has no reusePort). A keep-alive connection stays with its node.
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const args = entry('node');
  cluster.setupPrimary({ exec: join(root, args.at(-1)), execArgv: args.slice(0, -1), args: [], cwd: root, silent: true });
  const everyShard = shardIds.map((id, k) => `${id}=http://127.0.0.1:${port + 1 + k}`).join(',');
  const plan = Array.from({ length: nodeCount }, (_, i) => {
    const first = Math.floor((i * shardCount) / nodeCount);
    return { name: `node-${i}`, first, ids: shardIds.slice(first, Math.floor(((i + 1) * shardCount) / nodeCount)) };
  });
  console.log(`skein: starting ${nodeCount} node processes sharing port ${port} (Node's cluster module): ${plan.map((n) => `${n.name} hosting ${n.ids.join(', ')}`).join('; ')} (internal API on ports ${port + 1}-${port + shardCount})`);
  for (const [i, n] of plan.entries()) {
    superviseWorker(n.name, {
      SKEIN_ROLE: 'node',
      SKEIN_NODE_ID: String(i),
      SKEIN_ROUTER_PORT: String(port),
      SKEIN_CLUSTER_SECRET: clusterSecret,
      SKEIN_REDIS_URL: redisUrl,
      SKEIN_ADMIN_KEY: adminKey,
      SKEIN_ROUTER_SHARDS: everyShard,
      SKEIN_NODE_SHARDS: n.ids.join(','),
      SKEIN_NODE_DATA_DIR: dataDir,
      SKEIN_NODE_SHARD_PORT: String(port + 1 + n.first),
    });
  }
}
for (let i = 0; separate && i < shardCount; i++) {
  const id = `shard-${i}`;
  const shardPort = port + 1 + i;
  console.log(`skein: starting ${id} (internal API on port ${shardPort}, data in ${join(dataDir, id)})`);
  supervise(id, process.execPath, entry('shard'), {
    SKEIN_SHARD_ID: id,
    SKEIN_CLUSTER_SECRET: clusterSecret,
    SKEIN_SHARD_PORT: String(shardPort),
    SKEIN_SHARD_DATA_DIR: join(dataDir, id),
    SKEIN_REDIS_URL: redisUrl,
  });
  shards.push(`${id}=http://127.0.0.1:${shardPort}`);
}
if (separate) console.log(`skein: starting the router on port ${port}`);
if (separate) supervise('router', process.execPath, entry('router'), {
  SKEIN_ROUTER_PORT: String(port),
  SKEIN_CLUSTER_SECRET: clusterSecret,
  SKEIN_REDIS_URL: redisUrl,
  SKEIN_ADMIN_KEY: adminKey,
  SKEIN_ROUTER_SHARDS: shards.join(','),
});

const url = `http://127.0.0.1:${port}`;
// With several nodes, each must be up (the public port answers as soon as one is).
await waitFor('the cluster', async () => (nodeCount <= 1 || nodesListening.size === nodeCount) && (await fetch(`${url}/readyz`)).ok, 60_000);
if (!stopping) {
  ready = true;
  const controlPlane = embedded ? 'embedded control plane, no Redis' : 'control plane in Redis';
  console.log(`Skein is running at ${url}  (${separate ? `${shardCount} shard processes and a router` : nodeCount > 1 ? `${nodeCount} node processes sharing the port, hosting ${shardCount} shards between them` : `one node process hosting ${shardCount} shards`}; ${controlPlane}; data: ${dataDir})
admin key: ${adminKey}

Try it:
  curl -s -X POST ${url}/v1/admin/tenants -H "Authorization: Bearer ${adminKey}" -H 'content-type: application/json' -d '{"tenant":"demo"}'
  # then, with the apiKey it prints:
  curl -s -X POST ${url}/v1/tenants/demo/streams/order-1/events -H "Authorization: Bearer <apiKey>" -H 'content-type: application/json' -d '{"events":[{"type":"OrderPlaced","data":{"total":42}}]}'

A process that exits is started again. Ctrl-C stops the cluster.`);
}
