// End to end through real processes: a private redis-server, three shards, two routers
// (or a node hosting the three shards and a router, plus a second router).
// Every endpoint and error code of API.md over raw HTTP; every rejection leaves the store unchanged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { partitionOf } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { assertProblem, call, postOversized, readSse, tenantName } from './support.ts';

let cluster: Cluster;
let url: string;
let url2: string;
let admin: string;


async function createTenant(partitions = 1, name = tenantName()) {
  const r = await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: name, partitions } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { tenant: name as string, key: r.body.apiKey as string };
}

async function append(t: { tenant: string; key: string }, stream: string, body: unknown, headers: Record<string, string> = {}, base = url) {
  return call(base, 'POST', `/v1/tenants/${t.tenant}/streams/${encodeURIComponent(stream)}/events`, { key: t.key, body, headers });
}

async function streamVersion(t: { tenant: string; key: string }, stream: string): Promise<number> {
  const r = await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/${encodeURIComponent(stream)}`, { key: t.key });
  return r.status === 200 ? r.body.version : 0;
}

// Both topologies: separate shard processes and a router (`npm start -- --processes 3`), and
// one node process hosting the router and every shard, which it calls in-process (`npm start`).
for (const topology of ['processes', 'node'] as const) describe(`${topology} topology`, () => {
  before(async () => {
    cluster = await startCluster({ topology, shards: 3, routers: 2 });
    url = cluster.routers[0]!.url;
    url2 = cluster.routers[1]!.url;
    admin = cluster.adminKey;
  });
  after(async () => {
    await cluster?.stop();
  });

  describe('tenants and keys', () => {
    test('creates a tenant once, shows the key once, and refuses a second one with TENANT_EXISTS', async () => {
      const { tenant, key } = await createTenant(2);
      assert.ok(key.length >= 32);
      assertProblem(await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant } }), 409, 'TENANT_EXISTS');
      const got = await call(url, 'GET', `/v1/admin/tenants/${tenant}`, { key: admin });
      assert.equal(got.status, 200);
      assert.equal(got.body.partitions, 2);
      assert.doesNotMatch(JSON.stringify(got.body), new RegExp(key));
      assertProblem(await call(url, 'GET', `/v1/admin/tenants/${tenantName()}`, { key: admin }), 404, 'TENANT_NOT_FOUND');
    });

    test('admin endpoints refuse tenant keys, and bad tenant bodies with VALIDATION_FAILED', async () => {
      const t = await createTenant();
      assertProblem(await call(url, 'POST', '/v1/admin/tenants', { key: t.key, body: { tenant: tenantName() } }), 403, 'FORBIDDEN');
      assertProblem(await call(url, 'GET', '/v1/admin/cluster', { key: t.key }), 403, 'FORBIDDEN');
      assertProblem(await call(url, 'GET', '/v1/events', { key: t.key }), 403, 'FORBIDDEN');
      const bad = await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: 'Bad_Name' } });
      assertProblem(bad, 400, 'VALIDATION_FAILED');
      assert.equal(bad.body.field, 'tenant');
      assertProblem(await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: tenantName(), partitions: 0 } }), 400, 'VALIDATION_FAILED');
      assertProblem(await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: tenantName(), extra: 1 } }), 400, 'VALIDATION_FAILED');
    });

    test('a second key works; a deleted key stops working at once, on every router', async () => {
      const t = await createTenant();
      const k = await call(url, 'POST', `/v1/admin/tenants/${t.tenant}/keys`, { key: admin });
      assert.equal(k.status, 201);
      const second = { tenant: t.tenant, key: k.body.apiKey as string };
      assert.equal((await append(second, 's-1', { events: [{ type: 'A', data: 1 }] }, {}, url2)).status, 201);
      assert.equal((await call(url, 'DELETE', `/v1/admin/tenants/${t.tenant}/keys/${k.body.keyId}`, { key: admin })).status, 204);
      assertProblem(await append(second, 's-1', { events: [{ type: 'A', data: 1 }] }), 401, 'UNAUTHENTICATED');
      assertProblem(await append(second, 's-1', { events: [{ type: 'A', data: 1 }] }, {}, url2), 401, 'UNAUTHENTICATED');
      assert.equal((await append(t, 's-1', { events: [{ type: 'A', data: 1 }] })).status, 201);
      assertProblem(await call(url, 'DELETE', `/v1/admin/tenants/${t.tenant}/keys/${k.body.keyId}`, { key: admin }), 404, 'NOT_FOUND');
    });

    test('a key reaches its own tenant only: another tenant, existing or not, is 403 and reveals nothing', async () => {
      const a = await createTenant();
      const b = await createTenant();
      await append(b, 'secret-1', { events: [{ type: 'A', data: 'b' }] });
      const existing = await call(url, 'GET', `/v1/tenants/${b.tenant}/streams/secret-1`, { key: a.key });
      const missing = await call(url, 'GET', `/v1/tenants/${tenantName()}/streams/secret-1`, { key: a.key });
      assertProblem(existing, 403, 'FORBIDDEN');
      assertProblem(missing, 403, 'FORBIDDEN');
      assert.deepEqual(existing.body, missing.body);
      assertProblem(await append(a, 'x', { events: [{ type: 'A', data: 1 }] }, { authorization: `Bearer ${'z'.repeat(40)}` }), 401, 'UNAUTHENTICATED');
      assertProblem(await call(url, 'GET', `/v1/tenants/${a.tenant}/streams/x`), 401, 'UNAUTHENTICATED');
      // Validation errors never come before authentication.
      assertProblem(await call(url, 'POST', `/v1/tenants/${b.tenant}/streams/x/events`, { key: a.key, raw: '{bad', headers: { 'content-type': 'application/json' } }), 403, 'FORBIDDEN');
    });
  });

  describe('appends and reads', () => {
    test('appends, reads forward and backward with paging, and answers conflicts with expected and actual', async () => {
      const t = await createTenant();
      const first = await append(t, 'order-1', { expectedVersion: 'no_stream', events: [{ type: 'Placed', data: { n: 1 }, metadata: { by: 'x' } }, { type: 'Paid', data: null }] });
      assert.equal(first.status, 201);
      assert.deepEqual({ ...first.body, firstPosition: typeof first.body.firstPosition }, { streamId: 'order-1', firstVersion: 1, lastVersion: 2, firstPosition: 'string', lastPosition: first.body.lastPosition });
      const conflict = await append(t, 'order-1', { expectedVersion: 1, events: [{ type: 'X', data: 1 }] });
      assertProblem(conflict, 409, 'WRONG_EXPECTED_VERSION');
      assert.equal(conflict.body.expected, 1);
      assert.equal(conflict.body.actual, 2);
      assert.equal((await append(t, 'order-1', { expectedVersion: 2, events: [{ type: 'Shipped', data: 3 }] })).status, 201);
      const page1 = await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/order-1?limit=2`, { key: t.key });
      assert.equal(page1.status, 200);
      assert.match(page1.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(Object.keys(page1.body).sort(), ['events', 'next', 'version']);
      assert.deepEqual(page1.body.events.map((e: any) => [e.version, e.type]), [[1, 'Placed'], [2, 'Paid']]);
      assert.deepEqual(page1.body.events[0].metadata, { by: 'x' });
      assert.match(page1.body.events[0].timestamp, /^\d{4}-\d\d-\d\dT/);
      assert.equal(page1.body.next, 3);
      const back = await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/order-1?direction=backward&limit=2`, { key: t.key });
      assert.deepEqual(back.body.events.map((e: any) => e.version), [3, 2]);
      assert.equal(back.body.next, 1);
      assertProblem(await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/nope`, { key: t.key }), 404, 'STREAM_NOT_FOUND');
    });

    test('bad input is refused with its code and changes nothing', async () => {
      const t = await createTenant();
      await append(t, 's-1', { events: [{ type: 'A', data: 1 }] });
      const path = `/v1/tenants/${t.tenant}/streams/s-1/events`;
      assertProblem(await call(url, 'POST', path, { key: t.key, raw: '{"events": [', headers: { 'content-type': 'application/json' } }), 400, 'MALFORMED_JSON');
      assertProblem(await call(url, 'POST', path, { key: t.key, raw: 'events', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      assertProblem(await postOversized(url, path, t.key, 5 * 1024 * 1024), 413, 'PAYLOAD_TOO_LARGE');
      assertProblem(await append(t, 's-1', { events: [{ type: 'A', data: 'x'.repeat(1024 * 1024) }] }), 413, 'PAYLOAD_TOO_LARGE');
      const cases: [unknown, string][] = [
        [{ events: [] }, 'events'],
        [{}, 'events'],
        [{ events: [{ type: 'A' }] }, 'events[0].data'],
        [{ events: [{ data: 1 }] }, 'events[0].type'],
        [{ events: [{ type: 'A', data: 1, id: 'not-a-uuid' }] }, 'events[0].id'],
        [{ events: [{ type: '', data: 1 }] }, 'events[0].type'],
        [{ expectedVersion: -1, events: [{ type: 'A', data: 1 }] }, 'expectedVersion'],
        [{ expectedVersion: 'latest', events: [{ type: 'A', data: 1 }] }, 'expectedVersion'],
        [{ expectedVersion: '3', events: [{ type: 'A', data: 1 }] }, 'expectedVersion'],
        [{ events: [{ type: 'A', data: 1 }], extra: true }, 'extra'],
      ];
      for (const [body, field] of cases) {
        const r = await append(t, 's-1', body);
        assertProblem(r, 400, 'VALIDATION_FAILED');
        assert.equal(r.body.field, field, `field for ${JSON.stringify(body)}`);
      }
      assertProblem(await append(t, 's\u0001x', { events: [{ type: 'A', data: 1 }] }), 400, 'VALIDATION_FAILED');
      assertProblem(await append(t, 'é'.repeat(129), { events: [{ type: 'A', data: 1 }] }), 400, 'VALIDATION_FAILED');
      assertProblem(await append(t, 's-1', { events: [{ type: 'A', data: 1 }] }, { 'idempotency-key': 'has space' }), 400, 'VALIDATION_FAILED');
      for (const q of ['limit=0', 'limit=1001', 'limit=x', 'from=0', 'direction=sideways', 'bogus=1']) {
        assertProblem(await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/s-1?${q}`, { key: t.key }), 400, 'VALIDATION_FAILED');
      }
      for (const q of ['fromPosition=-1', 'fromPosition=abc', 'limit=0']) {
        assertProblem(await call(url, 'GET', `/v1/tenants/${t.tenant}/events?${q}`, { key: t.key }), 400, 'VALIDATION_FAILED');
      }
      assertProblem(await call(url, 'GET', '/v1/nothing-here', { key: t.key }), 404, 'NOT_FOUND');
      assert.equal(await streamVersion(t, 's-1'), 1, 'nothing was written');
    });

    test('Idempotency-Key returns the original result, even racing it; another body with the key is 422', async () => {
      const t = await createTenant();
      const body = { events: [{ type: 'A', data: { n: 1 } }] };
      const replies = await Promise.all([url, url2, url, url2].map((base) => append(t, 's-1', body, { 'idempotency-key': 'req-1' }, base)));
      const created = replies.filter((r) => r.status === 201);
      const dups = replies.filter((r) => r.status === 200);
      assert.equal(created.length, 1, JSON.stringify(replies.map((r) => r.status)));
      assert.equal(dups.length, 3);
      for (const d of dups) assert.deepEqual(d.body, { ...created[0]!.body, duplicate: true });
      assertProblem(await append(t, 's-1', { events: [{ type: 'A', data: { n: 2 } }] }, { 'idempotency-key': 'req-1' }), 422, 'IDEMPOTENCY_KEY_REUSED');
      assert.equal(await streamVersion(t, 's-1'), 1);
    });

    test('event ids with an exact expected version make a retry a duplicate', async () => {
      const t = await createTenant();
      const body = { expectedVersion: 'no_stream', events: [{ id: randomUUID(), type: 'A', data: 1 }] };
      const first = await append(t, 's-1', body);
      const again = await append(t, 's-1', body);
      assert.equal(first.status, 201);
      assert.equal(again.status, 200);
      assert.deepEqual(again.body, { ...first.body, duplicate: true });
    });

    test('40 writers at one expected version: exactly one wins; 100 concurrent any-appends: versions contiguous', async () => {
      const t = await createTenant();
      await append(t, 'race', { events: [{ type: 'A', data: 0 }] });
      const racers = await Promise.all(Array.from({ length: 40 }, (_, i) => append(t, 'race', { expectedVersion: 1, events: [{ type: 'B', data: i }] }, {}, i % 2 ? url : url2)));
      assert.equal(racers.filter((r) => r.status === 201).length, 1);
      for (const r of racers.filter((r) => r.status !== 201)) assertProblem(r, 409, 'WRONG_EXPECTED_VERSION');
      const anys = await Promise.all(Array.from({ length: 100 }, (_, i) => append(t, 'anys', { events: [{ type: 'C', data: i }] }, {}, i % 2 ? url : url2)));
      assert.ok(anys.every((r) => r.status === 201));
      assert.deepEqual(anys.map((r) => r.body.firstVersion).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1));
      const read = await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/anys?limit=1000`, { key: t.key });
      assert.deepEqual(read.body.events.map((e: any) => e.version), Array.from({ length: 100 }, (_, i) => i + 1));
    });

    test('metadata limits reads at once; soft delete hides until the next append; hard delete is final', async () => {
      const t = await createTenant();
      const base = `/v1/tenants/${t.tenant}/streams/s-1`;
      await append(t, 's-1', { events: [1, 2, 3, 4].map((n) => ({ type: 'A', data: n })) });
      assert.deepEqual((await call(url, 'GET', `${base}/metadata`, { key: t.key })).body, {});
      assert.equal((await call(url, 'PUT', `${base}/metadata`, { key: t.key, body: { maxCount: 2, custom: { a: 1 } } })).status, 204);
      assert.deepEqual((await call(url, 'GET', `${base}/metadata`, { key: t.key })).body, { maxCount: 2, custom: { a: 1 } });
      assert.deepEqual((await call(url, 'GET', base, { key: t.key })).body.events.map((e: any) => e.version), [3, 4]);
      assertProblem(await call(url, 'PUT', `${base}/metadata`, { key: t.key, body: { maxCount: 0 } }), 400, 'VALIDATION_FAILED');
      assertProblem(await call(url, 'DELETE', `${base}?expectedVersion=3`, { key: t.key }), 409, 'WRONG_EXPECTED_VERSION');
      assert.equal((await call(url, 'DELETE', `${base}?expectedVersion=4`, { key: t.key })).status, 204);
      assertProblem(await call(url, 'GET', base, { key: t.key }), 404, 'STREAM_NOT_FOUND');
      const again = await append(t, 's-1', { expectedVersion: 'no_stream', events: [{ type: 'B', data: 5 }] });
      assert.equal(again.body.firstVersion, 5);
      assert.equal((await call(url, 'DELETE', `${base}?mode=hard`, { key: t.key })).status, 204);
      assertProblem(await call(url, 'GET', base, { key: t.key }), 410, 'STREAM_DELETED');
      assertProblem(await append(t, 's-1', { events: [{ type: 'C', data: 6 }] }), 410, 'STREAM_DELETED');
      assertProblem(await call(url, 'DELETE', `${base}?mode=hard`, { key: t.key }), 410, 'STREAM_DELETED');
      assertProblem(await call(url, 'DELETE', `/v1/tenants/${t.tenant}/streams/never`, { key: t.key }), 404, 'STREAM_NOT_FOUND');
      assertProblem(await call(url, 'DELETE', `${base}?mode=erase`, { key: t.key }), 400, 'VALIDATION_FAILED');
    });

    test('snapshots: latest wins; beyond the version is VALIDATION_FAILED; none is SNAPSHOT_NOT_FOUND', async () => {
      const t = await createTenant();
      const base = `/v1/tenants/${t.tenant}/streams/s-1/snapshots`;
      assertProblem(await call(url, 'PUT', `${base}/1`, { key: t.key, body: { a: 1 } }), 404, 'STREAM_NOT_FOUND');
      await append(t, 's-1', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 2 }] });
      assertProblem(await call(url, 'GET', `${base}/latest`, { key: t.key }), 404, 'SNAPSHOT_NOT_FOUND');
      assert.equal((await call(url, 'PUT', `${base}/2`, { key: t.key, body: { total: 3 } })).status, 204);
      assert.deepEqual((await call(url, 'GET', `${base}/latest`, { key: t.key })).body, { version: 2, data: { total: 3 } });
      assertProblem(await call(url, 'PUT', `${base}/3`, { key: t.key, body: {} }), 400, 'VALIDATION_FAILED');
    });
  });

  describe('tenant quotas', () => {
    test('a tenant over its quota gets 429 RATE_LIMITED with Retry-After across both routers, and refused appends write nothing', async () => {
      const name = tenantName();
      const created = await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: name, partitions: 3, quota: { eventsPerSecond: 20 } } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(created.body.quota, { eventsPerSecond: 20 });
      assert.deepEqual((await call(url, 'GET', `/v1/admin/tenants/${name}`, { key: admin })).body.quota, { eventsPerSecond: 20 });
      const t = { tenant: name, key: created.body.apiKey as string };

      // 60 two-event appends at once, half through each router: at most 10 fit one window.
      const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => append(t, `q-${i}`, { events: [{ type: 'A', data: i }, { type: 'B', data: i }] }, {}, i % 2 ? url : url2)));
      const written = replies.filter((r) => r.status === 201);
      const refused = replies.filter((r) => r.status === 429);
      assert.equal(written.length + refused.length, 60, JSON.stringify(replies.filter((r) => r.status !== 201 && r.status !== 429).map((r) => r.body)));
      assert.ok(written.length >= 1 && written.length <= 20, `${written.length} written: at most two one-second windows' worth`);
      for (const r of refused) {
        assertProblem(r, 429, 'RATE_LIMITED');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
      }
      const stored = await call(url, 'GET', `/v1/tenants/${name}/events?limit=1000`, { key: t.key });
      assert.equal(stored.body.events.length, written.length * 2, 'only admitted appends are stored');

      // An append larger than the whole quota can never pass: a bad request, not "retry later".
      const big = await append(t, 'big', { events: Array.from({ length: 21 }, () => ({ type: 'A', data: 1 })) });
      assertProblem(big, 400, 'VALIDATION_FAILED');
      assert.equal(big.body.field, 'events');

      // The next window admits appends again.
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await append(t, 'after', { events: [{ type: 'A', data: 1 }] })).status, 201);

      // Without a quota there is no limit; a malformed quota is refused.
      const free = await createTenant();
      const burst = await Promise.all(Array.from({ length: 60 }, (_, i) => append(free, `f-${i}`, { events: [{ type: 'A', data: i }, { type: 'B', data: i }] })));
      assert.deepEqual([...new Set(burst.map((r) => r.status))], [201]);
      const bad = await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: tenantName(), quota: { eventsPerSecond: 0 } } });
      assertProblem(bad, 400, 'VALIDATION_FAILED');
      assert.match(bad.body.field, /^quota/);
    });
  });

  describe('logs in global order and subscriptions', () => {
    test('a multi-partition tenant log is every event once, in position order, with read-your-writes', async () => {
      const t = await createTenant(6);
      const acked: string[] = [];
      await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const r = await append(t, `order-${i % 12}`, { events: [{ type: 'A', data: i }] }, {}, i % 2 ? url : url2);
          assert.equal(r.status, 201);
          acked.push(r.body.firstPosition);
        }),
      );
      const seen: string[] = [];
      for (let from = '0'; ; ) {
        const page = await call(url, 'GET', `/v1/tenants/${t.tenant}/events?fromPosition=${from}&limit=7`, { key: t.key });
        assert.equal(page.status, 200);
        if (page.body.events.length === 0) {
          assert.equal(page.body.next, from);
          break;
        }
        seen.push(...page.body.events.map((e: any) => e.position));
        from = page.body.next;
      }
      assert.deepEqual(seen, [...acked].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)));
      const orders = await call(url, 'GET', `/v1/tenants/${t.tenant}/events?category=order&types=A&limit=1000`, { key: t.key });
      assert.equal(orders.body.events.length, 60);
      const cluster = await call(url, 'GET', '/v1/events?limit=1000', { key: admin });
      assert.equal(cluster.status, 200);
      assert.ok(cluster.body.events.some((e: any) => e.tenant === t.tenant));
    });

    test('a tenant log whose events one partition holds pages through every event once, in order, in full pages', async () => {
      const t = await createTenant(6);
      // Each partition is read for twice its share of a page (global-read.ts, sourceLimit), and
      // one that holds the page back is read again.
      const hot = Array.from({ length: 200 }, (_, i) => `hot-${i}`).filter((s) => partitionOf(t.tenant, 6, s) === partitionOf(t.tenant, 6, 'hot-0')).slice(0, 4);
      const spread = Array.from({ length: 12 }, (_, i) => `spread-${i}`);
      const positions: string[] = [];
      const hotPositions: string[] = [];
      for (let round = 0; round < 10; round++) {
        for (const s of [...hot, ...spread]) {
          const r = await append(t, s, { events: [{ type: 'A', data: round }, { type: 'B', data: round }] });
          assert.equal(r.status, 201);
          positions.push(r.body.firstPosition, r.body.lastPosition);
          if (s.startsWith('hot-')) hotPositions.push(r.body.firstPosition, r.body.lastPosition);
        }
      }
      const read = async (filter: string) => {
        const seen: string[] = [];
        const sizes: number[] = [];
        for (let from = '0'; ; ) {
          const page = await call(url, 'GET', `/v1/tenants/${t.tenant}/events?fromPosition=${from}&limit=12${filter}`, { key: t.key });
          assert.equal(page.status, 200);
          if (page.body.events.length === 0) break;
          sizes.push(page.body.events.length);
          seen.push(...page.body.events.map((e: any) => e.position));
          from = page.body.next;
        }
        return { seen, sizes };
      };
      const byPosition = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : 1);
      const all = await read('');
      assert.deepEqual(all.seen, [...positions].sort(byPosition));
      assert.ok(all.sizes.every((n) => n <= 12), `page sizes ${all.sizes}`);
      const onlyHot = await read('&category=hot');
      assert.deepEqual(onlyHot.seen, [...hotPositions].sort(byPosition));
      // One partition holds them all: read for its share (2 × 12 / 6) and then, alone, twice more.
      assert.ok(onlyHot.sizes.slice(0, -1).every((n) => n === 12), `page sizes ${onlyHot.sizes}`);
    });

    test('a tenant log subscription under concurrent writers gets every event once, in order, equal to the stored log', async () => {
      const t = await createTenant(4);
      const headers = { authorization: `Bearer ${t.key}` };
      await append(t, 'order-pre', { events: [{ type: 'A', data: 'before' }] });
      const total = 1 + 80;
      const received = readSse(`${url}/v1/tenants/${t.tenant}/events/subscribe?fromPosition=0`, headers, total);
      await Promise.all(Array.from({ length: 80 }, (_, i) => append(t, `order-${i % 9}`, { events: [{ type: 'A', data: i }] }, {}, i % 2 ? url : url2)));
      const events = await received;
      assert.equal(events.length, total);
      const stored = await call(url, 'GET', `/v1/tenants/${t.tenant}/events?limit=1000`, { key: t.key });
      assert.deepEqual(events.map((e) => e.data.position), stored.body.events.map((e: any) => e.position));
      assert.deepEqual(events.map((e) => e.id), stored.body.events.map((e: any) => e.position));
      assert.equal(events[0]!.event, 'A');
      // Resume after the 40th with Last-Event-ID: the rest, nothing twice.
      const resumed = await readSse(`${url}/v1/tenants/${t.tenant}/events/subscribe`, { ...headers, 'last-event-id': events[39]!.id }, total - 40);
      assert.deepEqual(resumed.map((e) => e.id), events.slice(40).map((e) => e.id));
    });

    test('a stream subscription catches up then goes live; a hard-deleted stream is 410', async () => {
      const t = await createTenant();
      const headers = { authorization: `Bearer ${t.key}` };
      await append(t, 's-1', { events: [{ type: 'A', data: 1 }, { type: 'B', data: 2 }] });
      const got = readSse(`${url}/v1/tenants/${t.tenant}/streams/s-1/subscribe?from=2`, headers, 3);
      await new Promise((r) => setTimeout(r, 200));
      await append(t, 's-1', { events: [{ type: 'C', data: 3 }, { type: 'D', data: 4 }] });
      const events = await got;
      assert.deepEqual(events.map((e) => [e.event, e.id, e.data.version]), [['B', '2', 2], ['C', '3', 3], ['D', '4', 4]]);
      const future = readSse(`${url}/v1/tenants/${t.tenant}/streams/not-yet/subscribe`, headers, 1);
      await new Promise((r) => setTimeout(r, 200));
      await append(t, 'not-yet', { events: [{ type: 'E', data: 5 }] });
      assert.deepEqual((await future).map((e) => e.data.type), ['E']);
      await call(url, 'DELETE', `/v1/tenants/${t.tenant}/streams/s-1?mode=hard`, { key: t.key });
      assertProblem(await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/s-1/subscribe`, { key: t.key }), 410, 'STREAM_DELETED');
    });
  });

  describe('operations', () => {
    test('serves an OpenAPI 3.1 document generated from the route schemas', async () => {
      const r = await call(url, 'GET', '/openapi.json');
      assert.equal(r.status, 200);
      assert.equal(r.body.openapi, '3.1.0');
      const append = r.body.paths['/v1/tenants/{tenant}/streams/{stream}/events'];
      assert.ok(append?.post?.requestBody, 'the append operation is documented with its body');
      assert.ok(r.body.paths['/v1/admin/tenants']?.post);
      assert.ok(r.body.paths['/v1/tenants/{tenant}/events']?.get);
    });

    test('health, readiness, metrics and the cluster view', async () => {
      assert.equal((await call(url, 'GET', '/healthz')).status, 200);
      assert.equal((await call(url, 'GET', '/readyz')).status, 200);
      const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
      assert.match(metrics, /^skein_router_http_request_duration_seconds_bucket\{.*code="200"/m);
      // Ours are skein_router_*; the default process metrics keep their standard names for stock dashboards.
      assert.match(metrics, /^process_cpu_seconds_total /m);
      assert.match(metrics, /^nodejs_eventloop_lag_seconds /m);
      const samples = metrics.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      assert.deepEqual(samples.filter((l) => !/^(skein_router_|process_|nodejs_)/.test(l)), [], 'every metric is skein_router_*, process_* or nodejs_*');
      const c = await call(url, 'GET', '/v1/admin/cluster', { key: admin });
      assert.equal(c.status, 200);
      assert.equal(c.body.shards.length, 3);
      assert.ok(c.body.shards.every((s: any) => s.healthy));
      assert.equal(typeof c.body.watermark, 'string');
      assert.equal(typeof c.body.sequencer.position, 'string');
    });

    test('state the router cannot understand gives 500 INTERNAL with nothing of its internals', async () => {
      // A tenant record damaged in Redis (by hand, or a bug elsewhere), read first by the
      // second router (the first cached it at creation): the request fails, nothing leaks.
      const name = tenantName();
      const created = await call(url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant: name } });
      assert.equal(created.status, 201);
      const redis = new Redis(cluster.redis.url);
      try {
        await redis.hset(`skein:tenant:${name}`, 'retention', '{not json');
      } finally {
        redis.disconnect();
      }
      const r = await call(url2, 'GET', `/v1/tenants/${name}/streams/s-1`, { key: created.body.apiKey });
      assertProblem(r, 500, 'INTERNAL');
      assert.deepEqual(Object.keys(r.body).sort(), ['code', 'detail', 'status', 'title', 'type']);
      assert.doesNotMatch(JSON.stringify(r.body), /JSON|SyntaxError|at |\.ts|retention|redis/i);
    });

    test('a shard that is down gives 503 with Retry-After, not a hang; it comes back with its data', { skip: topology === 'node' && 'the node hosts every shard: fault/node-crash.spec.ts kills it' }, async () => {
      const t = await createTenant();
      const r = await call(url, 'GET', `/v1/admin/tenants/${t.tenant}`, { key: admin });
      const owner = cluster.shards.find((s) => s.name === r.body.placement[t.tenant])!;
      assert.equal((await append(t, 's-1', { events: [{ type: 'A', data: 1 }] })).status, 201);
      await owner.kill('SIGKILL');
      const started = Date.now();
      const down = await append(t, 's-1', { events: [{ type: 'A', data: 2 }] });
      assertProblem(down, 503, 'UNAVAILABLE');
      assert.ok(Number(down.headers.get('retry-after')) >= 1);
      assert.ok(Date.now() - started < 5000, 'answered promptly');
      assertProblem(await call(url, 'GET', `/v1/tenants/${t.tenant}/streams/s-1`, { key: t.key }), 503, 'UNAVAILABLE');
      assert.equal((await call(url, 'GET', '/readyz')).status, 503);
      await owner.restart();
      assert.equal(await streamVersion(t, 's-1'), 1);
      assert.equal((await append(t, 's-1', { events: [{ type: 'A', data: 3 }] })).status, 201);
    });
  });
});
