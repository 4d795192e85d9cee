#!/usr/bin/env node
// `npm start`: a whole local cluster on one machine — a private redis-server (or
// SKEIN_REDIS_URL), three shards and a router on 127.0.0.1:SKEIN_PORT (default 8080),
// data in SKEIN_DATA_DIR (default ./.skein). SIGINT/SIGTERM stop everything it started.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const dataDir = resolve(env.SKEIN_DATA_DIR ?? '.skein');
const port = Number(env.SKEIN_PORT ?? 8080);
const shardCount = 3;
const children = [];
let stopping = false;

function fail(message) {
  console.error(`skein: ${message}`);
  stop(1);
}

function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const c of children.slice().reverse()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  const deadline = setTimeout(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    process.exit(code);
  }, 12_000);
  deadline.unref();
  Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
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

function run(name, command, args, extraEnv, logFile) {
  const child = spawn(command, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines = [];
  const onData = (chunk) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      lines.push(line);
      if (lines.length > 50) lines.shift();
      if (env.SKEIN_VERBOSE) console.log(`[${name}] ${line}`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('exit', (code, signal) => {
    if (!stopping) fail(`${name} exited (${code ?? signal}); its last lines:\n${lines.slice(-10).join('\n')}`);
  });
  return { child, lines, logFile };
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

mkdirSync(dataDir, { recursive: true });
const keyFile = join(dataDir, 'admin-key');
let adminKey = env.SKEIN_ADMIN_KEY;
if (!adminKey) {
  if (existsSync(keyFile)) adminKey = readFileSync(keyFile, 'utf8').trim();
  else {
    adminKey = `sk_admin_${randomBytes(24).toString('base64url')}`;
    writeFileSync(keyFile, adminKey + '\n', { mode: 0o600 });
  }
}
if (adminKey.length < 32) fail('SKEIN_ADMIN_KEY must be at least 32 characters');

for (let i = 0; i <= shardCount; i++) {
  if (!(await portFree(port + i))) fail(`port ${port + i} is in use; set SKEIN_PORT to another base port`);
}

let redisUrl = env.SKEIN_REDIS_URL;
if (!redisUrl) {
  const redisPort = port + 100;
  if (!(await portFree(redisPort))) fail(`port ${redisPort} (private redis-server) is in use; set SKEIN_PORT or SKEIN_REDIS_URL`);
  const redisDir = join(dataDir, 'redis');
  mkdirSync(redisDir, { recursive: true });
  run('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no']);
  redisUrl = `redis://127.0.0.1:${redisPort}`;
}

const tsx = ['--import', 'tsx'];
const shards = [];
for (let i = 0; i < shardCount; i++) {
  const id = `shard-${i}`;
  const shardPort = port + 1 + i;
  run(id, process.execPath, [...tsx, 'services/shard/src/main.ts'], {
    SKEIN_SHARD_ID: id,
    SKEIN_SHARD_PORT: String(shardPort),
    SKEIN_SHARD_DATA_DIR: join(dataDir, id),
    SKEIN_REDIS_URL: redisUrl,
  });
  shards.push(`${id}=http://127.0.0.1:${shardPort}`);
}
run('router', process.execPath, [...tsx, 'services/router/src/main.ts'], {
  SKEIN_ROUTER_PORT: String(port),
  SKEIN_REDIS_URL: redisUrl,
  SKEIN_ADMIN_KEY: adminKey,
  SKEIN_ROUTER_SHARDS: shards.join(','),
});

const url = `http://127.0.0.1:${port}`;
await waitFor('the cluster', async () => (await fetch(`${url}/readyz`)).ok, 60_000);
if (!stopping) {
  console.log(`Skein is running at ${url}  (data: ${dataDir})
admin key: ${adminKey}

Try it:
  curl -s -X POST ${url}/v1/admin/tenants -H "Authorization: Bearer ${adminKey}" -H 'content-type: application/json' -d '{"tenant":"demo"}'
  # then, with the apiKey it prints:
  curl -s -X POST ${url}/v1/tenants/demo/streams/order-1/events -H "Authorization: Bearer <apiKey>" -H 'content-type: application/json' -d '{"events":[{"type":"OrderPlaced","data":{"total":42}}]}'

Ctrl-C stops the cluster.`);
}
