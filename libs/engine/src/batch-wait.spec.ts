// Gathering batches (EngineOptions.batchWaitMs): writers that each wait for their answer
// and write again share the next batch, instead of trickling into several.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sequencer } from '@skein/protocol';
import { ReturnTally, createEngine, type EventStore } from './index.ts';

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

/**
 * A sequencer whose every allocation takes `delayMs` (a Redis round trip with an AOF
 * fsync, slowed down), recording each one: its count and when it was asked for.
 */
function slowSequencer(delayMs: number) {
  let counter = 0n;
  const asked: Array<{ count: number; at: number; first: bigint; last: bigint }> = [];
  const sequencer: Sequencer = {
    async allocate(count, floor) {
      const at = performance.now();
      await sleep(delayMs);
      const first = (counter > floor ? counter : floor) + 1n;
      counter = first + BigInt(count) - 1n;
      asked.push({ count, at, first, last: counter });
      return { first, last: counter };
    },
    current: async () => counter,
    close: async () => undefined,
  };
  return { sequencer, asked };
}

for (const commitThread of [false, true]) {
  const mode = commitThread ? 'on a commit thread' : 'inline';
  test(`${mode}: while a batch gathers, its positions are allocated ahead; it takes the first it needs, a rest too small for the next is released (a gap), and nothing stays allocated once idle`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skein-batch-ahead-'));
    const { sequencer, asked } = slowSequencer(40);
    const e = createEngine({ path: dir, batchWaitMs: 300, commitThread, sequencer });
    try {
      const writers = [0, 1, 2, 3];
      await Promise.all(writers.map((w) => e.append('p', `s-${w}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: w }] })));
      assert.equal(asked.length, 1);
      let answeredAt = performance.now();
      // The writers come back one by one, the last 60 ms later: the allocation was asked
      // for as the gathering began, not once the batch was whole.
      const round = (version: number) =>
        within(4_000, Promise.all(writers.map(async (w) => {
          await sleep(20 * w);
          const outcome = await e.append('p', `s-${w}`, { expectedVersion: version, events: [{ type: 'B', data: w }] });
          assert.equal(outcome.ok, true);
          return outcome.ok ? outcome.firstPosition : -1n;
        })), `round ${version}`);
      const sorted = (xs: bigint[]) => [...xs].sort((a, b) => Number(a - b));
      for (const version of [1, 2]) {
        const positions = await round(version);
        assert.equal(asked.length, 1 + version, 'one allocation per round');
        const ahead = asked[version]!;
        assert.ok(ahead.at - answeredAt < 30, `allocated ${(ahead.at - answeredAt).toFixed(1)} ms after the answer, before the writers came back`);
        // 4 writers came back, 1 event each: 4 × 1.25 + 1 positions asked for, the first 4 used.
        assert.equal(ahead.count, 6);
        assert.deepEqual(sorted(positions), [ahead.first, ahead.first + 1n, ahead.first + 2n, ahead.first + 3n]);
        answeredAt = performance.now();
      }
      // Nobody comes back: once the gathering gives up, what is held is released.
      await sleep(500);
      const last = asked[2]!;
      assert.deepEqual(e.writerState(), { allocating: false, lowestUncommitted: null, highestCommitted: last.first + 3n });
      const late = await within(4_000, e.append('p', 'late', { expectedVersion: 'no_stream', events: [{ type: 'C', data: 0 }] }), 'a later writer');
      assert.ok(late.ok && late.firstPosition > last.last, 'positions keep increasing past the gap');
      await sleep(100);
      assert.deepEqual(e.writerState(), { allocating: false, lowestUncommitted: null, highestCommitted: late.ok ? late.lastPosition : -1n });
      // Read back in global order: every event once, positions increasing, the gaps skipped.
      const all = e.readShardLog({ limit: 100 }).events.map((x) => x.position);
      assert.equal(all.length, 13);
      assert.deepEqual(all, sorted(all));
    } finally {
      await e.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${mode}: a batch larger than the range allocated ahead allocates again; positions stay unique and increasing`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skein-batch-ahead-'));
    const { sequencer, asked } = slowSequencer(10);
    const e = createEngine({ path: dir, batchWaitMs: 200, commitThread, sequencer });
    try {
      await Promise.all([0, 1].map((w) => e.append('p', `s-${w}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: w }] })));
      // Two answered, 2 × 1.25 + 1 = 4 positions ahead as the gathering begins; 20 ms
      // later 8 writers of 2 events each arrive.
      await sleep(20);
      const outcomes = await within(4_000, Promise.all(Array.from({ length: 8 }, (_, w) => e.append('p', `t-${w}`, { events: [{ type: 'B', data: w }, { type: 'B', data: w }] }))), 'eight writers');
      const firsts = outcomes.map((o) => (o.ok ? o.firstPosition : -1n));
      assert.equal(new Set(firsts).size, 8);
      assert.ok(asked.some((a) => a.count === 4), `a range was allocated ahead: ${JSON.stringify(asked.map((a) => a.count))}`);
      assert.ok(asked.some((a) => a.count === 16), 'the batch allocated its own');
      const all = e.readShardLog({ limit: 100 }).events.map((x) => x.position);
      assert.equal(all.length, 18);
      assert.equal(new Set(all).size, 18);
      assert.deepEqual(all, [...all].sort((a, b) => Number(a - b)));
    } finally {
      await e.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * Two stores, as two shards of a node: four writers are answered by `a`, then two of them
 * write to `a` again and two to `b` (their next streams live there). How long `a`'s
 * gathering holds its two.
 */
async function writersMoveBetweenStores(shared: boolean): Promise<number> {
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'skein-tally-')));
  const tally = shared ? new ReturnTally() : undefined;
  const [a, b] = dirs.map((path) => createEngine({ path, batchWaitMs: 5_000, commitThread: true, ...(tally ? { returnTally: tally } : {}) }));
  try {
    const writers = [0, 1, 2, 3];
    await Promise.all(writers.map((w) => a!.append('p', `s-${w}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: w }] })));
    const started = performance.now();
    await within(
      10_000,
      Promise.all(writers.map(async (w) => {
        const outcome = w < 2 ? await a!.append('p', `s-${w}`, { expectedVersion: 1, events: [{ type: 'B', data: w }] }) : await b!.append('p', `t-${w}`, { expectedVersion: 'no_stream', events: [{ type: 'B', data: w }] });
        assert.equal(outcome.ok, true);
      })),
      'the second round',
    );
    return performance.now() - started;
  } finally {
    await Promise.all([a!.close(), b!.close()]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

test('stores sharing a return tally: a gathering ends once every writer it answered is back in any of them, not on its timer', async () => {
  const ms = await writersMoveBetweenStores(true);
  assert.ok(ms < 2_500, `the round took ${ms.toFixed(0)} ms against a 5,000 ms batch wait`);
  // The control: counting only its own writers, `a` waits for two that went to `b` until its timer (timers never fire early).
  const alone = await writersMoveBetweenStores(false);
  assert.ok(alone >= 4_900, `without the shared tally the round took ${alone.toFixed(0)} ms`);
});

test('a return tally: counts arrivals against writers answered, wakes waiters once all are back, and forgives those missing', () => {
  const tally = new ReturnTally();
  assert.equal(tally.allBack, true);
  let woken = 0;
  tally.answered(3);
  tally.whenAllBack(() => woken++);
  tally.arrived();
  tally.arrived();
  assert.equal(woken, 0);
  assert.equal(tally.allBack, false);
  tally.arrived();
  assert.equal(woken, 1);
  // Extra arrivals (new writers) do not count for writers answered later.
  tally.arrived();
  tally.answered(2);
  tally.arrived();
  assert.equal(tally.allBack, false);
  const cancel = tally.whenAllBack(() => woken++);
  cancel();
  const mark = tally.mark();
  tally.whenAllBack(() => woken++);
  // Another store answers 3 more before the first gathering gives up.
  tally.answered(3);
  tally.forgive(mark);
  assert.equal(woken, 1, 'the writers answered after the gathering began are still waited for');
  assert.equal(tally.allBack, false);
  for (let i = 0; i < 3; i++) tally.arrived();
  assert.equal(woken, 2);
  assert.equal(tally.allBack, true);
  // A mark of an epoch that ended forgives nothing of the next one.
  tally.answered(2);
  tally.forgive(mark);
  assert.equal(tally.allBack, false);
  tally.forgive(tally.mark());
  assert.equal(tally.allBack, true);
  tally.whenAllBack(() => woken++);
  assert.equal(woken, 3, 'called at once when everyone is back');
});

test('stores sharing a return tally: one store giving up on writers that went away does not break up another store\'s gathering', async () => {
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'skein-tally-')));
  const tally = new ReturnTally();
  const bBatches: number[] = [];
  const [a, b] = dirs.map((path, i) => createEngine({ path, batchWaitMs: 3_000, returnTally: tally, ...(i === 1 ? { observer: { batch: (x) => bBatches.push(x.ops) } } : {}) }));
  try {
    // `a` answers 12 writers; 6 come back, 6 went away: `a` waits out its 3 s timer.
    const twelve = Array.from({ length: 12 }, (_, i) => i);
    const roundA = (async () => {
      await Promise.all(twelve.map((i) => a!.append('p', `a-${i}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: i }] })));
      await Promise.all(twelve.slice(0, 6).map((i) => a!.append('p', `a-${i}`, { expectedVersion: 1, events: [{ type: 'B', data: i }] })));
    })();
    // `b` answers 4 writers 0.5 s later; they come back 2.7 s after that: after `a` gave up
    // (~3 s), within `b`'s own wait (~3.5 s).
    await sleep(500);
    const four = [0, 1, 2, 3];
    await Promise.all(four.map((i) => b!.append('p', `b-${i}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: i }] })));
    const before = bBatches.length;
    await within(10_000, Promise.all(four.map(async (i) => {
      await sleep(2_700 + 10 * i);
      assert.equal((await b!.append('p', `b-${i}`, { expectedVersion: 1, events: [{ type: 'B', data: i }] })).ok, true);
    })), 'b\'s second round');
    assert.deepEqual(bBatches.slice(before), [4], 'b\'s returning writers shared one batch');
    await roundA;
  } finally {
    await Promise.all([a!.close(), b!.close()]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
});

for (const commitThread of [false, true]) {
  test(`${commitThread ? 'on a commit thread' : 'inline'}: closing with writers in flight answers them and does not gather for callers that can no longer write`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skein-tally-'));
    const e = createEngine({ path: dir, batchWaitMs: 60_000, commitThread, returnTally: new ReturnTally() });
    try {
      await e.append('p', 'warm', { expectedVersion: 'no_stream', events: [{ type: 'W', data: 0 }] });
      const writes = [0, 1, 2, 3].map((i) => e.append('p', `s-${i}`, { expectedVersion: 'no_stream', events: [{ type: 'A', data: i }] }));
      await within(10_000, e.close(), 'close with a 60 s batch wait');
      for (const outcome of await Promise.all(writes)) assert.equal(outcome.ok, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
