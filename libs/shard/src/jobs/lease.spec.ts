import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startRedis, type RedisServer } from '@skein/testing';
import { evictionRefusal } from './bullmq-jobs.ts';
import { LEASE_RECORDS_KEY, createRedisLeases } from './lease.ts';

let server: RedisServer;
let redis: Redis;
before(async () => {
  server = await startRedis({ appendonly: false });
  redis = new Redis(server.url);
});
after(async () => {
  redis?.disconnect();
  await server?.stop();
});

const log = pino({ level: 'silent' });
const job = (id: string) => ({ shard: 'shard-0', id });

test('a second run of a unit is refused while the first holds its lease, and runs once it is released', async () => {
  const leases = createRedisLeases({ redis, log }, { ttlMs: 5000 });
  const first = await leases.acquire('acme~0', 3, job('a'));
  assert.equal(first.ok, true);
  assert.deepEqual(await leases.acquire('acme~0', 3, job('b')), { ok: false, reason: 'held' });
  if (first.ok) await first.lease.release();
  const second = await leases.acquire('acme~0', 3, job('b'));
  assert.equal(second.ok, true);
  if (second.ok) await second.lease.release();
  const events = (await redis.xrange(LEASE_RECORDS_KEY, '-', '+')).map(([, f]) => `${f[1]}:${f[f.indexOf('job') + 1] ?? ''}`);
  assert.deepEqual(events.filter((e) => !e.startsWith('renewed')).map((e) => e.split(':')[0]), ['acquired', 'released', 'acquired', 'released']);
});

test('a run at an older ownership epoch than one that already ran on the unit is refused as stale', async () => {
  const leases = createRedisLeases({ redis, log }, { ttlMs: 5000 });
  const newer = await leases.acquire('acme~1', 7, job('new'));
  assert.equal(newer.ok, true);
  if (newer.ok) await newer.lease.release();
  assert.deepEqual(await leases.acquire('acme~1', 6, job('old')), { ok: false, reason: 'stale-epoch', floor: 7 });
});

test('a lease is renewed while held: it outlives its ttl, and nobody else takes it meanwhile', async () => {
  const leases = createRedisLeases({ redis, log }, { ttlMs: 300 });
  const held = await leases.acquire('acme~2', 1, job('long'));
  assert.equal(held.ok, true);
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await leases.acquire('acme~2', 1, job('other')), { ok: false, reason: 'held' });
  if (held.ok) {
    assert.equal(held.lease.held, true);
    await held.lease.release();
  }
});

test('maintenance is refused against a Redis whose maxmemory-policy may evict, with a one-line reason', async () => {
  assert.equal(await evictionRefusal(redis), null);
  await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
  try {
    const reason = await evictionRefusal(redis);
    assert.match(reason ?? '', /maxmemory-policy is allkeys-lru.*noeviction/);
    assert.doesNotMatch(reason ?? '', /\n/);
  } finally {
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
  }
});
