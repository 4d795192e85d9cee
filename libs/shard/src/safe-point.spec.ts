import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CommittedAppend, WriterState } from '@skein/engine';
import { createSafePointTracker } from './safe-point.ts';

/** A writer state and a counter the test moves by hand; `current()` answers when released. */
function fixture() {
  const state: WriterState = { allocating: false, lowestUncommitted: null, highestCommitted: 0n };
  let counter = 0n;
  const pendingReads: (() => void)[] = [];
  let reads = 0;
  return {
    state,
    setCounter: (c: bigint) => (counter = c),
    get reads() {
      return reads;
    },
    /** Answers every read in flight with the counter as it is now. */
    release: () => pendingReads.splice(0).forEach((r) => r()),
    engine: { writerState: () => ({ ...state }) },
    sequencer: {
      current: () => {
        reads++;
        return new Promise<bigint>((resolve) => pendingReads.push(() => resolve(counter)));
      },
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

test('an idle shard takes a fresh counter read as its safe point', async () => {
  const f = fixture();
  const t = createSafePointTracker(f);
  f.setCounter(40n);
  const p = t.refresh();
  await tick();
  f.release();
  assert.equal(await p, 40n);
});

test('with an allocation in flight the safe point does not pass the highest committed position, and no counter is read', async () => {
  const f = fixture();
  f.state.highestCommitted = 10n;
  f.state.allocating = true;
  f.setCounter(100n);
  const t = createSafePointTracker(f);
  assert.equal(await t.refresh(), 10n);
  assert.equal(f.reads, 0);
});

test('with a known uncommitted range [a, b] the safe point is a − 1', async () => {
  const f = fixture();
  f.state.highestCommitted = 10n;
  f.state.lowestUncommitted = 21n;
  const t = createSafePointTracker(f);
  assert.equal(await t.refresh(), 20n);
});

test('a counter read is not used when an allocation started while it was in flight', async () => {
  const f = fixture();
  f.state.highestCommitted = 10n;
  const t = createSafePointTracker(f);
  f.setCounter(50n);
  const p = t.refresh();
  await tick();
  // The allocation was sent after the read; if it ran first it holds positions ≤ 50.
  f.state.allocating = true;
  f.release();
  assert.equal(await p, 10n);
  // Its range became known but is not committed: capped below it.
  f.state.allocating = false;
  f.state.lowestUncommitted = 45n;
  const q = t.refresh();
  await tick();
  assert.equal(await q, 44n);
});

test('a counter read capped by a range that became known while it was in flight', async () => {
  const f = fixture();
  const t = createSafePointTracker(f);
  f.setCounter(50n);
  const p = t.refresh();
  await tick();
  f.state.lowestUncommitted = 31n;
  f.release();
  assert.equal(await p, 30n);
});

test('the safe point never decreases, even when the counter reads lower (Redis lost data)', async () => {
  const f = fixture();
  const t = createSafePointTracker(f);
  f.setCounter(70n);
  let p = t.refresh();
  await tick();
  f.release();
  assert.equal(await p, 70n);
  f.setCounter(5n);
  p = t.refresh();
  await tick();
  f.release();
  assert.equal(await p, 70n);
  assert.equal(t.current(), 70n);
});

test('a value not yet on disk is published only after the durable bound caught up', async () => {
  const f = fixture();
  let bound = 20n;
  let flushes = 0;
  const t = createSafePointTracker({
    ...f,
    durable: {
      bound: () => bound,
      flush: async () => {
        flushes++;
        bound = 60n;
      },
    },
  });
  f.setCounter(80n);
  const advanced = new Promise<bigint>((resolve) => t.onAdvance((v) => v > 20n && resolve(v)));
  const p = t.refresh();
  await tick();
  f.release();
  // The refresh does not wait for the fsync (it took up to 700 ms under write load): it
  // answers what is on disk, and the flush publishes the rest as it completes.
  assert.equal(await p, 20n, 'capped at what is on disk');
  assert.equal(await advanced, 60n, 'capped at what is on disk after the flush');
  assert.equal(t.current(), 60n);
  assert.equal(flushes, 1);
});

test('a commit publishes its position as it is answered, and waiters wake without a refresh', async () => {
  const f = fixture();
  let onCommit: ((appends: readonly CommittedAppend[]) => void) | undefined;
  const engine = {
    writerState: f.engine.writerState,
    onCommit: (l: (appends: readonly CommittedAppend[]) => void) => {
      onCommit = l;
      return () => {
        onCommit = undefined;
      };
    },
  };
  // Counter reads never answer: only the commit can move the safe point.
  const t = createSafePointTracker({ engine, sequencer: f.sequencer });
  const seen: bigint[] = [];
  t.onAdvance((v) => seen.push(v));
  f.state.allocating = true; // the next batch is being allocated: no counter read is made
  const waiting = t.waitFor(12n, 10_000);
  f.state.highestCommitted = 12n;
  onCommit!([]);
  assert.equal(t.current(), 12n, 'published in the commit listener itself');
  assert.equal(await waiting, 12n);
  assert.deepEqual(seen, [12n]);
  t.stop();
  assert.equal(onCommit, undefined, 'stop() leaves the engine');
});

test('the initial safe point (persisted high-water at start) is kept, and concurrent refreshes share one read', async () => {
  const f = fixture();
  const t = createSafePointTracker(f, { initial: 33n });
  assert.equal(t.current(), 33n);
  f.setCounter(90n);
  const a = t.refresh();
  const b = t.refresh();
  await tick();
  f.release();
  assert.deepEqual(await Promise.all([a, b]), [90n, 90n]);
  assert.equal(f.reads, 1);
});

test('waitFor resolves once the safe point reaches the position, or with what it is at the deadline', async () => {
  const f = fixture();
  const t = createSafePointTracker({ engine: f.engine, sequencer: { current: async () => f.state.highestCommitted } });
  const waiting = t.waitFor(5n, 1000);
  setTimeout(() => (f.state.highestCommitted = 7n), 20);
  assert.equal(await waiting, 7n);
  const started = performance.now();
  assert.equal(await t.waitFor(100n, 50), 7n);
  assert.ok(performance.now() - started >= 45);
});
