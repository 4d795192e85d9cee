// A stream read through the public API on the `npm start` topology, alone: issue 9's
// "stream read, pages of 1,000 (SDK)" figure, with where the time goes on each side.
//
//   npm run bench:read        (node --conditions=skein-source --import tsx test/bench/read.bench.ts)
//
// Appends SKEIN_READ_EVENTS (20,000) ~300-byte events to one stream in appends of 500, then
// reads the stream through the SDK's streamEvents (pages of 1,000) SKEIN_READ_ROUNDS (6)
// times and prints, per round, events/s, the client's CPU and the server processes' CPU
// per event; then (without SKEIN_READ_PROFILE) the tenant log through the SDK, with those
// events in one stream and as many spread over 200 streams. SKEIN_READ_PROFILE=1 profiles
// the client's and the node process's main threads over the stream reads and prints their
// top functions by self time.
// SKEIN_BENCH_SOURCE=0 runs the compiled dist/ instead of the sources.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@skein/client';
import { machineLine, percentile } from './machine.ts';
import { sample, usageBetween } from './proc.ts';
import { startNpmStart } from './topologies.ts';
import { EVENT_DATA } from './workload.ts';

const env = process.env;
const events = Number(env.SKEIN_READ_EVENTS ?? 20_000);
const rounds = Number(env.SKEIN_READ_ROUNDS ?? 6);
const profile = env.SKEIN_READ_PROFILE === '1';
const TENANT = 'bench';
const STREAM = 'big-stream';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The profile's top functions by self time, as shares of its busy (non-idle) time. */
function printTop(name: string, p: CpuProfile, count = 25): void {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  p.samples.forEach((id, i) => {
    const f = nodes.get(id)!.callFrame;
    if (f.functionName === '(idle)' || f.functionName === '(program)') return;
    const ms = (p.timeDeltas[i + 1] ?? 0) / 1000;
    busy += ms;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|libs|services)\//, '$1/')}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + ms);
  });
  console.log(`${name}: main thread busy ${busy.toFixed(0)} ms; self time:`);
  for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, count)) console.log(`  ${((100 * ms) / busy).toFixed(1).padStart(5)}%  ${k}`);
}

console.log(machineLine());
console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
const dir = profile ? mkdtempSync(join(tmpdir(), 'skein-read-prof-')) : null;
const PRELOAD = fileURLToPath(new URL('./cpu-profile-preload.mjs', import.meta.url));
const fromSource = env.SKEIN_BENCH_SOURCE !== '0';
const t = await startNpmStart({
  fromSource,
  env: dir ? { NODE_OPTIONS: `${fromSource ? '--conditions=skein-source ' : ''}--import=${PRELOAD}`, SKEIN_BENCH_CPU_PROFILE_DIR: dir } : {},
});
const figures: number[] = [];
let nodePid: number | undefined;
const session = profile ? new Session() : null;
try {
  const admin = createClient({ url: t.url, apiKey: t.adminKey });
  const { apiKey } = await admin.admin.createTenant(TENANT, { partitions: 6 });
  const client = createClient({ url: t.url, apiKey });
  const chunk = Array.from({ length: 500 }, () => ({ type: 'Tick', data: EVENT_DATA }));
  for (let i = 0; i < events / 500; i++) await client.append(TENANT, STREAM, { events: chunk });
  console.log(`${events} events of ${JSON.stringify(EVENT_DATA).length}-byte data in one stream; ${rounds} reads through the SDK, pages of 1000`);
  session?.connect();
  session?.post('Profiler.enable');
  for (let r = 0; r < rounds; r++) {
    // Round 0 is the warm-up of the profile: it starts with round 1.
    if (session && r === 1) session.post('Profiler.start');
    const before = sample(t.serverPids());
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let read = 0;
    for await (const _e of client.streamEvents(TENANT, STREAM, { pageSize: 1000 })) read++;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const usage = usageBetween(before, sample(t.serverPids()));
    if (read !== events) throw new Error(`read ${read} events, expected ${events}`);
    nodePid = usage.filter((u) => u.label === 'node').sort((a, b) => b.cpuSeconds - a.cpuSeconds)[0]?.pid ?? nodePid;
    const perEvent = (s: number) => ((s * 1e6) / read).toFixed(2);
    const servers = usage.filter((u) => u.cpuSeconds > 0).map((u) => `${u.label} ${perEvent(u.cpuSeconds)}`).join(', ');
    figures.push(read / seconds);
    console.log(
      `round ${r}: ${Math.round(read / seconds).toLocaleString('en-US')} events/s; CPU µs/event: client ${perEvent((cpu.user + cpu.system) / 1e6)}, server [${servers}]`,
    );
  }
  if (!profile) {
    // The tenant log in global order through the SDK (pages of 1,000), merged from the
    // tenant's 6 partitions: once with every event in one stream (one partition holds them
    // all), once with as many events spread over 200 streams.
    const spread = await admin.admin.createTenant(`${TENANT}-spread`, { partitions: 6 });
    const spreadClient = createClient({ url: t.url, apiKey: spread.apiKey });
    const hundred = chunk.slice(0, 100);
    for (let i = 0; i < events / 100; i++) await spreadClient.append(`${TENANT}-spread`, `s-${i % 200}`, { events: hundred });
    for (const [name, c, tenant] of [['one stream', client, TENANT], ['200 streams', spreadClient, `${TENANT}-spread`]] as const) {
      const rates: number[] = [];
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        let read = 0;
        for await (const _e of c.tenantLogEvents(tenant, { pageSize: 1000 })) read++;
        if (read !== events) throw new Error(`read ${read} events of the tenant log, expected ${events}`);
        rates.push(read / ((performance.now() - t0) / 1000));
      }
      console.log(`tenant log, ${name}, pages of 1000 (SDK): ${rates.map((x) => Math.round(x).toLocaleString('en-US')).join(', ')} events/s`);
    }
  }
} finally {
  if (session) {
    const clientProfile = await new Promise<CpuProfile>((resolve, reject) => session.post('Profiler.stop', (err, res) => (err ? reject(err) : resolve(res.profile as CpuProfile))));
    printTop('client', clientProfile);
  }
  if (dir && nodePid !== undefined) {
    process.kill(nodePid, 'SIGUSR2');
    await new Promise((r) => setTimeout(r, 2000));
  }
  await t.stop();
}
if (dir) {
  const file = readdirSync(dir).find((f) => Number(f.split('.')[0]) === nodePid);
  // The server's profile covers the fill too: its top is the reads only roughly.
  if (file) printTop('node process (the fill included)', JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile);
  rmSync(dir, { recursive: true, force: true });
}
const measured = figures.slice(1);
console.log(`stream read, pages of 1000 (SDK): median ${Math.round(percentile(measured, 50)).toLocaleString('en-US')} events/s over rounds 1-${rounds - 1} (best ${Math.round(Math.max(...measured)).toLocaleString('en-US')})`);
console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
