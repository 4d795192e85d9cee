// npm run bench:engine — durable appends and reads of the embedded engine (libs/engine).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, type EventStore } from '@skein/engine';
import { machineLine, report, runConcurrent } from './machine.ts';
import { readWholeStream } from './workload.ts';

const scale = Number(process.env.SKEIN_BENCH_SCALE ?? '1');
const dir = mkdtempSync(join(tmpdir(), 'skein-bench-engine-'));
const payload = { orderId: 'o-123456', amount: 4200, currency: 'EUR', lines: [{ sku: 'A-1', qty: 2 }] };

function mustOk(outcome: { ok: boolean }) {
  if (!outcome.ok) throw new Error(`append failed: ${JSON.stringify(outcome)}`);
}

async function appends(store: EventStore, name: string, callers: number, total: number, perAppend: number) {
  const events = Array.from({ length: perAppend }, () => ({ type: 'OrderPlaced', data: payload }));
  const { seconds, latencies } = await runConcurrent(callers, total, async (i) =>
    mustOk(await store.append('bench', `order-${name}-${i % 1000}`, { events })),
  );
  report(`${name}: ${perAppend}-event appends, ${callers} caller(s)`, total * perAppend, seconds, latencies);
}

/**
 * Reads of 10-event streams in a store of one bucket and in a store of `hours` hour
 * buckets (clock injected, one filler event per hour), the streams written in the
 * newest bucket. Prints the cost per read, the ratio, and how many environments are open.
 */
async function bucketReads(hours: number): Promise<number> {
  const path = mkdtempSync(join(tmpdir(), 'skein-bench-buckets-'));
  const t0 = Date.UTC(2026, 0, 1);
  let now = t0;
  const store = createEngine({ path, bucketSpan: 'hour', clock: () => now, storageReserveBytes: 1024 * 1024 });
  try {
    for (let h = 0; h < hours; h++) {
      now = t0 + h * 3_600_000;
      mustOk(await store.append('bench', `filler-${h % 50}`, { events: [{ type: 'Tick', data: payload }] }));
    }
    const ten = Array.from({ length: 10 }, () => ({ type: 'OrderPlaced', data: payload }));
    const streams = 200;
    for (let i = 0; i < streams; i++) mustOk(await store.append('bench', `ten-${i}`, { events: ten }));
    const rounds = 50;
    const started = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < streams; i++) {
        const page = store.readStream('bench', `ten-${i}`);
        if (!page.ok || page.events.length !== 10) throw new Error('read failed');
      }
    }
    const perRead = (performance.now() - started) / (rounds * streams);
    await new Promise<void>((r) => setImmediate(r));
    const { total, open } = store.environmentCount();
    console.log(`10-event stream read, ${String(total).padStart(5)} bucket(s): ${(perRead * 1000).toFixed(1).padStart(7)} µs per read  (open environments: ${open})`);
    return perRead;
  } finally {
    await store.close();
    rmSync(path, { recursive: true, force: true });
  }
}

console.log(machineLine());
const one = await bucketReads(1);
const many = await bucketReads(1000);
console.log(`ratio 1,000 buckets / 1 bucket: ${(many / one).toFixed(2)}x`);
if (process.argv.includes('--buckets-only')) process.exit(0);
console.log(`store: ${dir} (durable: every append answered after its batch is synced to disk)`);
const store = createEngine({ path: dir });
try {
  await appends(store, 'single', 1, Math.round(2_000 * scale), 1);
  await appends(store, 'single64', 64, Math.round(100_000 * scale), 1);
  await appends(store, 'batch64', 64, Math.round(20_000 * scale), 10);

  // A stream of 100k events, then read it forward in pages of 1000.
  const streamEvents = Math.round(100_000 * scale);
  const chunk = Array.from({ length: 1000 }, () => ({ type: 'Tick', data: payload }));
  for (let i = 0; i < streamEvents / 1000; i++) mustOk(await store.append('bench', 'big-stream', { events: chunk }));
  let t0 = performance.now();
  let read = readWholeStream(store, 'bench', 'big-stream');
  report('stream read, pages of 1000', read, (performance.now() - t0) / 1000);

  // A partition log of 1M events (in a partition of its own), scanned in pages of 1000.
  const logEvents = Math.round(1_000_000 * scale);
  await runConcurrent(8, logEvents / 1000, async (i) => mustOk(await store.append('scan', `s-${i % 100}`, { events: chunk })));
  t0 = performance.now();
  read = 0;
  let from = 0n;
  for (;;) {
    const page = store.readPartitionLog('scan', { fromPosition: from, limit: 1000 });
    if (page.events.length === 0) break;
    read += page.events.length;
    from = page.next;
  }
  report('partition-log scan, pages of 1000', read, (performance.now() - t0) / 1000);
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
