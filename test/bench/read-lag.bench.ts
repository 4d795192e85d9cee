// A quicker driver for two of issue 9's read-side figures on the `npm start` topology:
// a stream read through the SDK (pages of 1,000) and subscription lag from an append's
// acknowledgement to its delivery on a tenant-log subscription under the bench's write
// load (32 writers). The same measurements as `npm run bench` (workload.ts), without PostgreSQL, the
// three-process topology or the sweep.
//
//   node --conditions=skein-source --import tsx test/bench/read-lag.bench.ts
//
// Settings (environment): SKEIN_BENCH_ROUNDS (2: each figure measured this many times on
// one cluster), SKEIN_BENCH_LAG_ROUNDS (as many; 0 measures reads only), SKEIN_BENCH_SOURCE=0 (runs the compiled dist/ instead of the sources),
// SKEIN_BENCH_CALIBRATE=1 (also prints the bare-route calibration of cluster.bench.ts).
import { loadavg } from 'node:os';
import { createClient } from '@skein/client';
import { fastifyCeiling } from './calibrate.ts';
import { machineLine, percentile } from './machine.ts';
import { startNpmStart, type Topology } from './topologies.ts';
import { EVENT_DATA, engineStreamRead, fillStream, measureSkeinAppends, sdkStreamRead, measureSubscriptionLag } from './workload.ts';

const env = process.env;
const rounds = Number(env.SKEIN_BENCH_ROUNDS ?? 2);
const lagRounds = Number(env.SKEIN_BENCH_LAG_ROUNDS ?? rounds);
const TENANT = 'bench';
const readEvents = 50_000;

async function createTenant(t: Topology): Promise<string> {
  const admin = createClient({ url: t.url, apiKey: t.adminKey });
  return (await admin.admin.createTenant(TENANT, { partitions: 6 })).apiKey;
}

async function measureLag(t: Topology, apiKey: string, round: number) {
  const client = createClient({ url: t.url, apiKey });
  const load = () =>
    measureSkeinAppends({ url: t.url, apiKey, tenant: TENANT, streamPrefix: `lag-load-${round}`, clients: 32, streams: 1000, eventsPerAppend: 1, serverPids: () => t.serverPids(), warmupMs: 1_000, durationMs: 5_000 });
  const { lags, acknowledged, load: measured } = await measureSubscriptionLag(client, TENANT, `lag-probe-${round}`, load);
  return { p50: percentile(lags, 50), p99: percentile(lags, 99), n: lags.length, appendsPerSecond: measured.requestsPerSecond, missing: acknowledged - lags.length };
}

console.log(machineLine());
console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
if (env.SKEIN_BENCH_CALIBRATE === '1') {
  const single = JSON.stringify({ events: [{ type: 'OrderPlaced', data: EVENT_DATA }] });
  console.log(`calibration: a bare Fastify route, 64 connections: ${Math.round(await fastifyCeiling(64, single)).toLocaleString('en-US')} req/s`);
}
const t = await startNpmStart({ fromSource: env.SKEIN_BENCH_SOURCE !== '0' });
try {
  const apiKey = await createTenant(t);
  const client = createClient({ url: t.url, apiKey });
  await fillStream(client, TENANT, 'big-stream', readEvents);
  for (let r = 0; r < rounds; r++) {
    const eps = await sdkStreamRead(client, TENANT, 'big-stream', readEvents);
    console.log(`stream read, pages of 1000 (SDK, median of 3 after a warm-up): ${Math.round(eps).toLocaleString('en-US')} events/s`);
  }
  if (rounds > 0) console.log(`the same read from the engine alone, in-process: ${Math.round(await engineStreamRead(readEvents)).toLocaleString('en-US')} events/s`);
  for (let r = 0; r < lagRounds; r++) {
    const lag = await measureLag(t, apiKey, r);
    console.log(
      `subscription lag under ${Math.round(lag.appendsPerSecond).toLocaleString('en-US')} appends/s: p50 ${lag.p50.toFixed(1)} ms  p99 ${lag.p99.toFixed(1)} ms over ${lag.n} events${lag.missing ? ` (${lag.missing} not delivered within 10 s)` : ''}`,
    );
  }
} finally {
  await t.stop();
}
