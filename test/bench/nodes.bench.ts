// One node process against several, in one run (README, "One node process or one per core"):
// `node --conditions=skein-source --import tsx test/bench/nodes.bench.ts`
// One bare-route calibration, then `npm start` with each node count of SKEIN_NODES_BENCH
// (default "1,2,1,2": alternated, so a change in the machine's load shows as disagreement
// between the repeats), each from the TypeScript sources, under issue 9's append workload
// (exact expectedVersion, 1,000 streams, single-event ~300-byte appends) at
// SKEIN_NODES_BENCH_CLIENTS (32) clients: appends/s, p50/p99 and server CPU per append
// from /proc (every node and redis-server; the launcher is not counted).
import { loadavg } from 'node:os';
import { createClient } from '@skein/client';
import { startNpmStartNodes } from './topologies.ts';
import { EVENT_DATA, measureSkeinAppends } from './workload.ts';
import { fastifyCeiling } from './calibrate.ts';

const env = process.env;
const order = (env.SKEIN_NODES_BENCH ?? '1,2,1,2').split(',').map(Number);
const clients = Number(env.SKEIN_NODES_BENCH_CLIENTS ?? 32);

/** The bare-route calibration, shorter than `npm run bench`'s (3,000 + 20,000 requests). */
const calibrate = () => fastifyCeiling(64, JSON.stringify({ expectedVersion: 0, events: [{ type: 'OrderPlaced', data: EVENT_DATA }] }), { warmup: 3_000, measured: 20_000 }).then(Math.round);

console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
console.log(`calibration: bare Fastify route, 64 connections: ${await calibrate()} req/s`);
for (const nodes of order) {
  const topology = await startNpmStartNodes(nodes, { fromSource: true });
  try {
    const admin = createClient({ url: topology.url, apiKey: topology.adminKey });
    const { apiKey } = await admin.admin.createTenant('bench', { partitions: 6 });
    const m = await measureSkeinAppends({ url: topology.url, apiKey, tenant: 'bench', streamPrefix: 'order', clients, streams: 1000, eventsPerAppend: 1, warmupMs: 3000, durationMs: 10000, serverPids: () => topology.serverPids() });
    const per = m.processes.map((p) => `${p.label} ${((p.cpuSeconds * 1e6) / (m.requestsPerSecond * m.seconds)).toFixed(0)} µs (${((100 * p.cpuSeconds) / m.seconds).toFixed(0)}%)`).join(', ');
    console.log(`${nodes} node${nodes === 1 ? '' : 's'}, ${clients} clients: ${Math.round(m.requestsPerSecond)} appends/s, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms, CPU ${m.cpuPerRequestUs.toFixed(0)} µs/append [${per}] statuses ${JSON.stringify(m.statuses)}; load average ${loadavg()[0]!.toFixed(2)}`);
  } finally {
    await topology.stop();
  }
}
