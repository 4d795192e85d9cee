// A quick look at the append path while working on it (not the published benchmark):
// `node --conditions=skein-source --import tsx test/bench/quick.bench.ts`
// Starts `npm start` (from the TypeScript sources unless SKEIN_QUICK_COMPILED=1), measures a
// bare-route calibration for a few seconds, then single-event appends with exact
// expectedVersion at each of SKEIN_QUICK_CLIENTS (default "1,32") clients, and prints
// appends/s, p50/p99 and CPU µs per append of every server process. With
// SKEIN_QUICK_PROFILE=1 the node process's main thread is profiled over the last load and
// its top functions are printed by self and by total (inclusive) time.
// Each shard's batches (per second, operations each), their mean duration, sequencer round
// trips per batch and mean append duration come from its /metrics; SKEIN_QUICK_THREADS=1
// lists the node process's threads one by one instead of by name.
// Settings: SKEIN_QUICK_WARMUP_MS (2000), SKEIN_QUICK_DURATION_MS (8000).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@skein/client';
import { labelOf, threadsOf } from './proc.ts';
import { startNpmStart } from './topologies.ts';
import { EVENT_DATA, measureSkeinAppends } from './workload.ts';
import { fastifyCeiling } from './calibrate.ts';

const env = process.env;
const warmupMs = Number(env.SKEIN_QUICK_WARMUP_MS ?? 2_000);
const durationMs = Number(env.SKEIN_QUICK_DURATION_MS ?? 8_000);
const clientCounts = (env.SKEIN_QUICK_CLIENTS ?? '1,32').split(',').map(Number);
const profile = env.SKEIN_QUICK_PROFILE === '1';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The bare-route calibration, shorter than `npm run bench`'s (3,000 + 20,000 requests). */
const calibrate = () => fastifyCeiling(64, JSON.stringify({ expectedVersion: 0, events: [{ type: 'OrderPlaced', data: EVENT_DATA }] }), { warmup: 3_000, measured: 20_000 });

function label(name: string, url: string, line: number): string {
  const short = url.replace(/^.*\/(node_modules|libs|services)\//, '$1/');
  return `${name || '(anonymous)'} ${short ? `${short}:${line + 1}` : ''}`;
}

function analyse(p: CpuProfile, fromUs: number, toUs: number): void {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  // Self time by the package of the nearest frame with a source (native work, node's
  // internals and builtins are charged to the package that called them).
  const byPackage = new Map<string, number>();
  const byOwnPackage = new Map<string, number>();
  const packageOf = (url: string): string | null => {
    const m = /\/(node_modules\/(?:@[^/]+\/)?[^/]+|libs\/[^/]+|services\/[^/]+|test\/[^/]+)\//.exec(url);
    return m ? m[1]! : null;
  };
  let busy = 0;
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i]!;
    const delta = (p.timeDeltas[i + 1] ?? 0) / 1000;
    if (t < fromUs || t > toUs) return;
    const n = nodes.get(id)!;
    if (n.callFrame.functionName === '(idle)') return;
    busy += delta;
    const key = label(n.callFrame.functionName, n.callFrame.url, n.callFrame.lineNumber);
    self.set(key, (self.get(key) ?? 0) + delta);
    let pkg: string | null = null;
    for (let cur: number | undefined = id; cur !== undefined && pkg === null; cur = parent.get(cur)) pkg = packageOf(nodes.get(cur)!.callFrame.url);
    pkg ??= n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : 'node (no package on the stack)';
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + delta);
    const own = packageOf(n.callFrame.url) ?? (n.callFrame.url.startsWith('node:') ? 'node:*' : n.callFrame.url === '' ? `native: ${n.callFrame.functionName}` : n.callFrame.url);
    byOwnPackage.set(own, (byOwnPackage.get(own) ?? 0) + delta);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = nodes.get(cur)!.callFrame;
      const k = label(c.functionName, c.url, c.lineNumber);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + delta);
    }
  });
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  console.log(`  main thread busy ${busy.toFixed(0)} ms`);
  console.log('  self, by package (native and node-internal time charged to the nearest package on the stack):');
  for (const [k, ms] of top(byPackage, 20)) console.log(`    ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${k}`);
  console.log('  self, by the package of the function itself:');
  for (const [k, ms] of top(byOwnPackage, 20)) console.log(`    ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${k}`);
  console.log('  self:');
  for (const [k, ms] of top(self, 30)) console.log(`    ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${k}`);
  console.log('  total:');
  for (const [k, ms] of top(total, 60)) console.log(`    ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${k}`);
}

console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
if (env.SKEIN_QUICK_CALIBRATE !== '0') console.log(`calibration: bare Fastify route, 64 connections: ${Math.round(await calibrate())} req/s`);
const dir = profile ? mkdtempSync(join(tmpdir(), 'skein-quick-prof-')) : null;
const PRELOAD = fileURLToPath(new URL('./cpu-profile-preload.mjs', import.meta.url));
const topology = await startNpmStart({
  fromSource: env.SKEIN_QUICK_COMPILED !== '1',
  env: dir
    ? { NODE_OPTIONS: `--conditions=skein-source --import=${PRELOAD}`, SKEIN_BENCH_CPU_PROFILE_DIR: dir }
    : env.SKEIN_QUICK_NODE_OPTIONS
      ? { NODE_OPTIONS: `--conditions=skein-source ${env.SKEIN_QUICK_NODE_OPTIONS}` }
      : {},
});
let window = { startUs: 0, endUs: 0 };
let nodePid = 0;
try {
  const admin = createClient({ url: topology.url, apiKey: topology.adminKey });
  const { apiKey } = await admin.admin.createTenant('bench', { partitions: 6 });
  const port = Number(new URL(topology.url).port);
  /** Each shard's group-commit batches so far: count and operations (its /metrics). */
  const batches = async () => {
    const out: Array<{ count: number; ops: number; batchS: number; seqN: number; seqS: number; appN: number; appS: number }> = [];
    const metric = (text: string, name: string) => {
      let sum = 0;
      for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'gm'))) sum += Number(m[1]);
      return sum;
    };
    for (let k = 1; k <= 3; k++) {
      const text = await (await fetch(`http://127.0.0.1:${port + k}/metrics`)).text();
      out.push({
        count: metric(text, 'skein_shard_batch_size_operations_count'),
        ops: metric(text, 'skein_shard_batch_size_operations_sum'),
        batchS: metric(text, 'skein_shard_batch_duration_seconds_sum'),
        seqN: metric(text, 'skein_sequencer_round_trip_seconds_count'),
        seqS: metric(text, 'skein_sequencer_round_trip_seconds_sum'),
        appN: metric(text, 'skein_shard_append_duration_seconds_count'),
        appS: metric(text, 'skein_shard_append_duration_seconds_sum'),
      });
    }
    return out;
  };
  /** utime and stime (s) of every thread of the node process, summed by thread name (the main thread is the one whose tid is the pid). */
  const threads = (): Map<string, { u: number; s: number }> => {
    const out = new Map<string, { u: number; s: number }>();
    const pid = topology.serverPids().find((p) => { try { return labelOf(p) === 'node'; } catch { return false; } });
    if (pid === undefined) return out;
    for (const t of threadsOf(pid)) {
      const name = t.tid === pid ? 'main' : env.SKEIN_QUICK_THREADS === '1' ? `${t.name}#${t.tid}` : t.name;
      const e = out.get(name) ?? { u: 0, s: 0 };
      e.u += t.userSeconds;
      e.s += t.systemSeconds;
      out.set(name, e);
    }
    return out;
  };
  for (const [i, clients] of clientCounts.entries()) {
    if (clients === 0) {
      // Idle: what the node process costs with no load at all.
      const t0 = threads();
      await new Promise((r) => setTimeout(r, durationMs));
      const t1 = threads();
      console.log(`  idle: node threads (% of a core user+sys): ${[...t1].map(([k, v]) => `${k} ${((v.u - (t0.get(k)?.u ?? 0)) * 100_000 / durationMs).toFixed(1)}+${((v.s - (t0.get(k)?.s ?? 0)) * 100_000 / durationMs).toFixed(1)}`).join(', ')}`);
      continue;
    }
    const b0 = await batches();
    const t0 = threads();
    const m = await measureSkeinAppends({ url: topology.url, apiKey, tenant: 'bench', streamPrefix: `s${i}`, clients, streams: 1000, eventsPerAppend: 1, warmupMs, durationMs, serverPids: () => topology.serverPids() });
    window = m.window;
    const per = m.processes.map((p) => `${p.label} ${((p.cpuSeconds * 1e6) / (m.requestsPerSecond * m.seconds)).toFixed(0)} µs (${((100 * p.cpuSeconds) / m.seconds).toFixed(0)}%)`).join(', ');
    nodePid = m.processes.filter((p) => p.label === 'node').sort((a, b) => b.cpuSeconds - a.cpuSeconds)[0]?.pid ?? nodePid;
    const b1 = await batches();
    const t1 = threads();
    const appends = m.requestsPerSecond * (warmupMs + durationMs) / 1000;
    console.log(`    node threads (µs/append user+sys, warm-up included): ${[...t1].map(([k, v]) => `${k} ${((v.u - (t0.get(k)?.u ?? 0)) * 1e6 / appends).toFixed(0)}+${((v.s - (t0.get(k)?.s ?? 0)) * 1e6 / appends).toFixed(0)}`).join(', ')}`);
    const batchLine = b1.map((b, k) => `${((b.count - b0[k]!.count) / (warmupMs + durationMs) * 1000).toFixed(0)}/s × ${((b.ops - b0[k]!.ops) / Math.max(1, b.count - b0[k]!.count)).toFixed(1)} ops`).join(', ');
    console.log(`    shard batches: ${batchLine}`);
    const mean = (s: number, n: number) => (n > 0 ? ((s * 1e6) / n).toFixed(0) : '-');
    console.log(`    shard means (µs): ${b1.map((b, k) => `batch ${mean(b.batchS - b0[k]!.batchS, b.count - b0[k]!.count)}, ${((b.seqN - b0[k]!.seqN) / Math.max(1, b.count - b0[k]!.count)).toFixed(2)} round trips/batch, sequencer ${mean(b.seqS - b0[k]!.seqS, b.seqN - b0[k]!.seqN)}, append ${mean(b.appS - b0[k]!.appS, b.appN - b0[k]!.appN)}`).join(' | ')}`);
    console.log(`${String(clients).padStart(3)} clients: ${Math.round(m.requestsPerSecond)} appends/s, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms, CPU ${m.cpuPerRequestUs.toFixed(0)} µs/append [${per}] statuses ${JSON.stringify(m.statuses)}`);
  }
} finally {
  if (dir && nodePid) {
    process.kill(nodePid, 'SIGUSR2');
    await new Promise((r) => setTimeout(r, 3000));
  }
  await topology.stop();
}
if (dir) {
  for (const f of readdirSync(dir)) {
    if (Number(f.split('.')[0]) !== nodePid) continue;
    console.log(`profile of the node process (last load):`);
    analyse(JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile, window.startUs, window.endUs);
  }
  rmSync(dir, { recursive: true, force: true });
}
console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
