// npm run bench:profile — CPU profiles of every process of `npm start` (compiled, as a user
// runs it) under issue 9's workload (32 clients, 1,000 streams, single-event appends with
// exact expectedVersion), taken by V8's sampling profiler (the one behind --cpu-prof,
// started by cpu-profile-preload.mjs since NODE_OPTIONS refuses --cpu-prof). Prints the
// top self-time functions of the router and of the busiest shard (or of each node process),
// counted only over the measured window, and writes them to bench/results/profile-<date>-<commit>.md.
// Settings: SKEIN_BENCH_WARMUP_MS (2000), SKEIN_BENCH_DURATION_MS (10000), SKEIN_BENCH_OUT.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@skein/client';
import { machineLine } from './machine.ts';
import { startNpmStart } from './topologies.ts';
import { measureSkeinAppends, sleep } from './workload.ts';

const root = resolve(fileURLToPath(new URL('../../', import.meta.url)));
const warmupMs = Number(process.env.SKEIN_BENCH_WARMUP_MS ?? 2_000);
const durationMs = Number(process.env.SKEIN_BENCH_DURATION_MS ?? 10_000);
const outDir = process.env.SKEIN_BENCH_OUT ?? join(root, 'bench/results');
const TOP = 10;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A function's place for the report: repo-relative, never this machine's path. */
function where(url: string, line: number): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const shown = path.startsWith(root) ? relative(root, path) : path.startsWith('node:') ? path : path.replace(/^.*\/node_modules\//, 'node_modules/');
  return `${shown}:${line + 1}`;
}

/**
 * Busy (not idle) self time by function over samples whose timestamp (µs, CLOCK_MONOTONIC like
 * process.hrtime) lies in [fromUs, toUs]; `(idle)` is left out: it is not CPU.
 */
function selfTimes(profile: CpuProfile, fromUs: number, toUs: number): { busyMs: number; top: Array<{ name: string; where: string; ms: number }> } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, { name: string; where: string; ms: number }>();
  let t = profile.startTime;
  let busyMs = 0;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i]!;
    const delta = profile.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) return;
    const frame = nodes.get(id)!.callFrame;
    if (frame.functionName === '(idle)') return;
    const name = frame.functionName || '(anonymous)';
    const at = where(frame.url, frame.lineNumber);
    const key = `${name} ${at}`;
    const entry = byFunction.get(key) ?? { name, where: at, ms: 0 };
    entry.ms += delta / 1000;
    busyMs += delta / 1000;
    byFunction.set(key, entry);
  });
  return { busyMs, top: [...byFunction.values()].sort((a, b) => b.ms - a.ms).slice(0, TOP) };
}

const dir = mkdtempSync(join(tmpdir(), 'skein-prof-'));
const PRELOAD = fileURLToPath(new URL('./cpu-profile-preload.mjs', import.meta.url));
const lines: string[] = [];
const say = (line = '') => {
  console.log(line);
  lines.push(line);
};
try {
  const topology = await startNpmStart({ env: { NODE_OPTIONS: `--import=${PRELOAD}`, SKEIN_BENCH_CPU_PROFILE_DIR: dir } });
  let window = { startUs: 0, endUs: 0 };
  let appendsPerSecond = 0;
  const labels = new Map<number, string>();
  try {
    const admin = createClient({ url: topology.url, apiKey: topology.adminKey });
    const { apiKey } = await admin.admin.createTenant('bench', { partitions: 6 });
    const measured = await measureSkeinAppends({
      url: topology.url,
      apiKey,
      tenant: 'bench',
      streamPrefix: 'order',
      clients: 32,
      streams: 1000,
      eventsPerAppend: 1,
      warmupMs,
      durationMs,
      serverPids: () => topology.serverPids(),
    });
    window = measured.window;
    appendsPerSecond = measured.requestsPerSecond;
    for (const p of measured.processes) labels.set(p.pid, p.label);
    // SIGUSR2: each server process writes its profile now (cpu-profile-preload.mjs); one
    // that took long to stop on a loaded machine was SIGKILLed and wrote none.
    for (const [pid, label] of labels) {
      // Node processes only: SIGUSR2 would end redis-server.
      if (label !== 'node' && label !== 'router' && !label.startsWith('shard-')) {
        labels.delete(pid);
        continue;
      }
      try {
        process.kill(pid, 'SIGUSR2');
      } catch {
        labels.delete(pid); // gone
      }
    }
    for (let waited = 0; waited < 15_000 && [...labels.keys()].some((pid) => !existsSync(join(dir, `${pid}.cpuprofile`))); waited += 250) await sleep(250);
  } finally {
    await topology.stop();
  }
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const date = new Date().toISOString().slice(0, 10);
  say(`# CPU profiles under issue 9's workload · ${date} · ${commit}`);
  say();
  say(`${machineLine()}; load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}.`);
  say(`Command: \`npm run bench:profile\` (${topology.name}, compiled; 32 clients, 1,000 streams, 1-event appends with exact expectedVersion). ${Math.round(appendsPerSecond).toLocaleString('en-US')} appends/s while profiled; self time of each process's main thread (sampled while not idle: a blocking call such as LMDB's synced commit, and time waiting for a core on a loaded machine, count) over the ${durationMs / 1000} s window after a ${warmupMs / 1000} s warm-up.`);
  // Only the server processes of the window have a label: the supervisor's own profile is left out.
  const profiles = readdirSync(dir)
    .map((f) => ({ label: labels.get(Number(f.split('.')[0])), profile: JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile }))
    .flatMap((p) => (p.label === undefined ? [] : [{ label: p.label, times: selfTimes(p.profile, window.startUs, window.endUs) }]))
    .sort((a, b) => b.times.busyMs - a.times.busyMs);
  const shards = profiles.filter((p) => p.label.startsWith('shard-'));
  const shown = [...profiles.filter((p) => !p.label.startsWith('shard-')), ...shards.slice(0, 1)];
  say(`Main thread busy in the window: ${profiles.map((p) => `${p.label} ${(p.times.busyMs / 1000).toFixed(2)} s`).join(', ')}.`);
  for (const { label, times } of shown) {
    say();
    say(`## ${label}${shards[0]?.label === label ? ' (the busiest shard)' : ''}: ${(times.busyMs / 1000).toFixed(2)} s busy in the window`);
    say();
    say('| # | self ms | % of busy | function | where |');
    say('|---:|---:|---:|---|---|');
    times.top.forEach((f, i) => say(`| ${i + 1} | ${f.ms.toFixed(0)} | ${((100 * f.ms) / times.busyMs).toFixed(1)}% | \`${f.name}\` | ${f.where ? `\`${f.where}\`` : ''} |`));
  }
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `profile-${date}-${commit}.md`);
  writeFileSync(file, lines.join('\n') + '\n');
  console.log(`wrote ${file}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
