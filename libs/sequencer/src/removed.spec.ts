import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { isSkeinError } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { createRedisSequencer, type RedisSequencer } from './index.ts';

// Removed members (redis-sequencer.ts): a member removed from the cluster is tombstoned
// by the others with the counter read at its removal, and a re-seed after a wipe does
// not wait for it. Real redis-server.

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

/** What a shard persists from the callbacks (sequencer-state.ts), with the order the callbacks came in. */
interface Persisted {
  highWater: bigint;
  members: string[];
  removed: string[];
  /** 'hw:<value>' and 'removed:<ids>' in call order. */
  calls: string[];
}

const fresh = (): Persisted => ({ highWater: 0n, members: [], removed: [], calls: [] });

function member(memberId: string, keyPrefix: string, p: Persisted): RedisSequencer {
  const s = createRedisSequencer({
    url: server.url,
    memberId,
    keyPrefix,
    initialHighWater: p.highWater,
    knownMembers: p.members,
    removedMembers: p.removed,
    onObserved: (v) => {
      p.highWater = v;
      p.calls.push(`hw:${v}`);
    },
    onMembers: (ids) => p.members.push(...ids),
    onRemoved: (ids) => {
      p.removed.push(...ids);
      p.members = p.members.filter((m) => !ids.includes(m));
      p.calls.push(`removed:${ids.join(',')}`);
    },
  });
  open.push(s);
  return s;
}

/** What the router's membership script does to the sequencer's keys (shard-membership-7.lua): returns the counter it read. */
async function removeFromRedis(keyPrefix: string, id: string): Promise<bigint> {
  const [[, counter]] = (await admin.multi().get(`${keyPrefix}counter`).srem(`${keyPrefix}members`, id).sadd(`${keyPrefix}removed`, id).exec()) as [[null, string | null]];
  return BigInt(counter ?? '0');
}

/** Calls until Redis answers (the client may be reconnecting after a restart); the error of a re-seed that waits, or the result. */
async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: T } | { waitingFor: string[] }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return { ok: await fn() };
    } catch (err) {
      assert.ok(isSkeinError(err, 'UNAVAILABLE'), `expected UNAVAILABLE, got ${String(err)}`);
      if (Array.isArray(err.details.waitingFor)) return { waitingFor: (err.details.waitingFor as string[]).sort() };
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** a, b and c allocated in turn and know each other; c allocated last and most (up to 120). */
async function threeMembers(keyPrefix: string) {
  const state = { a: fresh(), b: fresh(), c: fresh() };
  const a = member('a', keyPrefix, state.a);
  const b = member('b', keyPrefix, state.b);
  const c = member('c', keyPrefix, state.c);
  await a.allocate(5, 0n);
  await b.allocate(7, 0n);
  await c.allocate(3, 0n);
  await b.allocate(4, 0n);
  await a.allocate(1, 0n);
  const last = await c.allocate(100, 0n);
  assert.equal(last.last, 120n);
  for (const s of [a, b, c]) assert.deepEqual(s.knownMembers().sort(), ['a', 'b', 'c']);
  assert.deepEqual([state.a.highWater, state.b.highWater], [20n, 19n], 'a and b never observed c\'s last range');
  return { a, b, c, state };
}

test('a removed member is not waited for after a wipe: the others tombstone it with the counter read at its removal, and positions resume above all it was handed out', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const { a, b, c, state } = await threeMembers(keyPrefix);
  await c.close();
  const counter = await removeFromRedis(keyPrefix, 'c');
  assert.equal(counter, 120n);

  for (const [s, p] of [[a, state.a], [b, state.b]] as const) {
    s.removeMembers([{ id: 'c', coveredUpTo: counter }]);
    assert.deepEqual(s.knownMembers().sort(), ['a', 'b']);
    assert.deepEqual(s.removedMembers(), ['c']);
    // The high-water that covers the tombstone is reported before the tombstone.
    assert.deepEqual(p.calls.slice(-2), ['hw:120', 'removed:c']);
    s.removeMembers([{ id: 'c', coveredUpTo: counter }]);
    assert.equal(p.calls.at(-1), 'removed:c', 'a tombstone again is a no-op');
  }

  await server.restart({ wipe: true });
  assert.deepEqual(await attempt(() => a.allocate(1, 0n)), { waitingFor: ['b'] }, 'waits for b, not for c');
  const first = await attempt(() => b.allocate(1, 0n));
  assert.ok('ok' in first);
  assert.equal(first.ok.first, 121n, 'right above the removed member\'s last position, which neither a nor b had observed');
  assert.deepEqual((await admin.smembers(`${keyPrefix}members`)).sort(), ['a', 'b']);
  assert.deepEqual(await admin.smembers(`${keyPrefix}removed`), ['c'], 'the reporters\' tombstones are back in Redis');
});

test('after a restart from the persisted state, and with a member that has not learned of the removal, the re-seed still does not wait for the removed member', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const { a, b, c, state } = await threeMembers(keyPrefix);
  await c.close();
  const counter = await removeFromRedis(keyPrefix, 'c');
  // b learns of the removal and restarts from what it persisted; a has not learned yet.
  b.removeMembers([{ id: 'c', coveredUpTo: counter }]);
  await b.close();
  assert.deepEqual(state.b.members.sort(), ['a'], 'c left the persisted members');
  assert.deepEqual(state.b.removed, ['c']);
  const b2 = member('b', keyPrefix, state.b);
  await server.restart({ wipe: true });

  assert.deepEqual(await attempt(() => a.allocate(1, 0n)), { waitingFor: ['b', 'c'] }, 'a still knows c');
  const first = await attempt(() => b2.allocate(1, 0n));
  assert.ok('ok' in first, `b's tombstone takes c out of the wait: ${'waitingFor' in first ? first.waitingFor.join() : ''}`);
  assert.equal(first.ok.first, 121n);
  const next = await attempt(() => a.allocate(1, 0n));
  assert.ok('ok' in next && next.ok.first === 122n);
  assert.deepEqual((await admin.smembers(`${keyPrefix}members`)).sort(), ['a', 'b'], 'a\'s join does not add c back');
  // The join answered without c: a learned of the removal from Redis.
  assert.deepEqual(a.removedMembers(), ['c']);
  const calls = state.a.calls;
  assert.ok(calls.indexOf('hw:121') >= 0 && calls.indexOf('hw:121') < calls.indexOf('removed:c'), `covered by the counter of the join's answer, reported first: ${calls.join(' ')}`);

  // The topology tells a later: nothing changes, positions go on.
  a.removeMembers([{ id: 'c', coveredUpTo: counter }]);
  assert.equal((await a.allocate(1, 0n)).first, 123n);
});

test('a removed member that still runs reads the counter without becoming a member again', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const { a, c } = await threeMembers(keyPrefix);
  const counter = await removeFromRedis(keyPrefix, 'c');
  // Before and after it learns of its own removal.
  assert.equal(await c.current(), counter);
  assert.deepEqual((await admin.smembers(`${keyPrefix}members`)).sort(), ['a', 'b']);
  c.removeMembers([{ id: 'c', coveredUpTo: counter }]);
  assert.deepEqual(c.knownMembers().sort(), ['a', 'b']);
  assert.equal(await c.current(), counter);
  assert.deepEqual((await admin.smembers(`${keyPrefix}members`)).sort(), ['a', 'b']);
  await a.allocate(1, 0n);
  assert.deepEqual((await admin.smembers(`${keyPrefix}members`)).sort(), ['a', 'b']);
});
