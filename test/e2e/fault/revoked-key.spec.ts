import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged } from './load.ts';

// Issue 8, item 7 (subscriptions): an SSE subscription kept streaming after its key was
// revoked. Each open subscription re-authenticates its key twice a second through the
// registry, so revoking a key on one router ends its subscriptions on every router.

const REVOKED_WITHIN_MS = 2000;

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ shards: 2, routers: 2 });
});
after(async () => {
  await cluster?.stop();
});

interface Subscription {
  /** Everything received so far. */
  readonly text: () => string;
  /** Resolves with the time (Date.now()) the server ended the response. */
  readonly ended: Promise<number>;
  close(): void;
}

async function subscribe(url: string, key: string): Promise<Subscription> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal: abort.signal });
  if (res.status !== 200) assert.fail(`subscribe answered ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const ended = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return Date.now();
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      return abort.signal.aborted ? Number.POSITIVE_INFINITY : Date.now();
    }
  })();
  const until = Date.now() + 5000;
  while (!text.includes(': connected') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.ok(text.includes(': connected'), 'the subscription did not start');
  return { text: () => text, ended, close: () => abort.abort() };
}

test('revoking a key ends its stream and tenant-log subscriptions on every router within 2 s; other keys keep theirs', async () => {
  const tenant = tenantName('revoke');
  const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: 4 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const keeper: string = created.body.apiKey;
  const minted = await call(cluster.url, 'POST', `/v1/admin/tenants/${tenant}/keys`, { key: cluster.adminKey });
  assert.equal(minted.status, 201, JSON.stringify(minted.body));
  const { keyId, apiKey: doomed } = minted.body as { keyId: string; apiKey: string };
  const appended = await call(cluster.url, 'POST', `/v1/tenants/${tenant}/streams/order-1/events`, { key: doomed, body: { events: [{ type: 'Placed', data: {} }] } });
  assert.equal(appended.status, 201, JSON.stringify(appended.body));

  const [routerA, routerB] = cluster.routers.map((r) => r.url) as [string, string];
  const doomedSubs = await Promise.all([
    subscribe(`${routerA}/v1/tenants/${tenant}/streams/order-1/subscribe`, doomed),
    subscribe(`${routerA}/v1/tenants/${tenant}/events/subscribe`, doomed),
    subscribe(`${routerB}/v1/tenants/${tenant}/streams/order-1/subscribe`, doomed),
    subscribe(`${routerB}/v1/tenants/${tenant}/events/subscribe`, doomed),
  ]);
  const kept = await Promise.all([
    subscribe(`${routerA}/v1/tenants/${tenant}/events/subscribe`, keeper),
    subscribe(`${routerB}/v1/tenants/${tenant}/streams/order-1/subscribe`, keeper),
  ]);
  // 16 writers on the same tenant with the key that stays: a revocation ends subscriptions, never their appends.
  const load = startWriters({ url: routerB, key: keeper, tenant, writers: 16 });
  let report: Awaited<ReturnType<typeof load.stop>>;
  try {
    // Open for longer than a re-authentication period: a live key does not end anything.
    await new Promise((r) => setTimeout(r, 1500));

    const revoked = await call(routerA, 'DELETE', `/v1/admin/tenants/${tenant}/keys/${keyId}`, { key: cluster.adminKey });
    assert.equal(revoked.status, 204);
    const revokedAt = Date.now();
    const timeout = new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), REVOKED_WITHIN_MS + 3000));
    const endedAfter = await Promise.all(doomedSubs.map(async (s) => (await Promise.race([s.ended, timeout])) - revokedAt));
    console.log(`revoked key: subscriptions ended after ${endedAfter.join(', ')} ms (stream A, log A, stream B, log B)`);
    for (const [i, ms] of endedAfter.entries()) assert.ok(ms <= REVOKED_WITHIN_MS, `subscription ${i} ended ${ms} ms after the revocation`);
    for (const s of doomedSubs) {
      assert.ok(s.text().includes('event: Placed'), 'the subscription delivered its event before the revocation');
      assert.ok(s.text().endsWith(': closed: key revoked\n\n'), `no closing comment: ${JSON.stringify(s.text().slice(-80))}`);
    }
    // The revoked key cannot subscribe again; the other key's subscriptions are still open.
    const again = await fetch(`${routerB}/v1/tenants/${tenant}/events/subscribe`, { headers: { authorization: `Bearer ${doomed}` } });
    assert.equal(again.status, 401);
    await again.body?.cancel();
    const stillOpen = await Promise.race([...kept.map((s) => s.ended.then(() => false)), new Promise<boolean>((r) => setTimeout(() => r(true), 500))]);
    assert.ok(stillOpen, 'a subscription of a key that was not revoked ended');
  } finally {
    for (const s of [...kept, ...doomedSubs]) s.close();
    // A failed assertion above still stops the writers, so the spec ends.
    report = await load.stop();
  }
  assert.ok(report.acks.length > 50, `only ${report.acks.length} appends were acknowledged`);
  assert.deepEqual(Object.keys(report.statuses).filter((s) => s !== '201'), [], `the writers saw ${JSON.stringify(report.statuses)}`);
  await verifyAcknowledged({ url: routerA, key: keeper, tenant }, report);
});
