import { cpus, totalmem } from 'node:os';

/** One line naming the machine a benchmark ran on. */
export function machineLine(): string {
  const cpu = cpus();
  return `machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${process.platform}/${process.arch}`;
}

/** p-th percentile (0–100) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function report(name: string, events: number, seconds: number, latenciesMs?: number[]): void {
  const rate = Math.round(events / seconds).toLocaleString('en-US');
  const lat = latenciesMs ? `  p50 ${percentile(latenciesMs, 50).toFixed(2)} ms  p99 ${percentile(latenciesMs, 99).toFixed(2)} ms` : '';
  console.log(`${name.padEnd(52)} ${rate.padStart(10)} events/s${lat}  (${events} events in ${seconds.toFixed(2)} s)`);
}

/** Runs `callers` concurrent loops of `op` until `total` operations completed; returns per-op latencies. */
export async function runConcurrent(callers: number, total: number, op: (i: number) => Promise<unknown>): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        await op(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, latencies };
}
