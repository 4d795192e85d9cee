// npm run bench:shard — durable appends through one shard process's HTTP API, with
// positions allocated by Redis (a real redis-server, appendonly yes). The load comes
// from a lean HTTP/1.1 generator (./http-load.ts) sharing the machine's cores.
import { CLUSTER_SECRET_HEADER } from '@skein/protocol';
import { startRedis, startShardProcess } from '@skein/testing';
import { fastifyCeiling } from './calibrate.ts';
import { runHttpLoad, type LoadRequest } from './http-load.ts';
import { machineLine, report } from './machine.ts';

const scale = Number(process.env.SKEIN_BENCH_SCALE ?? '1');
const payload = { orderId: 'o-123456', amount: 4200, currency: 'EUR', lines: [{ sku: 'A-1', qty: 2 }] };
const single = JSON.stringify({ events: [{ type: 'OrderPlaced', data: payload }] });

console.log(machineLine());
const ceiling = await fastifyCeiling(64, single);
console.log(`calibration: a bare Fastify route (parse JSON, answer 201), 64 connections: ${Math.round(ceiling).toLocaleString('en-US')} req/s`);

const redis = await startRedis();
const shard = await startShardProcess({ id: 'bench', redisUrl: redis.url, env: { SKEIN_LOG_LEVEL: 'info' } });
console.log(`shard ${shard.url}, redis ${redis.url} (durable: answered after the synced LMDB commit; one Redis allocation per batch)`);

/** Requests for `streams` streams, each encoded once. */
function perStream(streams: number, make: (stream: number) => LoadRequest): (i: number) => LoadRequest {
  const list = Array.from({ length: streams }, (_, s) => make(s));
  return (i) => list[i % streams]!;
}

async function run(name: string, label: string, connections: number, requests: number, eventsPerRequest: number, request: (i: number) => LoadRequest) {
  const authenticated = new WeakMap<LoadRequest, LoadRequest>();
  const withSecret = (r: LoadRequest) => {
    let a = authenticated.get(r);
    if (!a) authenticated.set(r, (a = { ...r, headers: { ...r.headers, [CLUSTER_SECRET_HEADER]: shard.secret } }));
    return a;
  };
  const { seconds, latencies, statuses } = await runHttpLoad(shard.url, connections, requests, (i) => withSecret(request(i)));
  const bad = [...statuses].filter(([status]) => status >= 300);
  if (bad.length > 0) throw new Error(`${name}: unexpected statuses ${JSON.stringify(bad)}`);
  report(`${name}: ${label}`, requests * eventsPerRequest, seconds, latencies);
}

try {
  const events = (n: number) => JSON.stringify({ events: Array.from({ length: n }, () => ({ type: 'OrderPlaced', data: payload })) });
  const ten = events(10);
  const streamPath = (name: string, s: number) => `/internal/v1/partitions/bench/streams/order-${name}-${s}/events`;
  await run('warmup', '1-event appends, 16 connections', 16, Math.round(3_000 * scale), 1, perStream(1000, (s) => ({ method: 'POST', path: streamPath('warmup', s), body: single })));
  await run('single64', '1-event appends, 64 connections', 64, Math.round(80_000 * scale), 1, perStream(1000, (s) => ({ method: 'POST', path: streamPath('single', s), body: single })));
  await run('batch10x64', '10-event appends, 64 connections', 64, Math.round(15_000 * scale), 10, perStream(1000, (s) => ({ method: 'POST', path: streamPath('ten', s), body: ten })));
  await run('coalesced', '100×1-event appends/request, 8 connections', 8, Math.round(1_000 * scale), 100, perStream(50, (k) => ({
    method: 'POST',
    path: '/internal/v1/append',
    body: JSON.stringify({ appends: Array.from({ length: 100 }, (_, j) => ({ partition: 'bench', streamId: `order-coalesced-${(k * 100 + j) % 5000}`, events: [{ type: 'OrderPlaced', data: payload }] })) }),
  })));
  const metrics = await (await fetch(`${shard.url}/metrics`)).text();
  const sum = Number(/^skein_shard_batch_size_events_sum\S* (\S+)/m.exec(metrics)?.[1]);
  const count = Number(/^skein_shard_batch_size_events_count\S* (\S+)/m.exec(metrics)?.[1]);
  console.log(`mean group-commit batch: ${(sum / count).toFixed(1)} events over ${count} batches`);
} finally {
  await shard.kill('SIGTERM');
  await shard.stop();
  await redis.stop();
}
