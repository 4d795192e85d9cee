import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { InjectOptions } from 'fastify';
import { startRedis, type RedisServer } from '@skein/testing';
import { json, secretHeader, startTestShard, type TestShard } from './testing/test-shard.ts';

let redis: RedisServer;
let t: TestShard;
const P = '/internal/v1';

before(async () => {
  redis = await startRedis();
  t = await startTestShard({ redisUrl: redis.url });
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

const inject = (opts: InjectOptions) => t.shard.app.inject({ ...opts, headers: { ...secretHeader, ...opts.headers } });
const stream = (s: string, p = 'acme') => `${P}/partitions/${p}/streams/${s}`;

test('a single append answers 201 with positions as decimal strings, and a retry with the same Idempotency-Key answers 200 duplicate', async () => {
  const body = { events: [{ type: 'OrderPlaced', data: { n: 1 } }, { type: 'OrderPaid', data: null }] };
  const res = await inject({ method: 'POST', url: `${stream('order-1')}/events`, headers: { ...json, 'idempotency-key': 'k-1' }, payload: body });
  assert.equal(res.statusCode, 201, res.body);
  const first = res.json();
  assert.equal(first.firstVersion, 1);
  assert.equal(first.lastVersion, 2);
  assert.equal(typeof first.firstPosition, 'string');
  assert.equal(BigInt(first.lastPosition) - BigInt(first.firstPosition), 1n);

  const again = await inject({ method: 'POST', url: `${stream('order-1')}/events`, headers: { ...json, 'idempotency-key': 'k-1' }, payload: body });
  assert.equal(again.statusCode, 200);
  assert.deepEqual(again.json(), { ...first, duplicate: true });

  const reused = await inject({ method: 'POST', url: `${stream('order-1')}/events`, headers: { ...json, 'idempotency-key': 'k-1' }, payload: { events: [{ type: 'X', data: 1 }] } });
  assert.equal(reused.statusCode, 422);
  assert.equal(reused.json().code, 'IDEMPOTENCY_KEY_REUSED');
});

test('the batch endpoint answers each append independently and commits them in one batch', async () => {
  const res = await inject({
    method: 'POST',
    url: `${P}/append`,
    headers: json,
    payload: {
      appends: [
        { partition: 'acme', streamId: 'batch-a', events: [{ type: 'A', data: 1 }] },
        { partition: 'acme~1', streamId: 'batch-b', expectedVersion: 'no_stream', events: [{ type: 'B', data: 2 }, { type: 'B', data: 3 }] },
        { partition: 'acme', streamId: 'batch-a', expectedVersion: 7, events: [{ type: 'A', data: 4 }] },
        { partition: 'Not valid', streamId: 'x', events: [{ type: 'A', data: 1 }] },
        { partition: 'acme', streamId: 'batch-c', events: [] },
      ],
    },
  });
  assert.equal(res.statusCode, 200, res.body);
  const { results } = res.json();
  assert.equal(results.length, 5);
  assert.equal(results[0].ok, true);
  // No HTTP status inside a result: `duplicate` and the error code say it.
  assert.equal('status' in results[0], false);
  assert.equal(results[0].duplicate, undefined);
  assert.equal(results[1].ok, true);
  assert.equal(results[1].lastVersion, 2);
  // One batch: one allocation, so the positions of the two written appends are contiguous.
  assert.equal(BigInt(results[1].firstPosition), BigInt(results[0].lastPosition) + 1n);
  assert.equal(results[2].ok, false);
  assert.equal(results[2].code, 'WRONG_EXPECTED_VERSION');
  assert.equal(results[2].actual, 1);
  assert.equal(results[3].code, 'VALIDATION_FAILED');
  assert.equal(results[3].field, 'partition');
  assert.equal(results[4].code, 'VALIDATION_FAILED');
});

test('stream reads page forward and backward and report 404 for a stream that does not exist', async () => {
  const events = Array.from({ length: 5 }, (_, i) => ({ type: 'Tick', data: i, id: randomUUID() }));
  assert.equal((await inject({ method: 'POST', url: `${stream('tick-1')}/events`, headers: json, payload: { events } })).statusCode, 201);
  const page = await inject({ method: 'GET', url: `${stream('tick-1')}?from=2&limit=2` });
  assert.equal(page.statusCode, 200);
  const body = page.json();
  assert.deepEqual(body.events.map((e: { version: number }) => e.version), [2, 3]);
  assert.equal(body.version, 5);
  assert.equal(body.next, 4);
  assert.equal(body.events[0].id, events[1]!.id);
  const back = (await inject({ method: 'GET', url: `${stream('tick-1')}?direction=backward&limit=2` })).json();
  assert.deepEqual(back.events.map((e: { version: number }) => e.version), [5, 4]);
  const missing = await inject({ method: 'GET', url: stream('nope-1') });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().code, 'STREAM_NOT_FOUND');
  assert.match(String(missing.headers['content-type']), /application\/problem\+json/);
  const state = (await inject({ method: 'GET', url: `${stream('tick-1')}/state` })).json();
  assert.deepEqual(state, { version: 5, deleted: 'no' });
});

test('metadata is replaced by PUT and applied to reads; snapshots are stored and the latest is returned', async () => {
  const events = Array.from({ length: 4 }, (_, i) => ({ type: 'T', data: i }));
  await inject({ method: 'POST', url: `${stream('meta-1')}/events`, headers: json, payload: { events } });
  assert.deepEqual((await inject({ method: 'GET', url: `${stream('meta-1')}/metadata` })).json(), {});
  const put = await inject({ method: 'PUT', url: `${stream('meta-1')}/metadata`, headers: json, payload: { maxCount: 2, custom: { owner: 'x' } } });
  assert.equal(put.statusCode, 204);
  assert.deepEqual((await inject({ method: 'GET', url: `${stream('meta-1')}/metadata` })).json(), { maxCount: 2, custom: { owner: 'x' } });
  const read = (await inject({ method: 'GET', url: stream('meta-1') })).json();
  assert.deepEqual(read.events.map((e: { version: number }) => e.version), [3, 4]);
  const bad = await inject({ method: 'PUT', url: `${stream('meta-1')}/metadata`, headers: json, payload: { maxCount: -1 } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().field, 'maxCount');

  assert.equal((await inject({ method: 'GET', url: `${stream('meta-1')}/snapshots/latest` })).json().code, 'SNAPSHOT_NOT_FOUND');
  assert.equal((await inject({ method: 'PUT', url: `${stream('meta-1')}/snapshots/2`, headers: json, payload: { total: 2 } })).statusCode, 204);
  assert.equal((await inject({ method: 'PUT', url: `${stream('meta-1')}/snapshots/3`, headers: json, payload: { total: 3 } })).statusCode, 204);
  assert.deepEqual((await inject({ method: 'GET', url: `${stream('meta-1')}/snapshots/latest` })).json(), { version: 3, data: { total: 3 } });
  const beyond = await inject({ method: 'PUT', url: `${stream('meta-1')}/snapshots/9`, headers: json, payload: {} });
  assert.equal(beyond.statusCode, 400);
  assert.equal(beyond.json().code, 'VALIDATION_FAILED');
});

test('soft delete hides the stream until the next append; hard delete answers 410 for good', async () => {
  await inject({ method: 'POST', url: `${stream('del-1')}/events`, headers: json, payload: { events: [{ type: 'T', data: 1 }] } });
  const conflict = await inject({ method: 'DELETE', url: `${stream('del-1')}?expectedVersion=3` });
  assert.equal(conflict.statusCode, 409, conflict.body);
  assert.equal((await inject({ method: 'DELETE', url: stream('del-1') })).statusCode, 204);
  assert.equal((await inject({ method: 'GET', url: stream('del-1') })).statusCode, 404);
  const back = await inject({ method: 'POST', url: `${stream('del-1')}/events`, headers: json, payload: { events: [{ type: 'T', data: 2 }] } });
  assert.equal(back.json().firstVersion, 2);
  assert.equal((await inject({ method: 'DELETE', url: `${stream('del-1')}?mode=hard` })).statusCode, 204);
  assert.equal((await inject({ method: 'GET', url: stream('del-1') })).json().code, 'STREAM_DELETED');
  const append = await inject({ method: 'POST', url: `${stream('del-1')}/events`, headers: json, payload: { events: [{ type: 'T', data: 3 }] } });
  assert.equal(append.statusCode, 410);
});

test('partition and shard logs are in position order, bounded by toPosition and filtered by category and types', async () => {
  const a = (await inject({ method: 'POST', url: `${stream('cart-1', 'logs')}/events`, headers: json, payload: { events: [{ type: 'Added', data: 1 }, { type: 'Removed', data: 2 }] } })).json();
  await inject({ method: 'POST', url: `${stream('user-1', 'logs')}/events`, headers: json, payload: { events: [{ type: 'Added', data: 3 }] } });
  await inject({ method: 'POST', url: `${stream('cart-2', 'logs~1')}/events`, headers: json, payload: { events: [{ type: 'Added', data: 4 }] } });

  const all = (await inject({ method: 'GET', url: `${P}/partitions/logs/log` })).json();
  assert.deepEqual(all.events.map((e: { data: number }) => e.data), [1, 2, 3]);
  assert.ok(all.events.every((e: { partition: string }) => e.partition === 'logs'));
  assert.equal(BigInt(all.next), BigInt(all.events[2].position) + 1n);

  const carts = (await inject({ method: 'GET', url: `${P}/partitions/logs/log?category=cart&types=Added` })).json();
  assert.deepEqual(carts.events.map((e: { data: number }) => e.data), [1]);

  const bounded = (await inject({ method: 'GET', url: `${P}/log?fromPosition=${a.firstPosition}&toPosition=${a.lastPosition}` })).json();
  assert.deepEqual(bounded.events.map((e: { data: number }) => e.data), [1, 2]);
  const shard = (await inject({ method: 'GET', url: `${P}/log?fromPosition=${a.firstPosition}&limit=1000` })).json();
  const positions = shard.events.map((e: { position: string }) => BigInt(e.position));
  assert.deepEqual(positions, [...positions].sort((x: bigint, y: bigint) => (x < y ? -1 : 1)));
  assert.deepEqual(shard.events.map((e: { data: number }) => e.data), [1, 2, 3, 4]);

  const bad = await inject({ method: 'GET', url: `${P}/log?fromPosition=-1` });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().field, 'fromPosition');
});

test('a log read past the last position is an empty page whose next is the position given', async () => {
  await inject({ method: 'POST', url: `${stream('past-1', 'past')}/events`, headers: json, payload: { events: [{ type: 'T', data: 1 }] } });
  const empty = (await inject({ method: 'GET', url: `${P}/log?fromPosition=999999999` })).json();
  assert.deepEqual(empty, { events: [], next: '999999999' });
});

test('malformed JSON, a wrong content type and a too large body are problem documents', async () => {
  const malformed = await inject({ method: 'POST', url: `${stream('x-1')}/events`, headers: json, payload: '{"events": [' });
  assert.equal(malformed.statusCode, 400);
  assert.equal(malformed.json().code, 'MALFORMED_JSON');
  const text = await inject({ method: 'POST', url: `${stream('x-1')}/events`, headers: { 'content-type': 'text/plain' }, payload: 'hi' });
  assert.equal(text.statusCode, 415);
  assert.equal(text.json().code, 'UNSUPPORTED_MEDIA_TYPE');
  const big = await inject({ method: 'POST', url: `${P}/append`, headers: json, payload: JSON.stringify({ appends: [], pad: 'x'.repeat(33 * 1024 * 1024) }) });
  assert.equal(big.statusCode, 413);
  assert.equal(big.json().code, 'PAYLOAD_TOO_LARGE');
  const unknown = await inject({ method: 'GET', url: '/nowhere' });
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json().code, 'NOT_FOUND');
});

test('the safe point covers every acknowledged append, and atLeast waits for it', async () => {
  const res = (await inject({ method: 'POST', url: `${stream('sp-1')}/events`, headers: json, payload: { events: [{ type: 'T', data: 1 }] } })).json();
  const sp = await inject({ method: 'GET', url: `${P}/safe-point?atLeast=${res.lastPosition}&waitMs=1000` });
  assert.equal(sp.statusCode, 200);
  assert.ok(BigInt(sp.json().safePoint) >= BigInt(res.lastPosition));
  // An idle shard advances with the counter: another member's allocation moves it.
  const other = await t.shard.sequencer.allocate(5, 0n);
  const later = (await inject({ method: 'GET', url: `${P}/safe-point?atLeast=${other.last}&waitMs=1000` })).json();
  assert.ok(BigInt(later.safePoint) >= other.last, `${later.safePoint} ≥ ${other.last}`);
  const info = (await inject({ method: 'GET', url: `${P}/info` })).json();
  assert.equal(info.shard, 'a');
  assert.ok(BigInt(info.safePoint) >= other.last);
});

test('/healthz, /readyz and /metrics answer, with the shard metrics registered', async () => {
  assert.equal((await inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  const ready = await inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 200, ready.body);
  const metrics = await inject({ method: 'GET', url: '/metrics' });
  assert.equal(metrics.statusCode, 200);
  for (const name of [
    'skein_shard_append_duration_seconds_bucket',
    'skein_shard_batch_size_events_bucket',
    'skein_shard_events_appended_total',
    'skein_shard_appended_bytes_total',
    'skein_sequencer_round_trip_seconds_bucket',
    'skein_sequencer_errors_total',
    'skein_shard_safe_point',
    'skein_shard_lmdb_environment_bytes',
  ]) {
    assert.match(metrics.body, new RegExp(`^${name}`, 'm'), name);
  }
  const events = Number(/^skein_shard_events_appended_total (\d+)/m.exec(metrics.body)?.[1]);
  assert.ok(events > 10, `events appended ${events}`);
});

test('the internal API answers 401 UNAUTHENTICATED without the cluster secret or with a wrong one, and does nothing; the probes need none', async () => {
  const raw = (opts: InjectOptions) => t.shard.app.inject(opts);
  const before = (await inject({ method: 'GET', url: `${P}/info` })).json().highestCommitted;
  for (const headers of [{}, { 'x-skein-cluster-secret': 'wrong-secret-of-the-right-length-000' }, { 'x-skein-cluster-secret': '' }]) {
    const attempts = [
      raw({ method: 'POST', url: `${stream('guarded-1')}/events`, headers: { ...json, ...headers }, payload: { events: [{ type: 'T', data: 1 }] } }),
      raw({ method: 'GET', url: `${P}/log?fromPosition=0`, headers }),
      raw({ method: 'DELETE', url: `${stream('guarded-1')}?mode=hard`, headers }),
      raw({ method: 'GET', url: `${P}/no-such-route`, headers }),
    ];
    for (const res of await Promise.all(attempts)) {
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['content-type']), /application\/problem\+json/);
      assert.equal(res.json().code, 'UNAUTHENTICATED');
    }
  }
  assert.equal((await inject({ method: 'GET', url: stream('guarded-1') })).statusCode, 404);
  assert.equal((await inject({ method: 'GET', url: `${P}/info` })).json().highestCommitted, before);
  for (const url of ['/healthz', '/readyz', '/metrics']) assert.equal((await raw({ method: 'GET', url })).statusCode, 200, url);
});
