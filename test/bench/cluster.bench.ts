// npm run bench — end to end through the router with the client SDK: a private
// redis-server, three shard processes and one router, all on this machine.
import { createClient, type FetchFunction } from '@skein/client';
import { startCluster } from '@skein/testing';
import { fastifyCeiling } from './calibrate.ts';
import { runHttpLoad } from './http-load.ts';
import { machineLine, percentile, report, runConcurrent } from './machine.ts';

const scale = Number(process.env.SKEIN_BENCH_SCALE ?? '1');
const payload = { orderId: 'o-123456', amount: 4200, currency: 'EUR', lines: [{ sku: 'A-1', qty: 2 }] };
const shardCount = Number(process.env.SKEIN_BENCH_SHARDS ?? '3');
const cluster = await startCluster({ shards: shardCount, routers: 1, ...(process.env.SKEIN_BENCH_PROFILE ? { routerNodeArgs: ['--cpu-prof', `--cpu-prof-dir=${process.env.SKEIN_BENCH_PROFILE}`] } : {}) });
const admin = createClient({ url: cluster.url, apiKey: cluster.adminKey });

// The SDK's default transport is undici.request; `SKEIN_BENCH_TRANSPORT=fetch` measures the global fetch instead.
const transport = process.env.SKEIN_BENCH_TRANSPORT === 'fetch' ? { fetch: globalThis.fetch as unknown as FetchFunction } : {};

async function batchMean(): Promise<string> {
  const m = await admin.metrics();
  const sum = Number(/^skein_router_append_batch_size_appends_sum\S* (\S+)/m.exec(m)?.[1]);
  const count = Number(/^skein_router_append_batch_size_appends_count\S* (\S+)/m.exec(m)?.[1]);
  return `${(sum / count).toFixed(1)} appends per shard request over ${count} requests`;
}

console.log(machineLine());
const single = JSON.stringify({ events: [{ type: 'OrderPlaced', data: payload }] });
console.log(`calibration: a bare Fastify route (parse JSON, answer 201), 64 connections, lean load generator: ${Math.round(await fastifyCeiling(64, single)).toLocaleString('en-US')} req/s`);
console.log(`router ${cluster.url}, ${shardCount} shard(s), redis ${cluster.redis.url} (every append durable before its 201)`);
try {
  const { apiKey } = await admin.admin.createTenant('bench', { partitions: 6 });
  const client = createClient({ url: cluster.url, apiKey, ...transport });
  console.log(`SDK transport: ${process.env.SKEIN_BENCH_TRANSPORT === 'fetch' ? 'global fetch' : 'undici.request (the default)'}`);
  for (const [name, callers, total, per] of [
    ['warmup', 16, 2_000, 1],
    ['single64', 64, 40_000, 1],
    ['batch10x64', 64, 10_000, 10],
  ] as const) {
    const events = Array.from({ length: per }, () => ({ type: 'OrderPlaced', data: payload }));
    const n = Math.round(total * scale);
    const { seconds, latencies } = await runConcurrent(callers, n, (i) => client.append('bench', `order-${name}-${i % 1000}`, { events }));
    if (name !== 'warmup') report(`${name}: ${per}-event appends, ${callers} clients (SDK)`, n * per, seconds, latencies);
  }
  console.log(`coalescing: ${await batchMean()}`);

  // The same single-event appends from the benchmarks' lean HTTP generator: what the
  // cluster does when the client costs less CPU than the SDK on undici.
  const requests = Array.from({ length: 1000 }, (_, s) => ({
    method: 'POST' as const,
    path: `/v1/tenants/bench/streams/order-lean-${s}/events`,
    body: single,
    headers: { authorization: `Bearer ${apiKey}` },
  }));
  const lean = await runHttpLoad(cluster.url, 64, Math.round(40_000 * scale), (i) => requests[i % 1000]!);
  if ((lean.statuses.get(201) ?? 0) !== lean.latencies.length) throw new Error(`lean load: unexpected statuses ${JSON.stringify([...lean.statuses])}`);
  report('single64: 1-event appends, 64 connections (lean HTTP)', lean.latencies.length, lean.seconds, lean.latencies);

  // A stream read through the SDK's paging iterator.
  const chunk = Array.from({ length: 500 }, () => ({ type: 'Tick', data: payload }));
  const streamEvents = Math.round(50_000 * scale);
  for (let i = 0; i < streamEvents / 500; i++) await client.append('bench', 'big-stream', { events: chunk });
  let t0 = performance.now();
  let read = 0;
  for await (const _e of client.streamEvents('bench', 'big-stream', { pageSize: 1000 })) read++;
  report('stream read, pages of 1000 (SDK)', read, (performance.now() - t0) / 1000);

  // Subscription lag: from an append's acknowledgement to its arrival on a tenant-log subscription.
  const sub = client.subscribeTenant('bench', { fromPosition: 'end' });
  const sentAt = new Map<string, number>();
  const lags: number[] = [];
  const expected = Math.round(500 * scale);
  const receiving = (async () => {
    for await (const e of sub) {
      const at = sentAt.get(String(e.position));
      if (at !== undefined) lags.push(performance.now() - at);
      if (lags.length >= expected) break;
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  t0 = performance.now();
  for (let i = 0; i < expected; i++) {
    const r = await client.append('bench', `lag-${i % 50}`, { events: [{ type: 'Lag', data: i }] });
    sentAt.set(String(r.firstPosition), performance.now());
    await new Promise((r) => setTimeout(r, 2));
  }
  await receiving;
  sub.close();
  console.log(`subscription lag (append acknowledged → event received): p50 ${percentile(lags, 50).toFixed(1)} ms  p99 ${percentile(lags, 99).toFixed(1)} ms over ${lags.length} events`);
} finally {
  await cluster.stop();
}
