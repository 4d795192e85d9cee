// npm run bench:layout — what Skein's storage layout costs a node's commit threads, and how
// close the engine comes to it: issue 9's workload (32 writers, 1,000 streams, 1-event
// appends with exact expectedVersion, ~300-byte events) in one process, no HTTP, no Redis,
// against three LMDB stores with a group commit each on a worker thread, gathering as a
// node's shards do (ReturnTally, at most 2 ms), with CPU per append from /proc per thread.
//
// Variants, each in a fresh process, alternated over SKEIN_BENCH_ROUNDS rounds (2):
//   records:e     one put per event: [p, 'stream', s, v] -> the event's JSON text
//   records:el    the same plus the partition log entry [p, 'log', hi, lo]
//   records:elg   the same plus the shard log entry ['$global', hi, lo]: the puts an append
//                 writes now (libs/engine/src/keys.ts; its stream's head only when more
//                 than the version changes)
//   records:ehlg  the same plus the stream's head record [p, 'head', s] on every append:
//                 the four puts an append wrote until 087564e
//   engine        @skein/engine itself: three stores with commit threads, one ReturnTally,
//                 2 ms batch wait, an in-memory sequencer, appends validated as the node's
//                 edge validates them, then appendParsed
// The records variants write short strings for the head and log values (the engine writes
// msgpack): they measure where the puts land in the B-trees, not how values are encoded.
//
// Settings (environment): SKEIN_BENCH_ROUNDS (2), SKEIN_BENCH_WARMUP_MS (2000),
// SKEIN_BENCH_DURATION_MS (8000). Prints only.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createEngine, ReturnTally, type EventStore } from '@skein/engine';
import { DEFAULT_LIMITS, validateProposedEvents } from '@skein/protocol';
import { groupCommit, streamHash as hash } from './group-commit.ts';
import { machineLine } from './machine.ts';
import { threadsOf } from './proc.ts';
import { EVENT_DATA } from './workload.ts';

const env = process.env;
const WRITERS = 32;
const STREAMS = 1_000;
const STORES = 3;
const PARTITIONS = 6;
const VARIANTS = ['records:e', 'records:el', 'records:elg', 'records:ehlg', 'engine'] as const;
type Variant = (typeof VARIANTS)[number];

function numberSetting(name: string, fallback: number): number {
  const value = Number(env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(env[name])}`);
  return value;
}

/** CPU seconds of each thread of this process, by thread id. */
function threadCpu(): Map<string, number> {
  return new Map(threadsOf(process.pid).map((t) => [String(t.tid), t.userSeconds + t.systemSeconds]));
}

/** An append of one event to `stream` at `version` (its expected version is version - 1). */
type Append = (stream: string, version: number) => Promise<void>;

interface Subject {
  append: Append;
  /** Batches (groups) committed so far. */
  batches(): number;
  /** Thread ids of the commit threads, for the CPU split. */
  commitThreads(): string[];
  close(): Promise<void>;
}

/** The group-commit worker: one transactionSync per group, the puts of `records`, answered after the sync. */
const THREAD = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  const { open } = await import(workerData.lmdb);
  const fs = await import('node:fs');
  const db = open({ path: workerData.path, mapSize: 2 ** 30, encoding: 'string', keyEncoding: 'ordered-binary', compression: false, overlappingSync: true });
  const r = workerData.records;
  parentPort.postMessage({ tid: fs.readlinkSync('/proc/thread-self').split('/').pop() });
  parentPort.on('message', (flat) => {
    db.transactionSync(() => {
      for (let i = 0; i < flat.length; i += 4) {
        const s = flat[i], v = flat[i + 1], pos = flat[i + 3], p = 'p' + workerData.partitionOf[s];
        db.putSync([p, 'stream', s, v], flat[i + 2]);
        if (r.includes('h')) db.putSync([p, 'head', s], String(v));
        if (r.includes('l')) db.putSync([p, 'log', 0, pos], s + ' ' + v + ' 1');
        if (r.includes('g')) db.putSync(['$global', 0, pos], p + ' ' + s + ' ' + v + ' 1');
      }
    });
    parentPort.postMessage(null);
  });
});`;

/** The raw group commit: three stores, each a worker writing the puts of `records`, gathering on one tally. */
async function recordsSubject(records: string, dir: string): Promise<Subject> {
  const tally = new ReturnTally();
  const text = JSON.stringify({ events: [{ type: 'OrderPlaced', data: EVENT_DATA }] });
  const partitionOf: Record<string, number> = {};
  for (let i = 0; i < STREAMS; i++) partitionOf[`order-${i}`] = hash(`order-${i}`) % PARTITIONS;
  let position = 0;
  let batches = 0;
  const tids: string[] = [];
  const workers = await Promise.all(
    Array.from({ length: STORES }, async (_, i) => {
      const worker = new Worker(THREAD, { eval: true, workerData: { records, partitionOf, path: join(dir, `store-${i}`), lmdb: import.meta.resolve('lmdb') } });
      // Its first message is its thread id, once it is ready.
      tids.push(await new Promise<string>((resolve) => worker.once('message', (m: { tid: string }) => resolve(m.tid))));
      return worker;
    }),
  );
  const stores = workers.map((worker) => {
    let written: () => void = () => {};
    worker.on('message', () => written());
    return groupCommit<{ flat: unknown[]; done(): void }>((group, whenWritten) => {
      written = whenWritten;
      batches++;
      worker.postMessage(group.flatMap((g) => g.flat));
    }, tally);
  });
  return {
    append: (stream, version) =>
      new Promise<void>((done) => {
        JSON.parse(text);
        stores[hash(stream) % STORES]!({ flat: [stream, version, text, ++position], done });
      }),
    batches: () => batches,
    commitThreads: () => tids,
    async close() {
      for (const w of workers) await w.terminate();
    },
  };
}

function engineSubject(dir: string): Subject {
  let counter = 0n;
  const sequencer = {
    async allocate(count: number, floor: bigint) {
      if (floor > counter) counter = floor;
      const first = counter + 1n;
      counter += BigInt(count);
      return { first, last: counter };
    },
    async current() {
      return counter;
    },
    async close() {},
  };
  const tally = new ReturnTally();
  let batches = 0;
  const before = new Set(threadCpu().keys());
  const stores: EventStore[] = Array.from({ length: STORES }, (_, i) =>
    createEngine({ path: join(dir, `store-${i}`), sequencer, commitThread: true, batchWaitMs: 2, returnTally: tally, observer: { batch: () => void batches++ } }),
  );
  const text = JSON.stringify([{ type: 'OrderPlaced', data: EVENT_DATA }]);
  return {
    async append(stream, version) {
      const h = hash(stream);
      // What the node's edge does with a request body: parse it, validate and measure the events.
      const sizes: number[] = [];
      const events = validateProposedEvents(JSON.parse(text), DEFAULT_LIMITS, sizes);
      const outcome = await stores[h % STORES]!.appendParsed(`p${h % PARTITIONS}`, stream, { expectedVersion: version - 1, events, sizes });
      if (!outcome.ok) throw new Error(`append failed: ${JSON.stringify(outcome)}`);
    },
    batches: () => batches,
    // The threads started with the stores: their commit threads, and what else they started (little).
    commitThreads: () => [...threadCpu().keys()].filter((t) => !before.has(t)),
    async close() {
      for (const s of stores) await s.close();
    },
  };
}

/** Runs one variant in this process: WRITERS writers on distinct streams; prints one JSON line. */
async function runVariant(variant: Variant): Promise<void> {
  const warmupMs = numberSetting('SKEIN_BENCH_WARMUP_MS', 2_000);
  const durationMs = numberSetting('SKEIN_BENCH_DURATION_MS', 8_000);
  const dir = mkdtempSync(join(tmpdir(), 'skein-layout-'));
  const subject = variant === 'engine' ? engineSubject(dir) : await recordsSubject(variant.split(':')[1]!, dir);
  const versions = new Array<number>(STREAMS).fill(0);
  const busy = new Array<boolean>(STREAMS).fill(false);
  let appends = 0;
  let stop = false;
  const writer = async () => {
    while (!stop) {
      let s = Math.floor(Math.random() * STREAMS);
      while (busy[s]) s = (s + 1) % STREAMS;
      busy[s] = true;
      await subject.append(`order-${s}`, versions[s]! + 1);
      versions[s]!++;
      busy[s] = false;
      appends++;
    }
  };
  const writers = Array.from({ length: WRITERS }, writer);
  await new Promise((r) => setTimeout(r, warmupMs));
  const [a0, b0, cpu0, t0] = [appends, subject.batches(), threadCpu(), performance.now()];
  await new Promise((r) => setTimeout(r, durationMs));
  const [a1, b1, cpu1, t1] = [appends, subject.batches(), threadCpu(), performance.now()];
  const commit = subject.commitThreads();
  stop = true;
  await Promise.all(writers);
  await subject.close();
  rmSync(dir, { recursive: true, force: true });
  const n = a1 - a0;
  const us = (tids: string[]) => (tids.reduce((sum, t) => sum + (cpu1.get(t) ?? 0) - (cpu0.get(t) ?? 0), 0) * 1e6) / n;
  const all = [...cpu1.keys()];
  const main = String(process.pid);
  console.log(
    JSON.stringify({
      variant,
      appendsPerSecond: n / ((t1 - t0) / 1000),
      perBatch: n / (b1 - b0),
      totalUs: us(all),
      mainUs: us([main]),
      commitUs: us(commit),
      otherUs: us(all.filter((t) => t !== main && !commit.includes(t))),
    }),
  );
}

interface Result {
  variant: Variant;
  appendsPerSecond: number;
  perBatch: number;
  totalUs: number;
  mainUs: number;
  commitUs: number;
  otherUs: number;
}

async function bench(): Promise<void> {
  const rounds = numberSetting('SKEIN_BENCH_ROUNDS', 2);
  console.log(machineLine());
  console.log(`workload: ${WRITERS} writers, ${STREAMS} streams over ${STORES} stores (${PARTITIONS} partitions), 1-event appends, ${JSON.stringify(EVENT_DATA).length}-byte data; no HTTP, no Redis; each variant in a fresh process, ${rounds} rounds alternated`);
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const variant of VARIANTS) {
      const out = execFileSync(process.execPath, [...process.execArgv, self], { env: { ...env, SKEIN_LAYOUT_VARIANT: variant }, encoding: 'utf8' });
      const r = JSON.parse(out.trim().split('\n').pop()!) as Result;
      results.push(r);
      console.log(
        `round ${round}  ${variant.padEnd(13)} ${Math.round(r.appendsPerSecond).toLocaleString('en-US').padStart(7)} appends/s  ${r.perBatch.toFixed(1).padStart(4)}/batch  CPU µs/append: total ${r.totalUs.toFixed(1).padStart(6)}  main ${r.mainUs.toFixed(1).padStart(5)}  commit threads ${r.commitUs.toFixed(1).padStart(5)}  other ${r.otherUs.toFixed(1).padStart(5)}`,
      );
    }
  }
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = sorted.length / 2;
    return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!;
  };
  console.log('');
  console.log('median over the rounds, CPU µs per append (total / commit threads):');
  for (const variant of VARIANTS) {
    const mine = results.filter((r) => r.variant === variant);
    console.log(`  ${variant.padEnd(13)} ${median(mine.map((r) => r.totalUs)).toFixed(1).padStart(6)} / ${median(mine.map((r) => r.commitUs)).toFixed(1).padStart(5)}  at ${Math.round(median(mine.map((r) => r.appendsPerSecond))).toLocaleString('en-US')} appends/s`);
  }
}

const variant = env.SKEIN_LAYOUT_VARIANT as Variant | undefined;
if (variant) await runVariant(variant);
else await bench();
