import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { SkeinError, isSkeinError } from '@skein/protocol';
import { createClient } from './client.ts';
import { describeError, hasErrorCode, isOutcomeUnknown } from './errors.ts';
import { drop, empty, hang, json, problem, startFakeApi, wireEvent } from './testing/fake-api.ts';
import type { FakeApi, FakeHandler } from './testing/fake-api.ts';

const KEY = 'k'.repeat(40);
const servers: FakeApi[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function setup(handlers: FakeHandler | FakeHandler[], options: { retries?: number; timeoutMs?: number; maxRetryDelayMs?: number } = {}) {
  const api = await startFakeApi(handlers);
  servers.push(api);
  const client = createClient({ url: api.url, apiKey: KEY, retryDelayMs: 10, ...options });
  return { api, client };
}

/** Resolves once `done()` holds; fails after 2 s. */
async function waitFor(done: () => boolean): Promise<void> {
  for (const until = Date.now() + 2_000; !done(); ) {
    if (Date.now() > until) assert.fail('condition not met within 2 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const BIG = '9007199254740993'; // 2^53 + 1: lost as a number
const appended = { streamId: 'order-1', firstVersion: 4, lastVersion: 5, firstPosition: BIG, lastPosition: '9007199254740994' };

test('append posts the events with the key and the expected version, and returns positions as bigints', async () => {
  const { api, client } = await setup(json(201, appended));
  const result = await client.append('acme', 'order-1', {
    events: [{ type: 'A', data: { x: 1 } }, { type: 'B', data: null }],
    expectedVersion: 3,
    idempotencyKey: 'req-1',
  });
  assert.deepEqual(result, { ...appended, firstPosition: 9007199254740993n, lastPosition: 9007199254740994n });
  const req = api.requests[0]!;
  assert.equal(req.method, 'POST');
  assert.equal(req.path, '/v1/tenants/acme/streams/order-1/events');
  assert.equal(req.headers.authorization, `Bearer ${KEY}`);
  assert.equal(req.headers['idempotency-key'], 'req-1');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(req.body), { events: [{ type: 'A', data: { x: 1 } }, { type: 'B', data: null }], expectedVersion: 3 });
});

test('append reports a repeated request as duplicate', async () => {
  const { client } = await setup(json(200, { ...appended, duplicate: true }));
  const result = await client.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }], idempotencyKey: 'req-1' });
  assert.equal(result.duplicate, true);
});

test('percent-encodes tenant and stream ids in paths', async () => {
  const { api, client } = await setup(json(201, appended));
  await client.append('acme', 'a/b c?d', { events: [{ type: 'A', data: 1 }] });
  assert.equal(api.requests[0]!.url, '/v1/tenants/acme/streams/a%2Fb%20c%3Fd/events');
});

test('maps a version conflict to WRONG_EXPECTED_VERSION with expected and actual', async () => {
  const { client } = await setup(problem(409, 'WRONG_EXPECTED_VERSION', { expected: 3, actual: 5 }));
  const err = await client.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }], expectedVersion: 3 }).catch((e: unknown) => e);
  assert.ok(isSkeinError(err, 'WRONG_EXPECTED_VERSION'));
  assert.equal(err.status, 409);
  assert.equal(err.retryable, false);
  assert.deepEqual(err.details, { expected: 3, actual: 5 });
  assert.ok(hasErrorCode(err, 'WRONG_EXPECTED_VERSION') && err.details.actual === 5);
  assert.equal(describeError(err), 'WRONG_EXPECTED_VERSION: expected 3, stream is at 5');
});

test('maps problem documents to their codes with the extension members', async () => {
  const cases: [number, string, Record<string, unknown>][] = [
    [400, 'VALIDATION_FAILED', { field: 'events[0].type' }],
    [401, 'UNAUTHENTICATED', {}],
    [403, 'FORBIDDEN', {}],
    [404, 'STREAM_NOT_FOUND', {}],
    [410, 'STREAM_DELETED', {}],
    [413, 'PAYLOAD_TOO_LARGE', { field: 'events[0]', limit: 1048576 }],
    [422, 'IDEMPOTENCY_KEY_REUSED', {}],
    [500, 'INTERNAL', { outcome: 'unknown' }],
  ];
  const { client } = await setup(cases.map(([status, code, ext]) => problem(status, code, ext)));
  for (const [status, code, ext] of cases) {
    const err = await client.append('acme', 's', { events: [{ type: 'A', data: 1 }] }).catch((e: unknown) => e);
    assert.ok(err instanceof SkeinError, code);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    assert.equal(err.message, `detail of ${code}`);
    assert.deepEqual(err.details, ext);
  }
});

test('a 503 carries Retry-After as retryAfter; an answer that is no problem document maps by status', async () => {
  const { client } = await setup(
    [
      problem(503, 'UNAVAILABLE', {}, { 'retry-after': '7' }),
      (_req, res) => {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<html>bad gateway</html>');
      },
      json(404, { what: 'no code here' }),
    ],
    { retries: 0 },
  );
  const unavailable = await client.readStream('acme', 's').catch((e: unknown) => e);
  assert.ok(hasErrorCode(unavailable, 'UNAVAILABLE'));
  assert.equal(unavailable.details.retryAfter, 7);
  const gateway = await client.readStream('acme', 's').catch((e: unknown) => e);
  assert.ok(isSkeinError(gateway, 'UNAVAILABLE'));
  assert.equal(gateway.details.httpStatus, 502);
  const notFound = await client.readStream('acme', 's').catch((e: unknown) => e);
  assert.ok(isSkeinError(notFound, 'NOT_FOUND'));
});

test('a network failure is UNAVAILABLE with the cause', async () => {
  const { api, client } = await setup(json(200, {}));
  await api.close();
  const err = await client.readStream('acme', 's').catch((e: unknown) => e);
  assert.ok(isSkeinError(err, 'UNAVAILABLE'));
  assert.ok(err.cause !== undefined);
  assert.match(err.message, /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  assert.equal(isOutcomeUnknown(err), false);
});

test('does not retry an append without an idempotency key on 503', async () => {
  const { api, client } = await setup([problem(503, 'UNAVAILABLE', {}, { 'retry-after': '0' }), json(201, appended)]);
  const err = await client.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }] }).catch((e: unknown) => e);
  assert.ok(isSkeinError(err, 'UNAVAILABLE'));
  assert.equal(api.requests.length, 1);
});

test('does not retry an append without an idempotency key when the connection breaks, and says the outcome is unknown', async () => {
  const { api, client } = await setup([drop, json(201, appended)]);
  const err = await client.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }] }).catch((e: unknown) => e);
  assert.ok(isSkeinError(err, 'UNAVAILABLE'));
  assert.ok(isOutcomeUnknown(err));
  assert.equal(api.requests.length, 1);
});

test('retries an append with an idempotency key after a 503 and a broken connection, with the same key and body', async () => {
  const { api, client } = await setup([problem(503, 'UNAVAILABLE', {}, { 'retry-after': '0' }), drop, json(200, { ...appended, duplicate: true })]);
  const result = await client.append('acme', 'order-1', { events: [{ type: 'A', data: 1 }], idempotencyKey: 'req-9' });
  assert.equal(result.duplicate, true);
  assert.equal(api.requests.length, 3);
  for (const req of api.requests) {
    assert.equal(req.headers['idempotency-key'], 'req-9');
    assert.equal(req.body, api.requests[0]!.body);
  }
});

test('never retries other writes', async () => {
  const { api, client } = await setup(problem(503, 'UNAVAILABLE', {}, { 'retry-after': '0' }));
  await assert.rejects(client.putStreamMetadata('acme', 's', { maxCount: 3 }), (e) => isSkeinError(e, 'UNAVAILABLE'));
  await assert.rejects(client.deleteStream('acme', 's'), (e) => isSkeinError(e, 'UNAVAILABLE'));
  await assert.rejects(client.putSnapshot('acme', 's', 3, { a: 1 }), (e) => isSkeinError(e, 'UNAVAILABLE'));
  await assert.rejects(client.admin.createTenant('t1'), (e) => isSkeinError(e, 'UNAVAILABLE'));
  assert.equal(api.requests.length, 4);
});

test('retries a GET on 429 and 503, waiting as long as Retry-After says', async () => {
  const page = { events: [], version: 0, next: null };
  const { api, client } = await setup([
    problem(429, 'RATE_LIMITED', {}, { 'retry-after': '0.3' }),
    problem(503, 'UNAVAILABLE', { retryAfter: 0.2 }),
    json(200, page),
  ]);
  const started = performance.now();
  assert.deepEqual(await client.readStream('acme', 's'), page);
  const elapsed = performance.now() - started;
  assert.equal(api.requests.length, 3);
  assert.ok(elapsed >= 480, `waited only ${elapsed} ms`);
  assert.ok(elapsed < 3000, `waited ${elapsed} ms`);
});

test('gives up on a GET after the configured retries, and does not wait for a Retry-After beyond maxRetryDelayMs', async () => {
  const { api, client } = await setup(drop, { retries: 2 });
  await assert.rejects(client.readStream('acme', 's'), (e) => isSkeinError(e, 'UNAVAILABLE'));
  assert.equal(api.requests.length, 3);

  const slow = await setup(problem(503, 'UNAVAILABLE', {}, { 'retry-after': '60' }), { maxRetryDelayMs: 1000 });
  const err = await slow.client.readStream('acme', 's').catch((e: unknown) => e);
  assert.ok(hasErrorCode(err, 'UNAVAILABLE') && err.details.retryAfter === 60);
  assert.equal(slow.api.requests.length, 1);
});

test('does not retry a GET that failed for good', async () => {
  const { api, client } = await setup(problem(404, 'STREAM_NOT_FOUND'));
  await assert.rejects(client.readStream('acme', 's'), (e) => isSkeinError(e, 'STREAM_NOT_FOUND'));
  assert.equal(api.requests.length, 1);
});

test('times out a request that gets no answer as UNAVAILABLE', async () => {
  const { client } = await setup(hang, { timeoutMs: 150, retries: 0 });
  const err = await client.readStream('acme', 's').catch((e: unknown) => e);
  assert.ok(hasErrorCode(err, 'UNAVAILABLE') && err.details.timeoutMs === 150);
});

test('an aborted call rejects with the signal reason and is not retried', async () => {
  const { api, client } = await setup(hang);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(client.readStream('acme', 's', { signal: controller.signal }), (e: Error) => e.name === 'AbortError');
  assert.equal(api.requests.length, 1);
});

test('readStream passes from, direction and limit, and parses positions', async () => {
  const { api, client } = await setup(json(200, { events: [wireEvent(5, BIG)], version: 9, next: 4 }));
  const page = await client.readStream('acme', 'order-1', { from: 5, direction: 'backward', limit: 1 });
  assert.equal(api.requests[0]!.url, '/v1/tenants/acme/streams/order-1?from=5&direction=backward&limit=1');
  assert.equal(page.events[0]!.position, 9007199254740993n);
  assert.equal(page.events[0]!.version, 5);
  assert.equal(page.version, 9);
  assert.equal(page.next, 4);
});

/**
 * A stream of versions `first`..`last` paged as the server pages it, answered by the
 * query alone (reads ahead arrive in any order): at most `limit` events a page, and at
 * most `cap(from)` (the server's byte budget), forward or backward.
 */
function streamModel(first: number, last: number, cap: (from: number) => number = () => Number.POSITIVE_INFINITY): FakeHandler {
  return (req, res) => {
    const backward = req.query.get('direction') === 'backward';
    const limit = Number(req.query.get('limit') ?? 100);
    const param = req.query.get('from');
    const from = param === null ? (backward ? last : first) : Number(param);
    const n = Math.min(limit, cap(from));
    const versions: number[] = [];
    if (backward) for (let v = Math.min(from, last); v >= first && versions.length < n; v--) versions.push(v);
    else for (let v = Math.max(from, first); v <= last && versions.length < n; v++) versions.push(v);
    const end = versions.at(-1);
    const next = end === undefined ? null : backward ? (end > first ? end - 1 : null) : end < last ? end + 1 : null;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ events: versions.map((v) => wireEvent(v, 100 + v)), version: last, next }));
  };
}

/** The `from` of every read the server got, once there are `count` (reads dropped unread may arrive after the last event was handed out). */
async function froms(api: { requests: { query: URLSearchParams }[] }, count: number): Promise<string[]> {
  await waitFor(() => api.requests.length >= count);
  return api.requests.map((r) => r.query.get('from') ?? '-').sort((a, b) => Number(a) - Number(b));
}

test('streamEvents walks the pages until next is null, asking for two ahead of the one it hands out', async () => {
  const { api, client } = await setup(streamModel(1, 9));
  const versions: number[] = [];
  for await (const e of client.streamEvents('acme', 'order-1', { pageSize: 2 })) versions.push(e.version);
  assert.deepEqual(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // 11: the guess made from the page of 7 (pages move by 2), which the page of 9 (the last) made moot.
  assert.deepEqual(await froms(api, 6), ['-', '3', '5', '7', '9', '11']);
  assert.ok(api.requests.every((r) => r.query.get('limit') === '2'));
});

test('streamEvents drops a read ahead that the pages contradict, and hands out every event once, in order', async () => {
  // The page from 3 holds one event (a byte budget): the guess made from it (5) is wrong.
  const { api, client } = await setup(streamModel(1, 10, (from) => (from === 3 ? 1 : 2)));
  const versions: number[] = [];
  for await (const e of client.streamEvents('acme', 'order-1', { pageSize: 2 })) versions.push(e.version);
  assert.deepEqual(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(await froms(api, 8), ['-', '3', '4', '5', '6', '8', '10', '12']);
});

test('streamEvents reads backward without asking below version 1', async () => {
  const { api, client } = await setup(streamModel(1, 7));
  const versions: number[] = [];
  for await (const e of client.streamEvents('acme', 'order-1', { pageSize: 3, direction: 'backward' })) versions.push(e.version);
  assert.deepEqual(versions, [7, 6, 5, 4, 3, 2, 1]);
  assert.deepEqual(await froms(api, 3), ['-', '1', '4']);
});

test('streamEvents asks for the next page before parsing this one, from the next that ends its text', async () => {
  const malformed: FakeHandler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"events":[oops],"version":5,"next":3}');
  };
  const { api, client } = await setup([malformed, json(200, { events: [wireEvent(3, 12)], version: 5, next: null })]);
  const err = await (async () => {
    for await (const _e of client.streamEvents('acme', 'order-1', { pageSize: 2 })) assert.fail('no event expected');
  })().catch((e: unknown) => e);
  assert.ok(isSkeinError(err, 'INTERNAL'));
  await waitFor(() => api.requests.length === 2);
  assert.equal(api.requests[1]!.query.get('from'), '3');
});

test('streamEvents walks pages whose next does not end the text, and asks for none beyond its limit', async () => {
  const nextFirst = (body: Record<string, unknown>): FakeHandler => (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ next: body.next, ...body }));
  };
  const { api, client } = await setup([
    nextFirst({ events: [wireEvent(1, 10), wireEvent(2, 11)], version: 5, next: 3 }),
    nextFirst({ events: [wireEvent(3, 12), wireEvent(4, 13)], version: 5, next: 5 }),
    nextFirst({ events: [wireEvent(5, 14)], version: 5, next: null }),
  ]);
  const versions: number[] = [];
  for await (const e of client.streamEvents('acme', 'order-1', { pageSize: 2 })) versions.push(e.version);
  assert.deepEqual(versions, [1, 2, 3, 4, 5]);
  assert.deepEqual(api.requests.map((r) => r.query.get('from')), [null, '3', '5']);

  const limited = await setup([
    json(200, { events: [wireEvent(1, 10), wireEvent(2, 11)], version: 5, next: 3 }),
    json(200, { events: [wireEvent(3, 12)], version: 5, next: 4 }),
  ]);
  const read: number[] = [];
  for await (const e of limited.client.streamEvents('acme', 'order-1', { pageSize: 2, limit: 3 })) read.push(e.version);
  assert.deepEqual(read, [1, 2, 3]);
  assert.deepEqual(limited.api.requests.map((r) => [r.query.get('from'), r.query.get('limit')]), [[null, '2'], ['3', '1']]);
});

test('tenantLogEvents walks the pages until an empty page, accepting any position form', async () => {
  const { api, client } = await setup([
    json(200, { events: [wireEvent(1, BIG)], next: '9007199254740994' }),
    json(200, { events: [wireEvent(2, '9007199254740994')], next: '9007199254740995' }),
    json(200, { events: [], next: '9007199254740995' }),
  ]);
  const positions: bigint[] = [];
  for await (const e of client.tenantLogEvents('acme', { fromPosition: 9007199254740993n, category: 'order', types: ['A', 'B'] })) {
    positions.push(e.position);
  }
  assert.deepEqual(positions, [9007199254740993n, 9007199254740994n]);
  assert.deepEqual(
    api.requests.map((r) => r.query.get('fromPosition')),
    [BIG, '9007199254740994', '9007199254740995'],
  );
  assert.equal(api.requests[0]!.query.get('category'), 'order');
  assert.equal(api.requests[0]!.query.get('types'), 'A,B');

  const page = await (await setup(json(200, { events: [], next: '12' }))).client.readTenantLog('acme', { fromPosition: '12' });
  assert.deepEqual(page, { events: [], next: 12n });
  await assert.rejects(client.readTenantLog('acme', { fromPosition: -1 }), (e) => isSkeinError(e, 'VALIDATION_FAILED'));
});

test('readClusterLog reads /v1/events and keeps each event tenant', async () => {
  const { api, client } = await setup(json(200, { events: [wireEvent(1, 3, { tenant: 'acme' })], next: '4' }));
  const page = await client.readClusterLog({ fromPosition: 3, limit: 10 });
  assert.equal(api.requests[0]!.url, '/v1/events?fromPosition=3&limit=10');
  assert.equal(page.events[0]!.tenant, 'acme');
  assert.equal(page.next, 4n);
});

test('latestSnapshot is null when there is none; putSnapshot puts at the version', async () => {
  const { api, client } = await setup([problem(404, 'SNAPSHOT_NOT_FOUND'), json(200, { version: 3, data: { s: 1 } }), empty(204)]);
  assert.equal(await client.latestSnapshot('acme', 'order-1'), null);
  assert.deepEqual(await client.latestSnapshot('acme', 'order-1'), { version: 3, data: { s: 1 } });
  await client.putSnapshot('acme', 'order-1', 3, { s: 1 });
  assert.equal(api.requests[0]!.path, '/v1/tenants/acme/streams/order-1/snapshots/latest');
  assert.equal(api.requests[2]!.method, 'PUT');
  assert.equal(api.requests[2]!.path, '/v1/tenants/acme/streams/order-1/snapshots/3');
  assert.deepEqual(JSON.parse(api.requests[2]!.body), { s: 1 });
});

test('stream metadata get and put, and deleteStream with mode and expected version', async () => {
  const { api, client } = await setup([json(200, { maxCount: 3 }), empty(204), empty(204)]);
  assert.deepEqual(await client.getStreamMetadata('acme', 'order-1'), { maxCount: 3 });
  await client.putStreamMetadata('acme', 'order-1', { maxAge: 60, custom: { a: 1 } });
  await client.deleteStream('acme', 'order-1', { mode: 'hard', expectedVersion: 7 });
  assert.equal(api.requests[1]!.method, 'PUT');
  assert.equal(api.requests[1]!.path, '/v1/tenants/acme/streams/order-1/metadata');
  assert.deepEqual(JSON.parse(api.requests[1]!.body), { maxAge: 60, custom: { a: 1 } });
  assert.equal(api.requests[2]!.method, 'DELETE');
  assert.equal(api.requests[2]!.url, '/v1/tenants/acme/streams/order-1?mode=hard&expectedVersion=7');
});

test('admin calls: tenants, keys and the cluster', async () => {
  const { api, client } = await setup([
    json(201, { tenant: 't1', partitions: 4, apiKey: 'x'.repeat(40) }),
    json(200, { tenant: 't1', partitions: 4 }),
    problem(404, 'TENANT_NOT_FOUND'),
    json(201, { keyId: 'key-2', apiKey: 'y'.repeat(40) }),
    empty(204),
    json(200, { epoch: 3, shards: [{ id: 's1', healthy: true }] }),
  ]);
  assert.deepEqual(await client.admin.createTenant('t1', { partitions: 4 }), { tenant: 't1', partitions: 4, apiKey: 'x'.repeat(40) });
  assert.deepEqual(JSON.parse(api.requests[0]!.body), { tenant: 't1', partitions: 4 });
  assert.deepEqual(await client.admin.getTenant('t1'), { tenant: 't1', partitions: 4 });
  assert.equal(await client.admin.getTenant('t2'), null);
  assert.equal((await client.admin.createKey('t1')).keyId, 'key-2');
  await client.admin.deleteKey('t1', 'key-2');
  assert.equal((await client.admin.cluster()).epoch, 3);
  assert.deepEqual(
    api.requests.map((r) => `${r.method} ${r.path}`),
    [
      'POST /v1/admin/tenants',
      'GET /v1/admin/tenants/t1',
      'GET /v1/admin/tenants/t2',
      'POST /v1/admin/tenants/t1/keys',
      'DELETE /v1/admin/tenants/t1/keys/key-2',
      'GET /v1/admin/cluster',
    ],
  );
});

test('health, readiness and metrics', async () => {
  const metrics: FakeHandler = (_req, res) => {
    res.end('skein_up 1\n');
  };
  const { client } = await setup([empty(200), empty(503), metrics]);
  assert.equal(await client.health(), true);
  assert.equal(await client.ready(), false);
  assert.equal(await client.metrics(), 'skein_up 1\n');
});

test('rejects a malformed idempotency key before sending anything', async () => {
  const { api, client } = await setup(json(201, appended));
  const err = await client.append('acme', 's', { events: [{ type: 'A', data: 1 }], idempotencyKey: 'has space' }).catch((e: unknown) => e);
  assert.ok(hasErrorCode(err, 'VALIDATION_FAILED') && err.details.field === 'idempotencyKey');
  assert.equal(api.requests.length, 0);
});
