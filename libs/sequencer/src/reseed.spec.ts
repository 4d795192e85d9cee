import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { isSkeinError, type SkeinError } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { createRedisSequencer, type RedisSequencer, type RedisSequencerOptions } from './index.ts';

let server: RedisServer;
let admin: Redis;
const open: RedisSequencer[] = [];

before(async () => {
  server = await startRedis({ appendonly: true });
  admin = new Redis(server.url, { retryStrategy: () => 20 });
});
after(async () => {
  await Promise.all(open.map((s) => s.close()));
  admin.disconnect();
  await server.stop();
});

/** What a shard would persist from the callbacks, to restore after a restart. */
interface Persisted {
  highWater: bigint;
  members: string[];
}

function member(memberId: string, keyPrefix: string, persisted: Persisted, options: Partial<RedisSequencerOptions> = {}): RedisSequencer {
  const s = createRedisSequencer({
    url: server.url,
    memberId,
    keyPrefix,
    initialHighWater: persisted.highWater,
    knownMembers: persisted.members,
    onObserved: (v) => (persisted.highWater = v),
    onMembers: (ids) => persisted.members.push(...ids),
    ...options,
  });
  open.push(s);
  return s;
}

function fresh(): Persisted {
  return { highWater: 0n, members: [] };
}

/**
 * Calls until the answer comes from Redis rather than from a broken connection (right
 * after a restart the client may still be reconnecting), and returns it.
 */
async function reachRedis<T>(fn: () => Promise<T>): Promise<{ ok: T } | { err: SkeinError }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return { ok: await fn() };
    } catch (err) {
      assert.ok(isSkeinError(err, 'UNAVAILABLE'), `expected UNAVAILABLE, got ${String(err)}`);
      if (Array.isArray(err.details.waitingFor)) return { err };
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

async function blocked(s: RedisSequencer): Promise<string[]> {
  const answer = await reachRedis(() => s.allocate(1, 0n));
  assert.ok('err' in answer, `${s.memberId} allocated ${'ok' in answer ? JSON.stringify(answer.ok, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) : ''} during a re-seed`);
  return (answer.err.details.waitingFor as string[]).sort();
}

/** Three members that allocated in turn and know each other; c observed the most. */
async function threeMembers(keyPrefix: string) {
  const state = { a: fresh(), b: fresh(), c: fresh() };
  const a = member('a', keyPrefix, state.a);
  const b = member('b', keyPrefix, state.b);
  const c = member('c', keyPrefix, state.c);
  const before = [await a.allocate(5, 0n), await b.allocate(7, 0n), await c.allocate(3, 0n)];
  before.push(await b.allocate(4, 0n), await a.allocate(1, 0n), await c.allocate(100, 0n));
  for (const s of [a, b, c]) assert.deepEqual(s.knownMembers().sort(), ['a', 'b', 'c'], `${s.memberId} knows every member`);
  assert.deepEqual([state.a.highWater, state.b.highWater, state.c.highWater], [20n, 19n, 120n]);
  return { a, b, c, state, before };
}

test('after a wipe no allocation succeeds until all three members have reported, and none reuses a position', async () => {
  const { a, b, c, before } = await threeMembers(`test:${randomUUID()}:`);
  await server.restart({ wipe: true });

  // The member with the highest high-water reports first; the last reporter has the lowest.
  assert.deepEqual(await blocked(c), ['a', 'b']);
  assert.deepEqual(await blocked(a), ['b']);
  assert.deepEqual(await blocked(c), ['b'], 'still blocked for a member that reported');
  await assert.rejects(c.current(), (err) => isSkeinError(err, 'UNAVAILABLE'));

  const first = await b.allocate(1, 0n);
  assert.ok(first.first > 120n, `first position after re-seed ${first.first} is above every high-water`);
  const after = [first, await a.allocate(2, 0n), await c.allocate(3, 0n)];
  const previous = before.reduce((m, r) => (r.last > m ? r.last : m), 0n);
  for (const r of after) assert.ok(r.first > previous, 'no position handed out before the wipe comes again');
  assert.ok(await a.current() >= after[2]!.last);
});

test('with a member down, a wiped Redis keeps allocation blocked until that member calls in', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const { a, b, c, state } = await threeMembers(keyPrefix);
  await c.close();
  await server.restart({ wipe: true });

  assert.deepEqual(await blocked(a), ['b', 'c']);
  assert.deepEqual(await blocked(b), ['c']);
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(await blocked(a), ['c']);
    assert.deepEqual(await blocked(b), ['c']);
  }

  // c restarts with what it persisted: its high-water and the members it knew.
  const c2 = member('c', keyPrefix, state.c);
  const first = await c2.allocate(1, 0n);
  assert.equal(first.first, 121n, 'continues right above the highest high-water, c\'s own');
  assert.ok((await a.allocate(1, 0n)).first > first.last);
  assert.ok((await b.allocate(1, 0n)).first > first.last);
});

test('a counter below a value already observed (lost writes) triggers a re-seed, never a step back', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const sa = fresh();
  const sb = fresh();
  const a = member('a', keyPrefix, sa);
  const b = member('b', keyPrefix, sb);
  await a.allocate(10, 0n);
  await b.allocate(10, 0n);
  await a.allocate(1, 0n);
  assert.equal(sb.highWater, 20n);
  // Writes lost, marker kept: the counter went back.
  await admin.set(`${keyPrefix}counter`, '5');

  assert.deepEqual(await blocked(a), ['b'], 'a saw 21 > 5: the marker goes and every member must report');
  const next = await b.allocate(1, 0n);
  assert.equal(next.first, 22n);
});

test('a member restarted with no memory of the epoch joins a healthy cluster without a re-seed', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const sa = fresh();
  const a = member('a', keyPrefix, sa);
  const b = member('b', keyPrefix, fresh());
  await a.allocate(3, 0n);
  await b.allocate(3, 0n);
  await a.close();
  const a2 = member('a', keyPrefix, sa);
  assert.deepEqual(await a2.allocate(1, 0n), { first: 7n, last: 7n });
  assert.deepEqual(await b.allocate(1, 0n), { first: 8n, last: 8n });
});

test('a fresh cluster seeds at once from a member that knows only itself, and waits for members it was told about', async () => {
  const solo = member('solo', `test:${randomUUID()}:`, { highWater: 41n, members: [] });
  assert.deepEqual(await solo.allocate(1, 0n), { first: 42n, last: 42n });

  const keyPrefix = `test:${randomUUID()}:`;
  const x = member('x', keyPrefix, { highWater: 0n, members: ['y'] });
  assert.deepEqual(await blocked(x), ['y']);
  const y = member('y', keyPrefix, { highWater: 9n, members: [] });
  assert.deepEqual(await y.allocate(1, 0n), { first: 10n, last: 10n });
  assert.deepEqual(await x.allocate(1, 0n), { first: 11n, last: 11n });
});

test('a re-seed counts what a member may have promised (reseedFloor), while a restart below that floor joins without one', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const sa = fresh();
  const sb = fresh();
  const a = member('a', keyPrefix, sa);
  const b = member('b', keyPrefix, sb);
  assert.equal((await a.allocate(5, 0n)).last, 5n);
  assert.equal((await b.allocate(5, 0n)).last, 10n);

  // a restarts, and its previous run may have published safe points up to 1000 (a shard's
  // persisted bound) though its persisted high-water says 5. The counter (10) is at or
  // above that high-water, so it joins; the floor is not a high-water: nobody re-seeds.
  await a.close();
  const a2 = member('a', keyPrefix, sa, { reseedFloor: () => 1000n });
  assert.equal((await a2.allocate(1, 0n)).first, 11n);
  assert.equal((await b.allocate(1, 0n)).first, 12n);

  // Redis loses everything: the re-seed counts a's floor, so nothing is handed out at or
  // below a position a reader may have been promised (without it, b would go on at 13).
  await server.restart({ wipe: true });
  assert.deepEqual(await blocked(b), ['a']);
  const first = await a2.allocate(1, 0n);
  assert.equal(first.first, 1001n);
  assert.ok((await b.allocate(1, 0n)).first > first.last);
});
