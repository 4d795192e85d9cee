import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { isSkeinError, type PositionRange } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { MAX_COUNTER, createRedisSequencer, fenceKeyOf, type RedisSequencer, type RedisSequencerOptions } from './index.ts';

let server: RedisServer;
let admin: Redis;
const open: RedisSequencer[] = [];

before(async () => {
  server = await startRedis({ appendonly: true });
  admin = new Redis(server.url);
});
after(async () => {
  await Promise.all(open.map((s) => s.close()));
  admin.disconnect();
  await server.stop();
});

/** A fresh key prefix per test: tests share one server and never flush it. */
function prefix(): string {
  return `test:${randomUUID()}:`;
}

function sequencer(memberId: string, keyPrefix: string, options: Partial<RedisSequencerOptions> = {}): RedisSequencer {
  const s = createRedisSequencer({ url: server.url, memberId, keyPrefix, ...options });
  open.push(s);
  return s;
}

async function rejectsWith(promise: Promise<unknown>, code: string, field?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isSkeinError(err), `expected a SkeinError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (field !== undefined) assert.equal(err.details.field, field);
    return true;
  });
}

test('three members allocating concurrently get contiguous, disjoint ranges that cover every position', async () => {
  const keyPrefix = prefix();
  const members = ['s1', 's2', 's3'].map((id) => sequencer(id, keyPrefix));
  const ranges: PositionRange[] = [];
  let total = 0n;
  await Promise.all(
    members.map(async (s, i) => {
      for (let wave = 0; wave < 20; wave++) {
        const counts = Array.from({ length: 50 }, (_, k) => 1 + ((k + i + wave) % 5));
        const got = await Promise.all(counts.map((c) => s.allocate(c, 0n)));
        got.forEach((r, k) => {
          assert.equal(r.last - r.first + 1n, BigInt(counts[k]!), 'a range holds exactly count positions');
          ranges.push(r);
          total += BigInt(counts[k]!);
        });
      }
    }),
  );
  assert.equal(ranges.length, 3000);
  ranges.sort((a, b) => (a.first < b.first ? -1 : 1));
  let next = 1n;
  for (const r of ranges) {
    assert.equal(r.first, next, 'ranges neither overlap nor leave gaps');
    next = r.last + 1n;
  }
  assert.equal(next - 1n, total);
  assert.equal(await members[0]!.current(), total);
});

test('a member learns the other members and reports the new ones through onMembers', async () => {
  const keyPrefix = prefix();
  const seen: string[] = [];
  const a = sequencer('a', keyPrefix, { onMembers: (ids) => seen.push(...ids) });
  const b = sequencer('b', keyPrefix, { knownMembers: ['c'] });
  await a.allocate(1, 0n);
  await b.allocate(1, 0n);
  await a.allocate(1, 0n);
  assert.deepEqual(seen.sort(), ['b', 'c']);
  assert.deepEqual(a.knownMembers().sort(), ['a', 'b', 'c']);
  assert.deepEqual((await admin.smembers(`${keyPrefix}members`)).sort(), ['a', 'b', 'c']);
});

test('the floor raises the counter before the increment', async () => {
  const keyPrefix = prefix();
  const s = sequencer('s1', keyPrefix);
  assert.deepEqual(await s.allocate(2, 0n), { first: 1n, last: 2n });
  assert.deepEqual(await s.allocate(3, 1000n), { first: 1001n, last: 1003n });
  assert.deepEqual(await s.allocate(1, 10n), { first: 1004n, last: 1004n }, 'a floor below the counter changes nothing');
  assert.equal(await admin.get(`${keyPrefix}counter`), '1004');
});

test('current() is never below a position already allocated, and reports 0 on a fresh cluster', async () => {
  const keyPrefix = prefix();
  const [a, b, reader] = ['a', 'b', 'r'].map((id) => sequencer(id, keyPrefix));
  assert.equal(await reader!.current(), 0n);
  let highestAllocated = 0n;
  let stop = false;
  const allocating = Promise.all(
    [a!, b!].map(async (s) => {
      for (let i = 0; i < 300; i++) {
        const r = await s.allocate(1 + (i % 3), 0n);
        if (r.last > highestAllocated) highestAllocated = r.last;
      }
    }),
  ).finally(() => (stop = true));
  let reads = 0;
  while (!stop) {
    const before = highestAllocated;
    const c = await reader!.current();
    assert.ok(c >= before, `current ${c} below allocated ${before}`);
    reads++;
  }
  await allocating;
  assert.ok(reads > 10);
  assert.equal(await reader!.current(), highestAllocated);
});

test('positions stay exact beyond 2^53', async () => {
  const keyPrefix = prefix();
  const floor = (1n << 60n) + 12_345n;
  const a = sequencer('a', keyPrefix);
  const b = sequencer('b', keyPrefix);
  assert.deepEqual(await a.allocate(3, floor), { first: floor + 1n, last: floor + 3n });
  assert.deepEqual(await b.allocate(2, 0n), { first: floor + 4n, last: floor + 5n });
  assert.equal(await a.current(), floor + 5n);
  assert.equal(await admin.get(`${keyPrefix}counter`), (floor + 5n).toString());
  assert.equal(a.highWater(), floor + 5n);
});

test('matches a bigint model for any floors and counts, across decimal lengths and up to 2^63-1', async () => {
  const near = fc.oneof(
    fc.bigInt(0n, MAX_COUNTER - 1000n),
    fc.integer({ min: 1, max: 18 }).chain((k) => fc.bigInt(-3n, 3n).map((d) => 10n ** BigInt(k) + d)),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), near), { minLength: 1, maxLength: 8 }), async (ops) => {
      const s = sequencer('p', prefix());
      let model = 0n;
      try {
        for (const [count, floor] of ops) {
          const base = model > floor ? model : floor;
          if (base + BigInt(count) > MAX_COUNTER) {
            await rejectsWith(s.allocate(count, floor), 'VALIDATION_FAILED', 'count');
            continue;
          }
          const r = await s.allocate(count, floor);
          assert.deepEqual(r, { first: base + 1n, last: base + BigInt(count) });
          model = r.last;
        }
        assert.equal(await s.current(), model);
      } finally {
        await s.close();
      }
    }),
    { numRuns: 40 },
  );
});

test('rejects a count that is not a positive integer, a bad floor, and a range beyond 2^63-1, changing nothing', async () => {
  const keyPrefix = prefix();
  const s = sequencer('s1', keyPrefix);
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3' as unknown as number]) {
    await rejectsWith(s.allocate(bad, 0n), 'VALIDATION_FAILED', 'count');
  }
  await rejectsWith(s.allocate(1, -1n), 'VALIDATION_FAILED', 'floor');
  await rejectsWith(s.allocate(1, 5 as unknown as bigint), 'VALIDATION_FAILED', 'floor');
  await rejectsWith(s.allocate(2, MAX_COUNTER - 1n), 'VALIDATION_FAILED', 'count');

  assert.deepEqual(await s.allocate(1, MAX_COUNTER - 11n), { first: MAX_COUNTER - 10n, last: MAX_COUNTER - 10n });
  await rejectsWith(s.allocate(11, 0n), 'VALIDATION_FAILED', 'count');
  assert.equal(await admin.get(`${keyPrefix}counter`), (MAX_COUNTER - 10n).toString(), 'an overflowing range changes nothing');
  assert.deepEqual(await s.allocate(10, 0n), { first: MAX_COUNTER - 9n, last: MAX_COUNTER });
  await rejectsWith(s.allocate(1, 0n), 'VALIDATION_FAILED', 'count');
  assert.equal(await s.current(), MAX_COUNTER);
});

test('keeps no TTL on any key', async () => {
  const keyPrefix = prefix();
  const s = sequencer('s1', keyPrefix);
  await s.allocate(1, 0n);
  for (const key of await admin.keys(`${keyPrefix}*`)) assert.equal(await admin.ttl(key), -1, key);
});

test('reports each round trip to the observer and the high-water to onObserved', async () => {
  const trips: boolean[] = [];
  const highs: bigint[] = [];
  const s = sequencer('s1', prefix(), { observe: { roundTrip: (seconds, ok) => { assert.ok(seconds >= 0); trips.push(ok); } }, onObserved: (v) => highs.push(v) });
  await s.allocate(2, 0n);
  await s.allocate(1, 0n);
  await s.current();
  assert.deepEqual(trips, [true, true, true, true], 'join, two allocations, one read');
  assert.deepEqual(highs, [2n, 3n]);
});

test('uses a given ioredis client without closing it', async () => {
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 });
  await new Promise((resolve) => redis.once('ready', resolve));
  const s = createRedisSequencer({ redis, memberId: 's1', keyPrefix: prefix() });
  assert.deepEqual(await s.allocate(1, 0n), { first: 1n, last: 1n });
  await s.close();
  assert.equal(await redis.ping(), 'PONG');
  await rejectsWith(s.allocate(1, 0n), 'UNAVAILABLE');
  redis.disconnect();
});

test('refuses invalid options, naming the option', () => {
  assert.throws(() => createRedisSequencer({ memberId: 's1' }), (err) => isSkeinError(err, 'VALIDATION_FAILED') && err.details.field === 'url');
  assert.throws(() => createRedisSequencer({ url: server.url, memberId: '' }), (err) => isSkeinError(err, 'VALIDATION_FAILED') && err.details.field === 'memberId');
  assert.throws(
    () => createRedisSequencer({ url: server.url, memberId: 's1', initialHighWater: -1n }),
    (err) => isSkeinError(err, 'VALIDATION_FAILED') && err.details.field === 'initialHighWater',
  );
});

test('a fenced member is refused with NOT_OWNER, allocating nothing, until its writes were admitted under the new generation; other members are not affected', async () => {
  const keyPrefix = prefix();
  let admittedUnder = 0;
  const fencedSeen: number[] = [];
  const a = sequencer('a', keyPrefix, { fenceGeneration: () => admittedUnder, onFenced: (g) => fencedSeen.push(g) });
  const b = sequencer('b', keyPrefix, { fenceGeneration: () => 0 });
  assert.deepEqual(await a.allocate(1, 0n), { first: 1n, last: 1n });
  await admin.incr(fenceKeyOf('a', keyPrefix));
  await rejectsWith(a.allocate(5, 0n), 'NOT_OWNER');
  assert.deepEqual(fencedSeen, [1]);
  assert.equal(await admin.get(`${keyPrefix}counter`), '1', 'the refused allocation handed nothing out');
  assert.deepEqual(await b.allocate(1, 0n), { first: 2n, last: 2n }, 'only the fenced member is refused');
  admittedUnder = 1;
  assert.deepEqual(await a.allocate(2, 0n), { first: 3n, last: 4n });
});
