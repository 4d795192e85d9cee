// npm run bench:shard — durable appends through one shard process's HTTP API, with
// positions allocated by Redis (a real redis-server, appendonly yes).
import { request, Agent } from 'undici';
import { startRedis, startShardProcess } from '@skein/testing';
import { machineLine, report, runConcurrent } from './machine.ts';

const scale = Number(process.env.SKEIN_BENCH_SCALE ?? '1');
const payload = { orderId: 'o-123456', amount: 4200, currency: 'EUR', lines: [{ sku: 'A-1', qty: 2 }] };
const redis = await startRedis();
const shard = await startShardProcess({ id: 'bench', redisUrl: redis.url, env: { SKEIN_LOG_LEVEL: 'info' } });
const agent = new Agent({ connections: 64, pipelining: 1 });
const headers = { 'content-type': 'application/json' };

async function post(path: string, body: string): Promise<any> {
  const res = await request(`${shard.url}${path}`, { method: 'POST', body, headers, dispatcher: agent });
  const json = await res.body.json();
  if (res.statusCode >= 300) throw new Error(`${path}: ${res.statusCode} ${JSON.stringify(json)}`);
  return json;
}

async function single(name: string, callers: number, total: number, perAppend: number) {
  const body = JSON.stringify({ events: Array.from({ length: perAppend }, () => ({ type: 'OrderPlaced', data: payload })) });
  const { seconds, latencies } = await runConcurrent(callers, total, (i) => post(`/internal/v1/partitions/bench/streams/order-${name}-${i % 1000}/events`, body));
  report(`${name}: ${perAppend}-event appends, ${callers} clients`, total * perAppend, seconds, latencies);
}

async function batched(name: string, callers: number, requests: number, appendsPerRequest: number, perAppend: number) {
  const events = Array.from({ length: perAppend }, () => ({ type: 'OrderPlaced', data: payload }));
  const { seconds, latencies } = await runConcurrent(callers, requests, (i) =>
    post('/internal/v1/append', JSON.stringify({ appends: Array.from({ length: appendsPerRequest }, (_, k) => ({ partition: 'bench', streamId: `order-${name}-${(i * appendsPerRequest + k) % 5000}`, events })) })),
  );
  report(`${name}: ${appendsPerRequest}×${perAppend}-event appends/request, ${callers} clients`, requests * appendsPerRequest * perAppend, seconds, latencies);
}

console.log(machineLine());
console.log(`shard ${shard.url}, redis ${redis.url} (durable: answered after the LMDB flush; one Redis allocation per batch)`);
try {
  await single('warmup', 16, Math.round(2_000 * scale), 1);
  await single('single64', 64, Math.round(60_000 * scale), 1);
  await single('batch10x64', 64, Math.round(15_000 * scale), 10);
  await batched('coalesced', 8, Math.round(1_000 * scale), 100, 1);
  const metrics = await (await request(`${shard.url}/metrics`, { dispatcher: agent })).body.text();
  const sum = Number(/^skein_shard_batch_size_events_sum\S* (\S+)/m.exec(metrics)?.[1]);
  const count = Number(/^skein_shard_batch_size_events_count\S* (\S+)/m.exec(metrics)?.[1]);
  console.log(`mean group-commit batch: ${(sum / count).toFixed(1)} events over ${count} batches`);
} finally {
  await agent.close();
  await shard.kill('SIGTERM');
  await shard.stop();
  await redis.stop();
}
