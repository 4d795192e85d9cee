import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SkeinError, isSkeinError, type PositionRange, type Sequencer } from '@skein/protocol';
import { createEngine, type EngineOptions, type EventStore } from './index.ts';

const ID1 = '6f1c2b4e-8f0a-4a57-9d7e-2b1c3d4e5f60';
const ID2 = '7f1c2b4e-8f0a-4a57-9d7e-2b1c3d4e5f61';

async function withEngine(fn: (e: EventStore, dir: string) => Promise<void>, options: Partial<EngineOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'skein-engine-'));
  const engine = createEngine({ path: dir, ...options });
  try {
    await fn(engine, dir);
  } finally {
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function ok<T extends { ok: boolean }>(outcome: T): Extract<T, { ok: true }> {
  assert.equal(outcome.ok, true, `expected success, got ${JSON.stringify(outcome, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  return outcome as Extract<T, { ok: true }>;
}

async function rejectsWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (err: unknown) => isSkeinError(err) && err.code === code);
}

test('appends number versions from 1 and positions increasing, atomically per request', () =>
  withEngine(async (e) => {
    const a = ok(await e.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }, { type: 'B', data: 2 }] }));
    assert.deepEqual([a.firstVersion, a.lastVersion, a.firstPosition, a.lastPosition], [1, 2, 1n, 2n]);
    const b = ok(await e.append('acme', 'order-1', { expectedVersion: 2, events: [{ type: 'C', data: 3 }] }));
    assert.deepEqual([b.firstVersion, b.lastVersion, b.firstPosition], [3, 3, 3n]);
    const read = ok(e.readStream('acme', 'order-1'));
    assert.deepEqual(read.events.map((x) => [x.version, x.type, x.position]), [[1, 'A', 1n], [2, 'B', 2n], [3, 'C', 3n]]);
  }));

test('rejects a second writer at the same version with WRONG_EXPECTED_VERSION, as a value', () =>
  withEngine(async (e) => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => e.append('acme', 'order-1', { expectedVersion: 'no_stream', events: [{ type: 'A', data: i }] })),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
    for (const r of results.filter((r) => !r.ok)) assert.deepEqual(r, { ok: false, code: 'WRONG_EXPECTED_VERSION', expected: 'no_stream', actual: 1 });
  }));

test('an Idempotency-Key returns the original result; the same key with another request is refused', () =>
  withEngine(async (e) => {
    const req = { idempotencyKey: 'key-1', events: [{ type: 'A', data: { n: 1 } }] };
    const [first, racing] = await Promise.all([e.append('acme', 's-1', req), e.append('acme', 's-1', req)]);
    const original = ok(first);
    assert.deepEqual(racing, { ...original, duplicate: true });
    assert.deepEqual(await e.append('acme', 's-1', req), { ...original, duplicate: true });
    assert.deepEqual(await e.append('acme', 's-1', { ...req, events: [{ type: 'A', data: { n: 2 } }] }), { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
    assert.equal(ok(e.readStream('acme', 's-1')).version, 1);
  }));

test('idempotency keys are forgotten after the window', async () => {
  let now = Date.UTC(2026, 10, 27, 10);
  await withEngine(
    async (e) => {
      const req = { idempotencyKey: 'key-1', events: [{ type: 'A', data: 1 }] };
      ok(await e.append('acme', 's-1', req));
      now += 60_001;
      const again = ok(await e.append('acme', 's-1', req));
      assert.equal(again.duplicate, undefined);
      assert.equal(again.firstVersion, 2);
    },
    { clock: () => now, idempotencyWindowMs: 60_000 },
  );
});

test('event ids with an exact expected version make a retry a duplicate, a mismatch a conflict', () =>
  withEngine(async (e) => {
    const req = { expectedVersion: 'no_stream' as const, events: [{ id: ID1, type: 'A', data: 1 }, { id: ID2, type: 'A', data: 2 }] };
    const original = ok(await e.append('acme', 's-1', req));
    assert.deepEqual(await e.append('acme', 's-1', req), { ...original, duplicate: true });
    assert.deepEqual(await e.append('acme', 's-1', { ...req, events: [{ id: ID2, type: 'A', data: 1 }] }), {
      ok: false,
      code: 'WRONG_EXPECTED_VERSION',
      expected: 'no_stream',
      actual: 2,
    });
    // With `any` there is no version to compare against: it appends again.
    assert.equal(ok(await e.append('acme', 's-1', { events: req.events })).firstVersion, 3);
  }));

test('a soft-deleted stream reads as missing until its next append, which continues the numbering', () =>
  withEngine(async (e) => {
    ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 2 }] }));
    assert.deepEqual(await e.deleteStream('acme', 's-1', { mode: 'soft', expectedVersion: 2 }), { ok: true });
    assert.deepEqual(e.readStream('acme', 's-1'), { ok: false, code: 'STREAM_NOT_FOUND' });
    assert.deepEqual(await e.deleteStream('acme', 's-1'), { ok: false, code: 'STREAM_NOT_FOUND' });
    const next = ok(await e.append('acme', 's-1', { expectedVersion: 'no_stream', events: [{ type: 'B', data: 3 }] }));
    assert.equal(next.firstVersion, 3);
    const read = ok(e.readStream('acme', 's-1'));
    assert.deepEqual(read.events.map((x) => x.version), [3]);
    // The log in global order keeps showing the hidden events.
    assert.equal(e.readPartitionLog('acme').events.length, 3);
  }));

test('a hard-deleted stream is gone for good: reads and appends get STREAM_DELETED', () =>
  withEngine(async (e) => {
    ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }));
    assert.deepEqual(await e.deleteStream('acme', 's-1', { mode: 'hard', expectedVersion: 0 }), {
      ok: false,
      code: 'WRONG_EXPECTED_VERSION',
      expected: 0,
      actual: 1,
    });
    assert.deepEqual(await e.deleteStream('acme', 's-1', { mode: 'hard' }), { ok: true });
    assert.deepEqual(e.readStream('acme', 's-1'), { ok: false, code: 'STREAM_DELETED' });
    assert.deepEqual(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }), { ok: false, code: 'STREAM_DELETED' });
    assert.deepEqual(await e.deleteStream('acme', 's-1', { mode: 'hard' }), { ok: false, code: 'STREAM_DELETED' });
    assert.deepEqual(await e.deleteStream('acme', 'never'), { ok: false, code: 'STREAM_NOT_FOUND' });
  }));

test('stream metadata limits what stream reads return, at once', async () => {
  let now = Date.UTC(2026, 10, 27, 10);
  await withEngine(
    async (e) => {
      ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 2 }] }));
      now += 10_000;
      ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 3 }, { type: 'A', data: 4 }, { type: 'A', data: 5 }] }));
      const versions = () => ok(e.readStream('acme', 's-1')).events.map((x) => x.version);
      assert.deepEqual(await e.setMetadata('acme', 's-1', { maxCount: 4 }), { ok: true });
      assert.deepEqual(versions(), [2, 3, 4, 5]);
      ok(await e.setMetadata('acme', 's-1', { truncateBefore: 4, custom: { owner: 'x' } }));
      assert.deepEqual(versions(), [4, 5]);
      assert.deepEqual(e.getMetadata('acme', 's-1'), { truncateBefore: 4, custom: { owner: 'x' } });
      ok(await e.setMetadata('acme', 's-1', { maxAge: 5 }));
      assert.deepEqual(versions(), [3, 4, 5]);
      await rejectsWith(e.setMetadata('acme', 's-1', { maxAge: -1 }), 'VALIDATION_FAILED');
      await rejectsWith(e.setMetadata('acme', 's-1', { bogus: 1 } as never), 'VALIDATION_FAILED');
    },
    { clock: () => now },
  );
});

test('stream reads page forward and backward with next', () =>
  withEngine(async (e) => {
    ok(await e.append('acme', 's-1', { events: Array.from({ length: 7 }, (_, i) => ({ type: 'A', data: i })) }));
    const f1 = ok(e.readStream('acme', 's-1', { limit: 3 }));
    assert.deepEqual([f1.events.map((x) => x.version), f1.next], [[1, 2, 3], 4]);
    const f3 = ok(e.readStream('acme', 's-1', { from: 7, limit: 3 }));
    assert.deepEqual([f3.events.map((x) => x.version), f3.next], [[7], null]);
    const b1 = ok(e.readStream('acme', 's-1', { direction: 'backward', limit: 3 }));
    assert.deepEqual([b1.events.map((x) => x.version), b1.next], [[7, 6, 5], 4]);
    const b3 = ok(e.readStream('acme', 's-1', { direction: 'backward', from: 1, limit: 3 }));
    assert.deepEqual([b3.events.map((x) => x.version), b3.next], [[1], null]);
    assert.deepEqual(e.readStream('acme', 'nope'), { ok: false, code: 'STREAM_NOT_FOUND' });
  }));

test('logs in global order filter by category and types and page with next', () =>
  withEngine(async (e) => {
    ok(await e.append('acme', 'order-1', { events: [{ type: 'Placed', data: 1 }, { type: 'Paid', data: 1 }] }));
    ok(await e.append('acme', 'user-1', { events: [{ type: 'Joined', data: 1 }] }));
    ok(await e.append('other', 'order-9', { events: [{ type: 'Placed', data: 1 }] }));
    ok(await e.append('acme', 'order-2', { events: [{ type: 'Placed', data: 1 }] }));
    const orders = e.readPartitionLog('acme', { category: 'order' });
    assert.deepEqual(orders.events.map((x) => [x.position, x.streamId]), [[1n, 'order-1'], [2n, 'order-1'], [5n, 'order-2']]);
    assert.equal(orders.next, 6n);
    const placed = e.readPartitionLog('acme', { types: ['Placed'], fromPosition: 2n });
    assert.deepEqual(placed.events.map((x) => x.position), [5n]);
    const page = e.readShardLog({ fromPosition: 2n, limit: 2 });
    assert.deepEqual(page.events.map((x) => [x.position, x.partition]), [[2n, 'acme'], [3n, 'acme']]);
    assert.equal(page.next, 4n);
    assert.deepEqual(e.readShardLog({ fromPosition: 3n, toPosition: 4n }).events.map((x) => x.position), [3n, 4n]);
    assert.deepEqual(e.readShardLog({ fromPosition: 9n }), { events: [], next: 9n });
  }));

test('snapshots: latest wins, refused beyond the stream version or on a missing stream', () =>
  withEngine(async (e) => {
    assert.deepEqual(await e.putSnapshot('acme', 's-1', 1, { x: 1 }), { ok: false, code: 'STREAM_NOT_FOUND' });
    ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 2 }] }));
    ok(await e.putSnapshot('acme', 's-1', 2, { total: 2 }));
    ok(await e.putSnapshot('acme', 's-1', 1, { total: 1 }));
    assert.deepEqual(e.latestSnapshot('acme', 's-1'), { version: 2, data: { total: 2 } });
    assert.equal((await e.putSnapshot('acme', 's-1', 3, {})).ok, false);
    assert.equal(e.latestSnapshot('acme', 's-2'), null);
  }));

test('bad input is refused with its registry code and writes nothing', () =>
  withEngine(async (e) => {
    const huge = 'x'.repeat(1024 * 1024 + 1);
    await rejectsWith(e.append('acme', 's-1', { events: [{ type: 'A', data: huge }] }), 'PAYLOAD_TOO_LARGE');
    await rejectsWith(e.append('acme', 's-1', { events: [] }), 'VALIDATION_FAILED');
    await rejectsWith(e.append('acme', '', { events: [{ type: 'A', data: 1 }] }), 'VALIDATION_FAILED');
    await rejectsWith(e.append('acme', 'a\u0000b', { events: [{ type: 'A', data: 1 }] }), 'VALIDATION_FAILED');
    await rejectsWith(e.append('Bad Tenant', 's-1', { events: [{ type: 'A', data: 1 }] }), 'VALIDATION_FAILED');
    await rejectsWith(e.append('acme', 's-1', { events: [{ type: '', data: 1 }] }), 'VALIDATION_FAILED');
    await rejectsWith(e.append('acme', 's-1', { events: [{ type: 'A', data: undefined }] }), 'VALIDATION_FAILED');
    await rejectsWith(e.append('acme', 's-1', { events: [{ id: 'not-a-uuid', type: 'A', data: 1 }] }), 'VALIDATION_FAILED');
    for (const expectedVersion of [-1, 1.5, 'latest', null, '7']) {
      await rejectsWith(e.append('acme', 's-1', { expectedVersion: expectedVersion as never, events: [{ type: 'A', data: 1 }] }), 'VALIDATION_FAILED');
    }
    await rejectsWith(e.append('acme', 's-1', { idempotencyKey: 'has space', events: [{ type: 'A', data: 1 }] }), 'VALIDATION_FAILED');
    await rejectsWith(e.deleteStream('acme', 's-1', { mode: 'wipe' as never }), 'VALIDATION_FAILED');
    assert.throws(() => e.readStream('acme', 's-1', { limit: 0 }), (err: unknown) => isSkeinError(err, 'VALIDATION_FAILED'));
    assert.deepEqual(e.readShardLog(), { events: [], next: 0n });
    assert.deepEqual(e.streamState('acme', 's-1'), { version: 0, deleted: 'no' });
  }));

function scriptedSequencer(answers: ((count: number, floor: bigint) => Promise<PositionRange>)[]): Sequencer {
  let i = 0;
  return {
    allocate: (count, floor) => answers[Math.min(i++, answers.length - 1)]!(count, floor),
    current: async () => 0n,
    close: async () => {},
  };
}

test('a sequencer that fails or returns a range that does not fit makes the append fail and writes nothing', () =>
  withEngine(
    async (e) => {
      await rejectsWith(e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }), 'UNAVAILABLE');
      await rejectsWith(e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 1 }] }), 'INTERNAL');
      await rejectsWith(e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }), 'INTERNAL');
      assert.deepEqual(e.streamState('acme', 's-1'), { version: 0, deleted: 'no' });
      assert.deepEqual(e.readShardLog().events, []);
      const r = ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }));
      assert.equal(r.firstPosition, 10n);
    },
    {
      sequencer: scriptedSequencer([
        async () => {
          throw new SkeinError('UNAVAILABLE', 'redis down');
        },
        async () => ({ first: 5n, last: 5n }), // one position for two events
        async () => ({ first: 0n, last: 0n }), // not above the floor
        async (count, floor) => ({ first: floor + 10n, last: floor + 9n + BigInt(count) }),
      ]),
    },
  ));

test('ops queued while a batch allocates form the next batch; a failed batch fails only its own ops', async () => {
  let failFirst!: () => void;
  const firstGate = new Promise<void>((r) => (failFirst = r));
  const counts: number[] = [];
  await withEngine(
    async (e) => {
      const first = e.append('acme', 's-1', { expectedVersion: 'no_stream', events: [{ type: 'A', data: 1 }] });
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(e.writerState().allocating, true);
      const second = e.append('acme', 's-1', { expectedVersion: 'no_stream', events: [{ type: 'B', data: 2 }] });
      const third = e.append('acme', 's-2', { events: [{ type: 'C', data: 3 }, { type: 'D', data: 4 }] });
      failFirst();
      await rejectsWith(first, 'UNAVAILABLE');
      assert.equal(ok(await second).firstPosition, 20n);
      assert.equal(ok(await third).firstPosition, 21n);
      assert.deepEqual(e.readShardLog().events.map((ev) => [ev.streamId, ev.type, ev.position]), [
        ['s-1', 'B', 20n],
        ['s-2', 'C', 21n],
        ['s-2', 'D', 22n],
      ]);
    },
    {
      sequencer: scriptedSequencer([
        async (count) => {
          counts.push(count);
          await firstGate;
          throw new SkeinError('UNAVAILABLE', 'redis went away');
        },
        async (count) => {
          counts.push(count);
          return { first: 20n, last: 19n + BigInt(count) };
        },
      ]),
    },
  );
  assert.deepEqual(counts, [1, 3], 'one allocation per batch, the second for both queued appends');
});

test('positions are exact beyond 2^53', () =>
  withEngine(
    async (e) => {
      const r = ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 2 }] }));
      assert.equal(r.firstPosition, 2n ** 60n + 1n);
      assert.deepEqual(e.readShardLog({ fromPosition: 2n ** 60n + 2n }).events.map((x) => x.position), [2n ** 60n + 2n]);
      assert.deepEqual(ok(e.readStream('acme', 's-1')).events.map((x) => x.position), [2n ** 60n + 1n, 2n ** 60n + 2n]);
    },
    { sequencer: scriptedSequencer([async (count) => ({ first: 2n ** 60n + 1n, last: 2n ** 60n + BigInt(count) })]) },
  ));

test('new buckets open as time passes; reads span them and the store reopens with everything', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-buckets-'));
  let now = Date.UTC(2026, 10, 27, 10, 30);
  const open = () => createEngine({ path: dir, bucketSpan: 'hour', clock: () => now });
  let e = open();
  try {
    ok(await e.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }] }));
    now += 3_600_000;
    ok(await e.append('acme', 'order-1', { expectedVersion: 1, events: [{ type: 'A', data: 2 }] }));
    ok(await e.append('acme', 'order-2', { events: [{ type: 'A', data: 3 }] }));
    now -= 7_200_000; // a clock going back never writes into an older bucket
    ok(await e.append('acme', 'order-1', { expectedVersion: 2, events: [{ type: 'A', data: 4 }] }));
    assert.deepEqual(e.environmentSizes().map((b) => b.id), ['2026-11-27T10', '2026-11-27T11']);
    await e.close();
    e = open();
    assert.deepEqual(ok(e.readStream('acme', 'order-1')).events.map((x) => [x.version, x.data]), [[1, 1], [2, 2], [3, 4]]);
    assert.deepEqual(ok(e.readStream('acme', 'order-1', { direction: 'backward' })).events.map((x) => x.version), [3, 2, 1]);
    assert.deepEqual(e.readShardLog().events.map((x) => x.position), [1n, 2n, 3n, 4n]);
    assert.deepEqual(e.readPartitionLog('acme', { fromPosition: 2n, limit: 2 }).events.map((x) => x.position), [2n, 3n]);
    // Versions continue and positions never repeat after a reopen.
    const r = ok(await e.append('acme', 'order-1', { expectedVersion: 3, events: [{ type: 'A', data: 5 }] }));
    assert.deepEqual([r.firstVersion, r.firstPosition], [4, 5n]);
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('commit listeners hear each durable append once, in position order', () =>
  withEngine(async (e) => {
    const heard: bigint[] = [];
    const off = e.onCommit((appends) => heard.push(...appends.map((a) => a.firstPosition)));
    await Promise.all(Array.from({ length: 10 }, (_, i) => e.append('acme', `s-${i % 3}`, { events: [{ type: 'A', data: i }] })));
    off();
    ok(await e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }));
    assert.deepEqual(heard, Array.from({ length: 10 }, (_, i) => BigInt(i + 1)));
  }));

test('writer state shows an allocation in flight and the uncommitted range', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const seen: unknown[] = [];
  await withEngine(
    async (e) => {
      const pending = e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] });
      await new Promise((r) => setTimeout(r, 20));
      seen.push(e.writerState());
      release();
      ok(await pending);
      seen.push(e.writerState());
    },
    {
      sequencer: scriptedSequencer([
        async () => {
          await gate;
          return { first: 1n, last: 1n };
        },
      ]),
    },
  );
  assert.deepEqual(seen, [
    { allocating: true, lowestUncommitted: null, highestCommitted: 0n },
    { allocating: false, lowestUncommitted: null, highestCommitted: 1n },
  ]);
});

test('close answers everything queued, then refuses new writes with UNAVAILABLE', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-close-'));
  const e = createEngine({ path: dir });
  const pending = Array.from({ length: 50 }, (_, i) => e.append('acme', 's-1', { events: [{ type: 'A', data: i }] }));
  const closing = e.close();
  await rejectsWith(e.append('acme', 's-1', { events: [{ type: 'A', data: 1 }] }), 'UNAVAILABLE');
  const results = await Promise.all(pending);
  await closing;
  assert.equal(results.filter((r) => r.ok).length, 50);
  const again = createEngine({ path: dir });
  assert.equal(again.streamState('acme', 's-1').version, 50);
  await again.close();
  rmSync(dir, { recursive: true, force: true });
});

test('appendParsed takes an append validated by the caller: its measured sizes are kept, this store\'s limits still hold', () =>
  withEngine(async (e) => {
    const events = [{ type: 'A', data: { n: 1 }, metadata: null }];
    const a = ok(await e.appendParsed('acme', 'parsed-1', { expectedVersion: 'no_stream', events, sizes: [10] }));
    assert.deepEqual([a.firstVersion, a.lastVersion], [1, 1]);
    const read = ok(e.readStream('acme', 'parsed-1'));
    assert.deepEqual(read.events.map((x) => [x.version, x.type, x.data]), [[1, 'A', { n: 1 }]]);
    ok(await e.appendParsed('acme', 'parsed-1', { expectedVersion: 1, events, sizes: [10], idempotencyKey: 'k' }));
    const again = ok(await e.appendParsed('acme', 'parsed-1', { expectedVersion: 1, events, sizes: [10], idempotencyKey: 'k' }));
    assert.equal(again.duplicate, true);
    await rejectsWith(e.appendParsed('acme', 'parsed-1', { expectedVersion: 'any', events, sizes: [65] }), 'PAYLOAD_TOO_LARGE');
    await rejectsWith(e.appendParsed('acme', 'parsed-1', { expectedVersion: 'any', events: [...events, ...events, ...events], sizes: [1, 1, 1] }), 'VALIDATION_FAILED');
    assert.equal(ok(e.readStream('acme', 'parsed-1')).version, 2);
  }, { maxEventBytes: 64, maxEventsPerAppend: 2 }));
