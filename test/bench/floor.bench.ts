// npm run bench:floor — what a node process can do at best on this machine for issue 9's
// workload (32 keep-alive clients, 1,000 streams, 1-event appends with exact expectedVersion,
// ~300-byte events), beside PostgreSQL's durable INSERT, in one run: how much of Skein's gap
// to PostgreSQL is node and HTTP themselves, and how much is Skein.
//
// Rows, each server in its own process, its CPU from /proc over the measured window (the
// load generator, in this process, is not counted), all driven by measureSkeinAppends:
//   PostgreSQL   one autocommit INSERT per event into an indexed table (postgres.ts)
//   http         node:http, no framework: reads the body, JSON.parse, checks expectedVersion
//                against an in-memory map, answers 201 with a small JSON; no disk
//   file         the same plus a group commit: appends arriving while a write is in flight
//                are gathered and appended to one file with one write + one fdatasync per
//                group, each answered after its group's sync (the durability floor)
//   lmdb         the same group commit into LMDB: one transactionSync with one put per
//                event, on a worker thread, answered after the commit synced
//   lmdb3        npm start's shape without Skein: streams hashed onto three LMDB stores,
//                each with its own group commit on its own worker thread
//   lmdb3-redis  the same, each group first taking its positions from a Redis INCRBY
//                (a private redis-server, AOF with appendfsync always, as npm start runs
//                it; its CPU counted with the server's): what a node of three shards and
//                its sequencer cost before any of Skein's own work
//   lmdb3-redis-gather  the same, each store's next group gathering as a node's shards
//                do (after a group of two or more is answered, until every writer any
//                store answered is back, at most 2 ms: @skein/engine's ReturnTally)
//   lmdb3-redis-gather-records  the same, each event written as Skein's storage layout
//                writes an append (libs/engine/src/keys.ts): its event record and its two
//                log entries (the partition's and the shard's), and its stream's head
//                record on the stream's first append (an append that only advances a
//                version writes none): three puts where the rows above write one, what
//                the layout costs before any of Skein's JavaScript decides or encodes
//   fastify      the calibration server's bare route (echo-server.ts), for reference
//   Skein        `npm start` itself (the compiled dist/, built if stale; a tenant of 6
//                partitions), on the same load: what is above the rows before it is Skein's
// The file group is written through node's async fs API (fs.write + fs.fdatasync on the
// libuv pool), no thread of its own: a worker thread (SKEIN_FLOOR_FILE_SYNC=worker) cost
// the same, 38-42 µs per append against 39-40 (alternating 4 s runs, 32 clients).
//
// Settings (environment): SKEIN_BENCH_WARMUP_MS (2000), SKEIN_BENCH_DURATION_MS (10000),
// SKEIN_BENCH_CLIENTS (32), SKEIN_BENCH_STREAMS (1000), SKEIN_BENCH_PG_URL
// (postgresql://postgres@127.0.0.1:5432/test), SKEIN_FLOOR_FILE_SYNC (async | worker).
// Prints only; nothing is written to bench/results/.
import { fdatasync, mkdtempSync, openSync, rmSync, write } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { ReturnTally } from '@skein/engine';
import { startRedis, startServiceProcess, type ServiceProcess } from '@skein/testing';
import { createClient } from '@skein/client';
import { fastifyCeiling, startEchoServer } from './calibrate.ts';
import { groupCommit, streamHash } from './group-commit.ts';
import { machineLine } from './machine.ts';
import { measurePostgres } from './postgres.ts';
import { startNpmStart } from './topologies.ts';
import { EVENT_DATA, measureSkeinAppends, type Measured, type Timing } from './workload.ts';

type FloorMode = 'http' | 'file' | 'file-worker' | 'lmdb' | 'lmdb3' | 'lmdb3-redis' | 'lmdb3-redis-gather' | 'lmdb3-redis-gather-records';

const SELF = fileURLToPath(import.meta.url);
const LISTENING = 'floor listening';

/** One append waiting for its group's sync. */
interface Pending {
  stream: string;
  version: number;
  /** The request body as received. */
  text: string;
  /** Its global position, from its group's INCRBY (Redis modes). */
  position?: number;
  done(): void;
}

/**
 * The thread of the `file-worker` and `lmdb` modes, plain JavaScript (a worker does not
 * inherit tsx's loader). One group at a time: the main thread sends the next only after
 * this one's answer, which comes after the sync.
 */
const THREAD = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  if (workerData.mode === 'lmdb') {
    const { open } = await import(workerData.lmdb);
    // The engine's settings (environment.ts) but raw string values: a synchronous
    // transaction syncs before it returns.
    const db = open({ path: workerData.path, mapSize: 2 ** 30, encoding: 'string', keyEncoding: 'ordered-binary', compression: false, overlappingSync: true });
    parentPort.on('message', (flat) => {
      db.transactionSync(() => {
        if (!workerData.records) for (let i = 0; i < flat.length; i += 3) db.putSync([flat[i], flat[i + 1]], flat[i + 2]);
        // Skein's keys (keys.ts), values as short strings: [p, 'stream', s, v] the event,
        // [p, 'log', hi, lo] and ['$global', hi, lo], and [p, 'head', s] once per stream.
        else for (let i = 0; i < flat.length; i += 5) {
          const s = flat[i], v = flat[i + 1], pos = flat[i + 3], p = flat[i + 4];
          db.putSync([p, 'stream', s, v], flat[i + 2]);
          if (v === 1) db.putSync([p, 'head', s], String(v));
          db.putSync([p, 'log', 0, pos], s + ' ' + v + ' 1');
          db.putSync(['$global', 0, pos], p + ' ' + s + ' ' + v + ' 1');
        }
      });
      parentPort.postMessage(0);
    });
  } else {
    const fs = await import('node:fs');
    const fd = fs.openSync(workerData.path, 'a');
    parentPort.on('message', (text) => {
      fs.writeSync(fd, text);
      fs.fdatasyncSync(fd);
      parentPort.postMessage(0);
    });
  }
});`;

/** Writes one group durably, then calls back; a failure ends the server (it never answers an unsynced append). */
type GroupWriter = (group: Pending[], synced: () => void) => void;

const record = (p: Pending) => `${p.stream} ${p.version} ${p.text}\n`;

function groupWriter(mode: 'file' | 'file-worker' | 'lmdb' | 'lmdb-records', dir: string): GroupWriter {
  if (mode === 'file') {
    const fd = openSync(join(dir, 'events.log'), 'a');
    return (group, synced) =>
      write(fd, group.map(record).join(''), (err) => {
        if (err) throw err;
        fdatasync(fd, (err2) => {
          if (err2) throw err2;
          synced();
        });
      });
  }
  const worker = new Worker(THREAD, {
    eval: true,
    workerData: mode === 'lmdb' || mode === 'lmdb-records' ? { mode: 'lmdb', records: mode === 'lmdb-records', path: join(dir, 'lmdb'), lmdb: import.meta.resolve('lmdb') } : { mode, path: join(dir, 'events.log') },
  });
  worker.on('error', (err) => {
    throw err;
  });
  let waiting: (() => void) | null = null;
  worker.on('message', () => {
    const synced = waiting!;
    waiting = null;
    synced();
  });
  return (group, synced) => {
    waiting = synced;
    worker.postMessage(
      mode === 'lmdb' ? group.flatMap((p) => [p.stream, p.version, p.text]) : mode === 'lmdb-records' ? group.flatMap((p) => [p.stream, p.version, p.text, p.position, `p${streamHash(p.stream) % 6}`]) : group.map(record).join(''),
    );
  };
}

/** The floor server of `mode`: listens on a free port, logs its URL, serves until killed. GET /stats: groups and events written so far. */
async function serve(mode: FloorMode, dir: string): Promise<void> {
  const stats = { groups: 0, events: 0 };
  const redis = mode.startsWith('lmdb3-redis') ? new Redis(env.SKEIN_FLOOR_REDIS_URL!) : null;
  const tally = mode.startsWith('lmdb3-redis-gather') ? new ReturnTally() : null;
  /** One store: its group commit, each group first taking its positions from Redis in the Redis modes. */
  const store = (writeGroup: GroupWriter) =>
    groupCommit<Pending>((group, written) => {
      stats.groups++;
      stats.events += group.length;
      if (!redis) return writeGroup(group, written);
      redis.incrby('floor:counter', group.length).then(
        (last) => {
          let position = last - group.length;
          for (const p of group) p.position = ++position;
          writeGroup(group, written);
        },
        (err: unknown) => {
          throw err;
        },
      );
    }, tally);
  const stores =
    mode === 'http'
      ? []
      : mode === 'file' || mode === 'file-worker' || mode === 'lmdb'
        ? [store(groupWriter(mode, dir))]
        : [0, 1, 2].map((i) => store(groupWriter(mode === 'lmdb3-redis-gather-records' ? 'lmdb-records' : 'lmdb', join(dir, `store-${i}`))));
  const storeOf = (stream: string) => stores[streamHash(stream) % stores.length]!;
  const versions = new Map<string, number>();
  let position = 0;
  const answer = (res: ServerResponse, status: number, json: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
  };
  const server = createServer((req, res) => {
    if (req.method === 'GET') return answer(res, 200, JSON.stringify(stats));
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8');
      // /v1/tenants/<tenant>/streams/<stream>/events
      const stream = req.url!.split('/')[5] ?? '';
      const { expectedVersion } = JSON.parse(text) as { expectedVersion: number };
      const current = versions.get(stream) ?? 0;
      if (expectedVersion !== current) return answer(res, 409, `{"code":"WRONG_EXPECTED_VERSION","actual":${current}}`);
      const version = current + 1;
      versions.set(stream, version);
      const p = String(++position);
      const ok = `{"streamId":"${stream}","firstVersion":${version},"lastVersion":${version},"firstPosition":"${p}","lastPosition":"${p}"}`;
      if (stores.length === 0) return answer(res, 201, ok);
      storeOf(stream)({ stream, version, text, done: () => answer(res, 201, ok) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  console.log(JSON.stringify({ level: 30, msg: LISTENING, url: `http://127.0.0.1:${port}` }));
}

const env = process.env;
const serverMode = env.SKEIN_FLOOR_SERVER as FloorMode | undefined;
if (serverMode) await serve(serverMode, env.SKEIN_FLOOR_DIR ?? tmpdir());
else await bench();

function numberSetting(name: string, fallback: number): number {
  const value = Number(env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(env[name])}`);
  return value;
}

interface Row {
  name: string;
  m: Measured;
  /** Events per group commit, warm-up included. */
  perGroup?: number;
}

async function bench(): Promise<void> {
  const timing: Timing = { warmupMs: numberSetting('SKEIN_BENCH_WARMUP_MS', 2_000), durationMs: numberSetting('SKEIN_BENCH_DURATION_MS', 10_000) };
  const clients = numberSetting('SKEIN_BENCH_CLIENTS', 32);
  const streams = numberSetting('SKEIN_BENCH_STREAMS', 1_000);
  const fileMode: FloorMode = env.SKEIN_FLOOR_FILE_SYNC === 'worker' ? 'file-worker' : 'file';
  const pgUrl = env.SKEIN_BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
  const load = (url: string, pids: () => number[]) =>
    measureSkeinAppends({ url, apiKey: 'floor', tenant: 'bench', streamPrefix: 'order', clients, streams, eventsPerAppend: 1, serverPids: pids, ...timing });
  const pidsOf = (s: ServiceProcess) => () => (s.pid === undefined ? [] : [s.pid]);

  console.log(machineLine());
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  console.log(`workload: ${clients} clients, ${streams} streams, 1-event appends with exact expectedVersion, ${JSON.stringify(EVENT_DATA).length}-byte data; ${timing.warmupMs / 1000} s warm-up + ${timing.durationMs / 1000} s measured`);
  const single = JSON.stringify({ events: [{ type: 'OrderPlaced', data: EVENT_DATA }] });
  console.log(`calibration: a bare Fastify route (parse JSON, answer 201), 64 connections, lean load generator: ${Math.round(await fastifyCeiling(64, single)).toLocaleString('en-US')} req/s`);

  const rows: Row[] = [];
  const pg = await measurePostgres({ url: pgUrl, clients, streams }, timing);
  if ('skipped' in pg) console.log(`PostgreSQL: skipped (${pg.skipped})`);
  else {
    console.log(`PostgreSQL ${pg.version}: synchronous_commit=${pg.synchronousCommit} fsync=${pg.fsync} wal_sync_method=${pg.walSyncMethod}; ${pg.ddl}`);
    rows.push({ name: `PostgreSQL ${pg.version.split(' ')[0]} INSERT`, m: pg.measured });
  }

  const names: Record<FloorMode, string> = {
    http: 'node:http, JSON.parse, no disk',
    file: 'node:http + group fdatasync (fs async)',
    'file-worker': 'node:http + group fdatasync (worker)',
    lmdb: 'node:http + group LMDB txn (worker)',
    lmdb3: 'the same, 3 stores (workers)',
    'lmdb3-redis': 'the same + Redis INCRBY per group',
    'lmdb3-redis-gather': 'the same, groups gathering (2 ms, 1 tally)',
    'lmdb3-redis-gather-records': "the same, Skein's records per event",
  };
  for (const mode of ['http', fileMode, 'lmdb', 'lmdb3', 'lmdb3-redis', 'lmdb3-redis-gather', 'lmdb3-redis-gather-records'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'skein-floor-'));
    // As npm start runs its own redis-server: AOF, fsynced before each answer.
    const redis = mode.includes('redis') ? await startRedis({ appendfsync: 'always' }) : null;
    const server = await startServiceProcess({
      name: `floor-${mode}`,
      main: SELF,
      env: { SKEIN_FLOOR_SERVER: mode, SKEIN_FLOOR_DIR: dir, ...(redis ? { SKEIN_FLOOR_REDIS_URL: redis.url } : {}) },
      listeningMessage: LISTENING,
    });
    try {
      const m = await load(server.url, () => [...pidsOf(server)(), ...(redis?.pid ? [redis.pid] : [])]);
      const stats = (await (await fetch(`${server.url}/stats`)).json()) as { groups: number; events: number };
      rows.push({ name: names[mode], m, ...(stats.groups > 0 ? { perGroup: stats.events / stats.groups } : {}) });
    } finally {
      await server.kill('SIGTERM');
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const echo = await startEchoServer();
  try {
    rows.push({ name: 'Fastify bare route (calibration server)', m: await load(echo.url, pidsOf(echo)) });
  } finally {
    await echo.kill('SIGTERM');
  }

  // Skein itself, as `npm start` runs it (the compiled dist/, built if stale), on the same load.
  const skein = await startNpmStart();
  try {
    const admin = createClient({ url: skein.url, apiKey: skein.adminKey });
    const { apiKey } = await admin.admin.createTenant('bench', { partitions: 6 });
    const m = await measureSkeinAppends({ url: skein.url, apiKey, tenant: 'bench', streamPrefix: 'order', clients, streams, eventsPerAppend: 1, serverPids: () => skein.serverPids(), ...timing });
    rows.push({ name: 'Skein, npm start', m });
  } finally {
    await skein.stop();
  }

  const base = 'skipped' in pg ? undefined : pg.measured;
  const ratio = (x: number, y: number | undefined) => (y ? `${(x / y).toFixed(2)}×` : '-');
  console.log('');
  console.log(`${'server'.padEnd(42)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'CPU µs/req'.padStart(10)} ${'CPU/PG'.padStart(7)} ${'req/s/PG'.padStart(8)}  events/group  answers`);
  for (const { name, m, perGroup } of rows) {
    console.log(
      `${name.padEnd(42)} ${Math.round(m.requestsPerSecond).toLocaleString('en-US').padStart(7)} ${m.p50Ms.toFixed(2).padStart(7)} ${m.p99Ms.toFixed(2).padStart(7)} ${Math.round(m.cpuPerRequestUs).toString().padStart(10)} ${ratio(m.cpuPerRequestUs, base?.cpuPerRequestUs).padStart(7)} ${ratio(m.requestsPerSecond, base?.requestsPerSecond).padStart(8)}  ${(perGroup === undefined ? '-' : perGroup.toFixed(1)).padStart(12)}  ${JSON.stringify(m.statuses)}`,
    );
  }
  console.log(`server CPU: every process of the server over the measured window (PostgreSQL: postmaster and all its children); the load generator is not counted`);
  console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
}
