import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createClient } from '@skein/client';
import { partitionOf } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';

// A watermark is a promise about every shard, not only the ones in the reader's topology:
// nothing will ever commit at or below it. A shard that restarts reads back a safe-point
// bound written with headroom above its high-water (sequencer-state.ts), above the
// sequencer's counter. Published as its safe point, that bound became the watermark of a
// 1-shard cluster, and a shard that joined afterwards allocated from the counter, below
// it: a cluster-log subscriber started at `end` never saw those events. Real processes
// and a real redis-server.

const clusters: Cluster[] = [];
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
  for (const c of clusters) await c.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function admin(c: Cluster, method: string, path: string, body?: unknown) {
  return call(c.url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });
}

interface ClusterView {
  watermark: string | null;
  sequencer: { position: string | null };
  shards: { id: string; healthy: boolean; safePoint?: string; partitions: string[] }[];
}

interface Delivered {
  positions: bigint[];
  error: unknown;
  reconnects: number;
}

/**
 * Subscribes to the cluster log from its end through the SDK, which reconnects with
 * Last-Event-ID as any client would (a router ends a subscription whose shard does not
 * answer, as a joining one may not yet). Resolves once the router said where `end`
 * resolved to (its first `id:`), before anything is appended.
 */
async function subscribe(url: string, key: string): Promise<Delivered> {
  const sub = createClient({ url, apiKey: key }).subscribeCluster({ fromPosition: 'end', reconnectDelayMs: 50, maxReconnectDelayMs: 200, onReconnect: () => void delivered.reconnects++ });
  const delivered: Delivered = { positions: [], error: undefined, reconnects: 0 };
  closers.push(() => sub.close());
  void (async () => {
    try {
      for await (const e of sub) delivered.positions.push(e.position);
    } catch (err) {
      delivered.error = err;
    }
  })();
  for (const until = Date.now() + 10_000; sub.lastEventId === undefined; await sleep(20)) {
    assert.ok(Date.now() < until, `the subscription did not say where it starts within 10 s (${String(delivered.error ?? 'open')}, ${delivered.reconnects} reconnects)`);
  }
  return delivered;
}

test('after its only shard restarted, the cluster watermark stays at or below the sequencer counter: a shard that joins later appends above it, and a subscriber started at the end gets its events', async () => {
  const c = await startCluster({ shards: 1 });
  clusters.push(c);
  const first = await admin(c, 'POST', '/v1/admin/tenants', { tenant: tenantName('wm-first'), partitions: 2 });
  assert.equal(first.status, 201, JSON.stringify(first.body));
  for (let i = 0; i < 5; i++) {
    const r = await admin(c, 'POST', `/v1/tenants/${first.body.tenant}/streams/s-${i}/events`, { events: [{ type: 'Before', data: {} }] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }

  // The only shard restarts: its state file holds a bound far above the counter.
  const shard = c.shards[0]!;
  await shard.kill('SIGKILL');
  await shard.restart();
  let view!: ClusterView;
  for (const until = Date.now() + 10_000; ; await sleep(100)) {
    view = (await admin(c, 'GET', '/v1/admin/cluster')).body;
    if (view.watermark !== null && view.sequencer.position !== null) break;
    assert.ok(Date.now() < until, `the restarted shard is not healthy within 10 s: ${JSON.stringify(view)}`);
  }
  const counter = BigInt(view.sequencer.position!);
  const watermark = BigInt(view.watermark!);

  // A subscriber starts at the end of the cluster log, with only the restarted shard in the topology.
  const sub = await subscribe(c.url, c.adminKey);

  const joined = await c.startShard();
  const added = await admin(c, 'POST', '/v1/admin/cluster/shards', { id: joined.id, url: joined.url });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  // A tenant with partitions on the new shard (placement hashes: try a few names).
  let tenant = '';
  let onJoined: string[] = [];
  for (let attempt = 0; attempt < 8 && onJoined.length === 0; attempt++) {
    tenant = tenantName('wm');
    const created = await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: 8 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    view = (await admin(c, 'GET', '/v1/admin/cluster')).body;
    onJoined = view.shards.find((s) => s.id === joined.id)!.partitions.filter((p) => p.startsWith(`${tenant}~`));
  }
  assert.ok(onJoined.length > 0, 'a new tenant has partitions on the joined shard');

  const appended: bigint[] = [];
  let onNew = 0;
  for (let i = 0; i < 64 && appended.length < 8; i++) {
    const stream = `s-${i}`;
    const local = onJoined.includes(partitionOf(tenant, 8, stream));
    if (!local && appended.length - onNew >= 2) continue;
    const r = await admin(c, 'POST', `/v1/tenants/${tenant}/streams/${stream}/events`, { events: [{ type: 'After', data: { i } }] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    appended.push(BigInt(r.body.lastPosition));
    if (local) onNew++;
  }
  assert.ok(onNew > 0, 'appended on the joined shard');

  // The subscriber that started at the end gets every one of them.
  for (const until = Date.now() + 10_000; appended.some((p) => !sub.positions.includes(p)); await sleep(100)) {
    assert.ok(Date.now() < until, `the subscriber started at the end got ${sub.positions.join(', ')}, not every one of ${appended.join(', ')} (${String(sub.error ?? 'open')}, ${sub.reconnects} reconnects)`);
  }
  for (const p of appended) assert.ok(p > watermark, `position ${p} appended after the join is at or below the watermark ${watermark} read before it`);
  // The root: no safe point above the counter, which every later allocation passes.
  assert.ok(watermark <= counter, `watermark ${watermark} above the sequencer counter ${counter} after the restart`);
});
