// Commits on a thread of their own (EngineOptions.commitThread): what a node process's
// shards do. Real LMDB files in temp directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { ReturnTally, createEngine, type EngineOptions, type EventStore } from './index.ts';
import { startCommitThread } from './commit-writer.ts';
import { encodeBatch } from './encoded-batch.ts';
import { environmentOptions } from './environment.ts';
import type { Key } from './keys.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function withEngines(options: Partial<EngineOptions>[], fn: (engines: EventStore[]) => Promise<void>): Promise<void> {
  const dirs = options.map(() => mkdtempSync(join(tmpdir(), 'skein-commit-thread-')));
  const engines = options.map((o, i) => createEngine({ path: dirs[i]!, ...o }));
  try {
    await fn(engines);
  } finally {
    await Promise.all(engines.map((e) => e.close()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

const event = (i: number) => ({ type: 'T', data: { i, pad: 'x'.repeat(200) } });

test('batches decided while one commits see its writes: exact versions, idempotent repeats and reads agree', () =>
  withEngines([{ commitThread: true }], async ([e]) => {
    const engine = e!;
    const streams = 20;
    const rounds = 30;
    const versions = new Array<number>(streams).fill(0);
    const positions = new Set<bigint>();
    // Appends arrive over many ticks, so batches overlap commits: every append expects
    // the version the one before it on its stream produced.
    await Promise.all(
      Array.from({ length: streams }, async (_, s) => {
        for (let r = 0; r < rounds; r++) {
          const key = `k-${s}-${r}`;
          const request = { expectedVersion: versions[s]!, events: [event(r)], idempotencyKey: key };
          const first = engine.append('p', `s-${s}`, request);
          // The same request again, in the next tick: a duplicate of the first, whether
          // that one is still committing or already durable.
          await new Promise<void>((r) => setImmediate(r));
          const again = engine.append('p', `s-${s}`, request);
          const [a, b] = await Promise.all([first, again]);
          assert.ok(a.ok && b.ok, `stream ${s} round ${r}: ${JSON.stringify([a, b], (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
          assert.equal(a.firstVersion, r + 1);
          assert.equal(b.duplicate, true);
          assert.equal(b.firstPosition, a.firstPosition);
          assert.ok(!positions.has(a.firstPosition), 'a position given twice');
          positions.add(a.firstPosition);
          versions[s] = a.lastVersion;
          // Acknowledged means readable.
          const read = engine.readStream('p', `s-${s}`, { from: a.firstVersion, limit: 1 });
          assert.ok(read.ok && read.events[0]?.position === a.firstPosition, 'an acknowledged event is not read back');
        }
      }),
    );
    const log = engine.readShardLog({ limit: streams * rounds + 1 });
    assert.equal(log.events.length, streams * rounds);
    assert.deepEqual(
      log.events.map((x) => x.position),
      [...positions].sort((a, b) => (a < b ? -1 : 1)),
    );
  }));

/**
 * Three stores in one process, as a node hosts three shards (with commit threads: their
 * batches gathering for 2 ms, one return tally shared); one has a slow fdatasync
 * (testCommitDelayMs) and two writers. Appends to the other two, made one after another,
 * are timed.
 */
async function latenciesBesideSlowCommits(commitThread: boolean, rounds: number): Promise<{ slow: number[]; others: number[] }> {
  const delayMs = 300;
  const slow: number[] = [];
  const others: number[] = [];
  const node: Partial<EngineOptions> = commitThread ? { commitThread, batchWaitMs: 2, returnTally: new ReturnTally() } : { commitThread };
  await withEngines([{ ...node, testCommitDelayMs: delayMs }, node, node], async (engines) => {
    const [slowEngine, ...fast] = engines;
    // Each commit thread has started (loading its script) before anything is timed.
    await Promise.all(engines.map((e) => e.append('p', 'warm-up', { events: [event(0)] })));
    let running = true;
    // Two writers: the slow store's batches answer two, which the shared tally then expects back.
    const slowLoop = Promise.all([0, 1].map(async (w) => {
      for (let i = 0; running; i++) {
        const started = performance.now();
        const outcome = await slowEngine!.append('p', `slow-${w}-${i % 4}`, { events: [event(i)] });
        assert.ok(outcome.ok);
        slow.push(performance.now() - started);
      }
    }));
    await sleep(50);
    await Promise.all(
      fast.map(async (engine, k) => {
        for (let i = 0; i < rounds; i++) {
          const started = performance.now();
          const outcome = await engine.append('p', `fast-${k}-${i % 8}`, { events: [event(i)] });
          assert.ok(outcome.ok);
          others.push(performance.now() - started);
          await sleep(10);
        }
      }),
    );
    running = false;
    await slowLoop;
  });
  return { slow, others };
}

const summary = (ms: number[]) => {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1);
  return `n=${ms.length} p50=${at(0.5)} ms p99=${at(0.99)} ms max=${sorted[sorted.length - 1]!.toFixed(1)} ms`;
};

test('a slow fdatasync on one store delays no append to the other stores of the process (commit threads)', async () => {
  const { slow, others } = await latenciesBesideSlowCommits(true, 60);
  console.log(`commit threads: slow store ${summary(slow)}; other stores ${summary(others)}`);
  // The delay is real: every commit of the slow store waited it out.
  assert.ok(Math.min(...slow) >= 290, `slow store appends took ${summary(slow)}`);
  // Generous for a loaded machine, yet below one slow commit (300 ms): no append of the
  // other stores ever waited for one.
  const sorted = [...others].sort((a, b) => a - b);
  assert.ok(sorted[Math.floor(sorted.length * 0.99)]! < 150, `other stores' appends: ${summary(others)}`);
});

test('the measurement can fail: with inline commits the slow store stalls the other stores', async () => {
  const { slow, others } = await latenciesBesideSlowCommits(false, 10);
  console.log(`inline commits: slow store ${summary(slow)}; other stores ${summary(others)}`);
  // An inline commit holds the one event loop for its delay: appends to the other stores
  // wait for it (a fast append can slip in between two slow commits, not most of them).
  const sorted = [...others].sort((a, b) => a - b);
  assert.ok(sorted[Math.floor(sorted.length * 0.5)]! >= 150, `other stores' appends: ${summary(others)}`);
});

test('a failed commit is rejected with its code and errno, and the thread answers the next request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-commit-thread-'));
  const writer = startCommitThread({ mapSizeBytes: 64 * 1024 * 1024, testCommitDelayMs: 0 });
  try {
    const db = open<unknown, Key>(environmentOptions(dir, 64 * 1024 * 1024));
    const batch = () => encodeBatch(db, [[['p', 's', 1], { t: 'T' }]]);
    // A regular file where the environment's directory should be.
    const file = join(dir, 'not-a-directory');
    writeFileSync(file, 'x');
    const err = await writer.commit(join(file, 'bucket'), batch()).then(
      () => assert.fail('the commit succeeded'),
      (e: unknown) => e as { code?: unknown; errno?: unknown },
    );
    assert.ok(err.code !== undefined || err.errno !== undefined, `no code or errno on ${String(err)}`);
    await writer.commit(dir, batch());
    db.resetReadTxn();
    assert.deepEqual(db.get(['p', 's', 1]), { t: 'T' });
    await writer.release();
    await db.close();
  } finally {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an idle commit thread does not keep the process alive', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-commit-thread-'));
  try {
    const script = `
      import { createEngine } from ${JSON.stringify(new URL('./index.ts', import.meta.url).href)};
      const engine = createEngine({ path: ${JSON.stringify(dir)}, commitThread: true });
      const outcome = await engine.append('p', 's', { events: [{ type: 'T', data: {} }] });
      if (!outcome.ok) process.exit(3);
      // Not closed: the process ends once the event loop is empty.
    `;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000, encoding: 'utf8' });
    assert.equal(run.signal, null, `the process was still running after 30 s: ${run.stderr}`);
    assert.equal(run.status, 0, run.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
