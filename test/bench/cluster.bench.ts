// npm run bench — issue 9's workload (32 clients, 1,000 streams, single-event appends with
// exact expectedVersion, ~300-byte events, keep-alive HTTP) against PostgreSQL on this
// machine and against Skein as `npm start` runs it and as separate processes, with server
// CPU per append from /proc; a stream read, subscription lag under write load, and appends/s
// by concurrency. Writes the report to bench/results/ (see report.ts).
//
// Settings (environment): SKEIN_BENCH_QUICK=1 (short durations, a smoke test; its report is
// named -quick and does not replace latest.md), SKEIN_BENCH_WARMUP_MS (2000), SKEIN_BENCH_DURATION_MS
// (10000), SKEIN_BENCH_CLIENTS (32), SKEIN_BENCH_STREAMS (1000), SKEIN_BENCH_PG_URL
// (postgresql://postgres@127.0.0.1:5432/test), SKEIN_BENCH_SOURCE=1 (npm start runs the
// TypeScript sources instead of dist/), SKEIN_BENCH_OUT (bench/results).
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createClient } from '@skein/client';
import { fastifyCeiling } from './calibrate.ts';
import { machineLine, percentile } from './machine.ts';
import { measurePostgres } from './postgres.ts';
import { ratiosOf, summaryLine, writeReport, type AppendFigure, type BenchResult } from './report.ts';
import { startNpmStart, startThreeProcess, type Topology } from './topologies.ts';
import { EVENT_DATA, engineStreamRead, fillStream, measureSkeinAppends, sdkStreamRead, measureSubscriptionLag, type Measured, type Timing } from './workload.ts';

const env = process.env;
const quick = env.SKEIN_BENCH_QUICK === '1';
const numberSetting = (name: string, fallback: number) => {
  const value = Number(env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(env[name])}`);
  return value;
};
const timing: Timing = { warmupMs: numberSetting('SKEIN_BENCH_WARMUP_MS', quick ? 500 : 2_000), durationMs: numberSetting('SKEIN_BENCH_DURATION_MS', quick ? 2_000 : 10_000) };
const sweepTiming: Timing = quick ? { warmupMs: 300, durationMs: 1_000 } : { warmupMs: 1_000, durationMs: 4_000 };
const lagTiming: Timing = quick ? { warmupMs: 300, durationMs: 1_500 } : { warmupMs: 1_000, durationMs: 5_000 };
const clients = numberSetting('SKEIN_BENCH_CLIENTS', 32);
const streams = numberSetting('SKEIN_BENCH_STREAMS', 1_000);
const readEvents = quick ? 5_000 : 50_000;
const pgUrl = env.SKEIN_BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
const outDir = env.SKEIN_BENCH_OUT ?? fileURLToPath(new URL('../../bench/results/', import.meta.url));
const TENANT = 'bench';

const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
const started = new Date();
const notes: string[] = [];

function figure(system: string, m: Measured, clientCount: number, eventsPerAppend: number): AppendFigure {
  const appends = m.requestsPerSecond * m.seconds;
  return {
    system,
    clients: clientCount,
    streams,
    eventsPerAppend,
    appendsPerSecond: m.requestsPerSecond,
    eventsPerSecond: m.eventsPerSecond,
    p50Ms: m.p50Ms,
    p99Ms: m.p99Ms,
    cpuPerAppendUs: m.cpuPerRequestUs,
    seconds: m.seconds,
    statuses: m.statuses,
    processes: m.processes.map((p) => ({ ...p, cpuPerAppendUs: appends > 0 ? (p.cpuSeconds * 1e6) / appends : NaN, coreShare: p.cpuSeconds / m.seconds })),
  };
}

function print(f: AppendFigure): void {
  const unit = f.system.startsWith('PostgreSQL') ? 'inserts' : 'appends';
  console.log(
    `${f.system.padEnd(44)} ${Math.round(f.appendsPerSecond).toLocaleString('en-US').padStart(7)} ${unit}/s  p50 ${f.p50Ms.toFixed(2)} ms  p99 ${f.p99Ms.toFixed(2)} ms  server CPU ${Math.round(f.cpuPerAppendUs)} µs/${unit.slice(0, -1)}  answers ${JSON.stringify(f.statuses)}`,
  );
  const groups = new Map<string, { cpu: number; share: number; rss: number; n: number }>();
  for (const p of f.processes) {
    const g = groups.get(p.label) ?? { cpu: 0, share: 0, rss: 0, n: 0 };
    groups.set(p.label, { cpu: g.cpu + p.cpuPerAppendUs, share: g.share + p.coreShare, rss: g.rss + p.rssBytes, n: g.n + 1 });
  }
  const split = [...groups].map(([label, g]) => `${label}${g.n > 1 ? ` ×${g.n}` : ''} ${Math.round(g.cpu)} µs (${(100 * g.share).toFixed(0)}% of a core, RSS ${(g.rss / 2 ** 20).toFixed(0)} MiB)`);
  console.log(`  per process: ${split.join('; ')}`);
}

/** Issue 9's workload against a topology, on fresh streams named `prefix-<n>`. */
async function appendLoad(t: Topology, apiKey: string, prefix: string, clientCount: number, eventsPerAppend: number, tm: Timing): Promise<Measured> {
  return measureSkeinAppends({ url: t.url, apiKey, tenant: TENANT, streamPrefix: prefix, clients: clientCount, streams, eventsPerAppend, serverPids: () => t.serverPids(), ...tm });
}

/** Creates the bench tenant (6 partitions) and notes how its partitions are placed on the shards. */
async function createTenant(t: Topology): Promise<string> {
  const admin = createClient({ url: t.url, apiKey: t.adminKey });
  const { apiKey } = await admin.admin.createTenant(TENANT, { partitions: 6 });
  const info = (await (await fetch(`${t.url}/v1/admin/tenants/${TENANT}`, { headers: { authorization: `Bearer ${t.adminKey}` } })).json()) as { placement?: Record<string, string> };
  const perShard = new Map<string, number>();
  for (const shard of Object.values(info.placement ?? {})) perShard.set(shard, (perShard.get(shard) ?? 0) + 1);
  const line = `${t.name}: the tenant's 6 partitions are placed ${[...perShard].sort().map(([shard, n]) => `${n} on ${shard}`).join(', ')}`;
  console.log(line);
  notes.push(line);
  return apiKey;
}

/** A stream of `readEvents` events read back through the SDK in pages of 1,000 (workload.ts, sdkStreamRead). */
async function measureRead(t: Topology, apiKey: string): Promise<BenchResult['read']> {
  const client = createClient({ url: t.url, apiKey });
  await fillStream(client, TENANT, 'big-stream', readEvents);
  return { system: t.name, events: readEvents, pageSize: 1000, eventsPerSecond: await sdkStreamRead(client, TENANT, 'big-stream', readEvents) };
}

/** Lag from an append's acknowledgement to its delivery on a tenant-log subscription, under the benchmark's write load (workload.ts, measureSubscriptionLag). */
async function measureLag(t: Topology, apiKey: string): Promise<BenchResult['subscriptionLag']> {
  const client = createClient({ url: t.url, apiKey });
  const { lags, acknowledged, load } = await measureSubscriptionLag(client, TENANT, 'lag-probe', () => appendLoad(t, apiKey, 'lag-load', clients, 1, lagTiming));
  if (lags.length < acknowledged) notes.push(`subscription lag: ${acknowledged - lags.length} of ${acknowledged} probe events were not delivered within 10 s`);
  return { system: t.name, events: lags.length, p50Ms: percentile(lags, 50), p99Ms: percentile(lags, 99), appendsPerSecondMeanwhile: load.requestsPerSecond };
}

console.log(machineLine());
const load = loadavg();
console.log(`load average at start: ${load.map((l) => l.toFixed(2)).join(', ')} (the machine is shared: figures move with it)`);
console.log(`workload: ${clients} clients, ${streams} streams, 1-event appends with exact expectedVersion, ${JSON.stringify(EVENT_DATA).length}-byte data; ${timing.warmupMs / 1000} s warm-up + ${timing.durationMs / 1000} s measured${quick ? ' (QUICK)' : ''}`);

const single = JSON.stringify({ events: [{ type: 'OrderPlaced', data: EVENT_DATA }] });
const calibrationDescription = 'a bare Fastify route (parse JSON, answer 201), 64 connections, lean load generator';
const calibration = await fastifyCeiling(64, single);
console.log(`calibration: ${calibrationDescription}: ${Math.round(calibration).toLocaleString('en-US')} req/s`);

const pg = await measurePostgres({ url: pgUrl, clients, streams }, timing);
let postgres: BenchResult['postgres'];
if ('skipped' in pg) {
  console.log(`PostgreSQL: skipped (${pg.skipped})`);
  postgres = { skipped: pg.skipped };
} else {
  notes.push('PostgreSQL RSS counts the shared buffers each backend touched once per backend: the sum overstates its memory.');
  console.log(`PostgreSQL ${pg.version}: synchronous_commit=${pg.synchronousCommit} fsync=${pg.fsync} wal_sync_method=${pg.walSyncMethod}; ${pg.ddl}`);
  const f = figure(`PostgreSQL ${pg.version.split(' ')[0]}`, pg.measured, clients, 1);
  print(f);
  postgres = { version: pg.version, synchronousCommit: pg.synchronousCommit, fsync: pg.fsync, walSyncMethod: pg.walSyncMethod, ddl: pg.ddl, figure: f };
}

const skein: AppendFigure[] = [];
const sweep: AppendFigure[] = [];
let read: BenchResult['read'];
let subscriptionLag: BenchResult['subscriptionLag'];

const fromSource = env.SKEIN_BENCH_SOURCE === '1';
const npmStart = await startNpmStart({ fromSource });
notes.push(`npm start ran ${fromSource ? 'the TypeScript sources (SKEIN_BENCH_SOURCE=1)' : 'the compiled dist/ (built from the working tree if stale), as a user runs it'}; the separate-process topology runs the sources through tsx (startCluster).`);
try {
  const apiKey = await createTenant(npmStart);
  const f = figure(`Skein, ${npmStart.name}`, await appendLoad(npmStart, apiKey, 'order', clients, 1, timing), clients, 1);
  print(f);
  skein.push(f);
  read = await measureRead(npmStart, apiKey);
  // The engine alone, in this process, while npm start idles: issue 9's yardstick for the SDK read.
  read.engineEventsPerSecond = await engineStreamRead(readEvents);
  console.log(`stream read, pages of 1000 (SDK): ${Math.round(read.eventsPerSecond).toLocaleString('en-US')} events/s (${read.events} events, median of 3 reads after a warm-up); the engine alone, in-process: ${Math.round(read.engineEventsPerSecond).toLocaleString('en-US')} events/s (SDK ÷ engine ${(read.eventsPerSecond / read.engineEventsPerSecond).toFixed(2)}; issue 9's then: 0.10)`);
  subscriptionLag = await measureLag(npmStart, apiKey);
  console.log(`subscription lag (acknowledged → delivered, tenant log) under ${Math.round(subscriptionLag.appendsPerSecondMeanwhile).toLocaleString('en-US')} appends/s: p50 ${subscriptionLag.p50Ms.toFixed(1)} ms  p99 ${subscriptionLag.p99Ms.toFixed(1)} ms over ${subscriptionLag.events} events`);
  for (const eventsPerAppend of [1, 10]) {
    for (const c of [1, 16, 64]) {
      const s = figure(`Skein, ${npmStart.name}`, await appendLoad(npmStart, apiKey, `sweep-${c}-${eventsPerAppend}`, c, eventsPerAppend, sweepTiming), c, eventsPerAppend);
      console.log(`concurrency ${String(c).padStart(2)}, ${String(eventsPerAppend).padStart(2)}-event appends: ${Math.round(s.appendsPerSecond).toLocaleString('en-US')} appends/s (${Math.round(s.eventsPerSecond).toLocaleString('en-US')} events/s)  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms`);
      sweep.push(s);
    }
  }
} finally {
  await npmStart.stop();
}

const threeProcess = await startThreeProcess();
try {
  const apiKey = await createTenant(threeProcess);
  const f = figure(`Skein, ${threeProcess.name}`, await appendLoad(threeProcess, apiKey, 'order', clients, 1, timing), clients, 1);
  print(f);
  skein.push(f);
} finally {
  await threeProcess.stop();
}

const result: BenchResult = {
  schema: 1,
  date: started.toISOString(),
  commit: git('rev-parse', '--short', 'HEAD'),
  dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
  command: `${quick ? 'SKEIN_BENCH_QUICK=1 ' : ''}npm run bench`,
  quick,
  machine: { cpuModel: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryBytes: totalmem(), node: process.version, platform: `${process.platform}/${process.arch}`, loadAverage: [load[0]!, load[1]!, load[2]!] },
  settings: { clients, streams, eventDataBytes: JSON.stringify(EVENT_DATA).length, ...timing },
  calibration: { description: calibrationDescription, requestsPerSecond: calibration },
  postgres,
  skein,
  read,
  subscriptionLag,
  sweep,
  notes: [...notes, `load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`],
};
console.log('');
for (const r of ratiosOf(result)) console.log(summaryLine(r));
for (const path of writeReport(result, outDir)) console.log(`wrote ${path}`);
