// A quicker driver for two of issue 9's read-side figures on the `npm start` topology:
// a stream read through the SDK (pages of 1,000) and subscription lag from an append's
// acknowledgement to its delivery on a tenant-log subscription under the bench's write
// load (32 writers). The same measurements as `npm run bench`, without PostgreSQL, the
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
import { EVENT_DATA, engineStreamRead, measureSkeinAppends, sleep } from './workload.ts';

const env = process.env;
const rounds = Number(env.SKEIN_BENCH_ROUNDS ?? 2);
const lagRounds = Number(env.SKEIN_BENCH_LAG_ROUNDS ?? rounds);
const TENANT = 'bench';
const readEvents = 50_000;

async function createTenant(t: Topology): Promise<string> {
  const admin = createClient({ url: t.url, apiKey: t.adminKey });
  return (await admin.admin.createTenant(TENANT, { partitions: 6 })).apiKey;
}

async function fillStream(t: Topology, apiKey: string, stream: string): Promise<void> {
  const client = createClient({ url: t.url, apiKey });
  const chunk = Array.from({ length: 500 }, () => ({ type: 'Tick', data: EVENT_DATA }));
  for (let i = 0; i < readEvents / 500; i++) await client.append(TENANT, stream, { events: chunk });
}

async function measureRead(t: Topology, apiKey: string, stream: string): Promise<number> {
  const client = createClient({ url: t.url, apiKey });
  const t0 = performance.now();
  let read = 0;
  for await (const _e of client.streamEvents(TENANT, stream, { pageSize: 1000 })) read++;
  if (read !== readEvents) throw new Error(`read ${read} events, expected ${readEvents}`);
  return read / ((performance.now() - t0) / 1000);
}

async function measureLag(t: Topology, apiKey: string, round: number): Promise<{ p50: number; p99: number; n: number; appendsPerSecond: number; missing: number }> {
  const client = createClient({ url: t.url, apiKey });
  const sub = client.subscribeTenant(TENANT, { fromPosition: 'end' });
  const acknowledgedAt = new Map<string, number>();
  const deliveredAt = new Map<string, number>();
  const receiving = (async () => {
    for await (const e of sub) if (e.type === 'Probe') deliveredAt.set(String(e.position), performance.now());
  })();
  await sleep(300);
  let loadDone = false;
  const load = measureSkeinAppends({
    url: t.url,
    apiKey,
    tenant: TENANT,
    streamPrefix: `lag-load-${round}`,
    clients: 32,
    streams: 1000,
    eventsPerAppend: 1,
    serverPids: () => t.serverPids(),
    warmupMs: 1_000,
    durationMs: 5_000,
  }).finally(() => (loadDone = true));
  for (let i = 0; !loadDone; i++) {
    const r = await client.append(TENANT, `lag-probe-${round}-${i % 50}`, { events: [{ type: 'Probe', data: i }] });
    acknowledgedAt.set(String(r.firstPosition), performance.now());
    await sleep(10);
  }
  const measured = await load;
  for (const until = Date.now() + 10_000; Date.now() < until && [...acknowledgedAt.keys()].some((p) => !deliveredAt.has(p)); ) await sleep(50);
  sub.close();
  await receiving.catch(() => undefined);
  const lags = [...acknowledgedAt].flatMap(([position, at]) => {
    const delivered = deliveredAt.get(position);
    return delivered === undefined ? [] : [Math.max(0, delivered - at)];
  });
  return { p50: percentile(lags, 50), p99: percentile(lags, 99), n: lags.length, appendsPerSecond: measured.requestsPerSecond, missing: acknowledgedAt.size - lags.length };
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
  await fillStream(t, apiKey, 'big-stream');
  for (let r = 0; r < rounds; r++) {
    const eps = await measureRead(t, apiKey, 'big-stream');
    console.log(`stream read, pages of 1000 (SDK): ${Math.round(eps).toLocaleString('en-US')} events/s`);
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
