// Gathering batches (EngineOptions.batchWaitMs): writers that each wait for their answer
// and write again share the next batch, instead of trickling into several.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, type EventStore } from './index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails instead of hanging when `promise` takes longer than `ms` (a liveness bound, not a speed figure). */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function withEngine(batchWaitMs: number, fn: (e: EventStore, batches: number[]) => Promise<void>, commitThread = false) {
  const dir = mkdtempSync(join(tmpdir(), 'skein-batch-wait-'));
  const batches: number[] = [];
  const engine = createEngine({ path: dir, batchWaitMs, commitThread, observer: { batch: (b) => batches.push(b.ops) } });
  try {
    await fn(engine, batches);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Four writers append together (one batch), then each appends again after a pause of its
 * own (0, 5, 10, 15 ms): the second round's batch sizes.
 */
async function secondRound(e: EventStore, batches: number[], comeBack = 4): Promise<number[]> {
  const writers = [0, 1, 2, 3];
  await Promise.all(writers.map((w) => e.append('p', `s-${w}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: w }] })));
  const before = batches.length;
  await Promise.all(
    writers.slice(0, comeBack).map(async (w) => {
      await sleep(5 * w);
      const outcome = await e.append('p', `s-${w}`, { expectedVersion: 1, events: [{ type: 'B', data: w }] });
      assert.equal(outcome.ok, true);
    }),
  );
  return batches.slice(before);
}

for (const commitThread of [false, true]) {
  const mode = commitThread ? 'on a commit thread' : 'inline';
  test(`${mode}: writers coming back within batchWaitMs share one batch; without the wait they split`, async () => {
    await withEngine(5_000, async (e, batches) => {
      assert.deepEqual(await within(4_000, secondRound(e, batches), 'the gathered round'), [4]);
    }, commitThread);
    // The control: the same round without the wait is written in more than one batch.
    await withEngine(0, async (e, batches) => {
      assert.ok((await secondRound(e, batches)).length > 1);
    }, commitThread);
  });

  test(`${mode}: a batch waits at most batchWaitMs for writers that do not come back`, () =>
    withEngine(100, async (e, batches) => {
      const round = await within(4_000, secondRound(e, batches, 3), 'a round missing a writer');
      assert.equal(round.reduce((a, b) => a + b, 0), 3);
    }, commitThread));

  test(`${mode}: a lone writer never waits`, () =>
    withEngine(60_000, async (e) => {
      await within(
        10_000,
        (async () => {
          for (let v = 0; v < 20; v++) assert.equal((await e.append('p', 'solo', { expectedVersion: v, events: [{ type: 'A', data: v }] })).ok, true);
        })(),
        '20 appends of one writer with a 60 s batch wait',
      );
    }, commitThread));
}
