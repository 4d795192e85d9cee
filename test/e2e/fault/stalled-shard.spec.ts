import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { partitionOf } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged, type Ack } from './load.ts';

// Issue 8, item 6: with a shard stalled (SIGSTOP) and 400 appends of 1 MB in flight to
// it, the router grew from 151 to 397 MB: nothing bounded what it held. Now the bytes
// of unanswered appends are bounded per shard and in total, and what does not fit gets
// 503 with Retry-After at once.

const MiB = 1024 * 1024;
/** The router's defaults (services/router/src/config.ts). */
const PENDING_PER_SHARD = 32 * MiB;
/**
 * README "Memory and slow consumers": a router holding a shard's whole budget of appends
 * stays within its idle RSS plus 5 bytes per pending byte (measured: 3.4 to 4.2; the body
 * read, its parsed form, its JSON for the batch, the socket's copy, garbage not yet collected).
 */
const RSS_PER_PENDING_BYTE = 5;
const SHARD_TIMEOUT_MS = 10_000;

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ shards: 3 });
});
after(async () => {
  for (const s of cluster?.shards ?? []) if (s.pid) process.kill(s.pid, 'SIGCONT');
  await cluster?.stop();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'no VmRSS line');
  return Number(m[1]) * 1024;
}

interface BigAppend {
  streamId: string;
  eventId: string;
  body: string;
}

test('a stalled shard: router RSS stays bounded, excess appends get 503 with Retry-After at once, and everything acknowledged reads back', async (t) => {
  const writersTenant = tenantName('stall');
  const bigTenant = tenantName('big');
  for (const tenant of [writersTenant, bigTenant]) {
    const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: 12 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  const info = await call(cluster.url, 'GET', '/v1/admin/cluster', { key: cluster.adminKey });
  const owners = new Map<string, string>();
  for (const s of info.body.shards as { id: string; partitions: string[] }[]) for (const p of s.partitions) owners.set(p, s.id);
  const stalledId = owners.get(`${bigTenant}~0`)!;
  const stalled = cluster.shards.find((s) => s.name === stalledId)!;
  const routerPid = cluster.routers[0]!.pid!;

  // 400 one-megabyte appends, each to its own new stream on the stalled shard's partitions.
  const payload = 'x'.repeat(1_000_000);
  const bigs: BigAppend[] = [];
  for (let i = 0; bigs.length < 400; i++) {
    const streamId = `big-${i}`;
    if (owners.get(partitionOf(bigTenant, 12, streamId)) !== stalledId) continue;
    const eventId = randomUUID();
    bigs.push({ streamId, eventId, body: JSON.stringify({ expectedVersion: 0, events: [{ id: eventId, type: 'Big', data: payload }] }) });
  }
  const dispatcher = new Agent({ connections: 400, pipelining: 1 });
  const send = async (b: BigAppend) => {
    const started = Date.now();
    try {
      const res = await request(`${cluster.url}/v1/tenants/${bigTenant}/streams/${b.streamId}/events`, {
        method: 'POST',
        dispatcher,
        headers: { authorization: `Bearer ${cluster.adminKey}`, 'content-type': 'application/json', 'idempotency-key': `k-${b.eventId}` },
        body: b.body,
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
      const body = (await res.body.json()) as Record<string, any>;
      return { status: res.statusCode, retryAfter: res.headers['retry-after'], body, ms: Date.now() - started };
    } catch (err) {
      return { status: 0, retryAfter: undefined, body: { error: String(err) }, ms: Date.now() - started };
    }
  };

  const load = startWriters({ url: cluster.url, key: cluster.adminKey, tenant: writersTenant, writers: 16 });
  // A failed assertion must not leave writers retrying against a stopped cluster.
  t.after(async () => {
    await load.stop().catch(() => {});
    await dispatcher.close().catch(() => {});
  });
  await new Promise((r) => setTimeout(r, 1000));
  const idleRss = rssBytes(routerPid);
  process.kill(stalled.pid!, 'SIGSTOP');
  let peakRss = idleRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(routerPid))), 50);
  const stallStarted = Date.now();
  const answers = await Promise.all(bigs.map(send));
  const allAnsweredMs = Date.now() - stallStarted;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, rssBytes(routerPid));
  process.kill(stalled.pid!, 'SIGCONT');

  const byStatus: Record<string, number> = {};
  for (const a of answers) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
  // Refused by the router's budget (before the body was read), as opposed to answered when
  // the stalled shard's request or queue timed out.
  const refused = answers.filter((a) => a.status === 503 && String(a.body.detail).includes('holds as many append bytes')).map((a) => a.ms);
  const slowestRefusal = Math.max(...refused);
  const bound = idleRss + RSS_PER_PENDING_BYTE * PENDING_PER_SHARD;
  console.log(
    `stalled shard: router RSS idle ${(idleRss / MiB).toFixed(0)} MiB, peak ${(peakRss / MiB).toFixed(0)} MiB (bound ${(bound / MiB).toFixed(0)} MiB); ` +
      `answers ${JSON.stringify(byStatus)}, ${refused.length} refused by the budget (slowest after ${slowestRefusal} ms), all answered in ${(allAnsweredMs / 1000).toFixed(1)} s`,
  );
  assert.ok(peakRss <= bound, `router RSS peaked at ${(peakRss / MiB).toFixed(0)} MiB, over the bound of ${(bound / MiB).toFixed(0)} MiB`);
  // Nothing can be written while the shard is stopped: every answer is a 503 with Retry-After.
  assert.deepEqual(byStatus, { 503: 400 });
  assert.ok(answers.every((a) => a.retryAfter !== undefined && a.body.code === 'UNAVAILABLE'));
  // What the budget cannot hold is refused at once, without waiting for the shard (a
  // refusal still waits for the client to finish sending the megabyte the router discards).
  assert.ok(refused.length >= 400 - PENDING_PER_SHARD / 1_000_000, `only ${refused.length} of 400 refused by the budget`);
  assert.ok(slowestRefusal < SHARD_TIMEOUT_MS / 2, `a refusal took ${slowestRefusal} ms`);
  // What it held was answered when its shard request timed out: nothing hangs.
  assert.ok(allAnsweredMs < 2 * SHARD_TIMEOUT_MS + 10_000, `the last answer came after ${allAnsweredMs} ms`);

  // The shard is back: the same requests again (same Idempotency-Key) until acknowledged;
  // an append whose first attempt committed after the timeout answers 200 duplicate.
  // Every append the router held for the shard is sent again (it may have committed after
  // its timeout: the retry must answer 200 duplicate), and a sample of those the budget
  // refused (never sent: they must now be written once); resending all 400 megabytes only
  // took CI minutes.
  const acks: Ack[] = [];
  const refusedByBudget = (i: number) => answers[i]!.status === 503 && String(answers[i]!.body.detail).includes('holds as many append bytes');
  const budgetSample = bigs.filter((_, i) => refusedByBudget(i)).slice(0, 40);
  let left = [...bigs.filter((_, i) => !refusedByBudget(i)), ...budgetSample];
  const until = Date.now() + 180_000;
  while (left.length > 0 && Date.now() < until) {
    const results = await Promise.all(left.map(async (b) => ({ b, r: await send(b) })));
    left = [];
    for (const { b, r } of results) {
      if (r.status === 201 || r.status === 200) acks.push({ streamId: b.streamId, version: r.body.firstVersion, position: BigInt(r.body.firstPosition), eventId: b.eventId });
      else {
        assert.equal(r.status, 503, JSON.stringify(r.body));
        left.push(b);
      }
    }
    if (left.length > 0) await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(left.length, 0, `${left.length} appends never acknowledged after the shard came back`);
  const report = await load.stop();
  console.log(`stalled shard: writers ${report.acks.length} acknowledged, answers ${JSON.stringify(report.statuses)}`);
  await verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant: writersTenant }, report);
  await verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant: bigTenant, pageSize: 20 }, { acks, statuses: {}, codes: {}, retryableWithoutRetryAfter: 0 });
});
