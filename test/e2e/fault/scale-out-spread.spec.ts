import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Agent, request } from 'undici';
import { partitionOf } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';

// Issue 12: "After adding shards, a throughput test shows work spread: partitions per
// shard within ±1 of even, and each shard's share of appends within 25% of even for a
// uniform workload." Real processes and a real redis-server: 2 shards, 2 tenants of 8
// partitions, 2 shards added and rebalanced onto, then a uniform workload whose appends
// are counted by each shard itself (its Prometheus `skein_shard_events_appended_total`).

const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TENANTS = 2;
const PARTITIONS = 8;
/** Streams per partition: the same number in every partition, so every partition gets the same offered load. */
const STREAMS_PER_PARTITION = 3;
/** The bound on each shard's share of appends, relative to an even share. */
const SHARE_TOLERANCE = 0.25;

async function admin(c: Cluster, method: string, path: string, body?: unknown) {
  return call(c.url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });
}

async function members(c: Cluster): Promise<{ id: string; url: string; partitions: string[] }[]> {
  const r = await admin(c, 'GET', '/v1/admin/cluster');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.shards;
}

/** Each shard's own count of events written, from its /metrics. */
async function appendedByShard(c: Cluster): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of await members(c)) {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('skein_shard_events_appended_total'));
    assert.ok(line, `${s.id} exposes skein_shard_events_appended_total`);
    out.set(s.id, Number(line.split(/\s+/)[1]));
  }
  return out;
}

/** A stream id list with exactly `perPartition` streams in every partition of `tenant`. */
function uniformStreams(tenant: string, perPartition: number): string[] {
  const left = new Map<string, number>();
  const out: string[] = [];
  for (let i = 0; out.length < PARTITIONS * perPartition; i++) {
    const id = `u-${i}`;
    const p = partitionOf(tenant, PARTITIONS, id);
    if ((left.get(p) ?? 0) >= perPartition) continue;
    left.set(p, (left.get(p) ?? 0) + 1);
    out.push(id);
  }
  return out;
}

/**
 * A closed-loop uniform workload: one writer per stream, each appending one event at a
 * time with the exact expected version, for `ms`. Returns the acknowledged appends.
 */
async function uniformLoad(c: Cluster, streams: { tenant: string; stream: string }[], versions: Map<string, number>, ms: number): Promise<number> {
  const dispatcher = new Agent({ connections: streams.length, pipelining: 1 });
  const payload = 'x'.repeat(200);
  const until = Date.now() + ms;
  let acks = 0;
  await Promise.all(
    streams.map(async ({ tenant, stream }) => {
      const k = `${tenant}/${stream}`;
      while (Date.now() < until) {
        const expected = versions.get(k) ?? 0;
        const res = await request(`${c.url}/v1/tenants/${tenant}/streams/${stream}/events`, {
          method: 'POST',
          dispatcher,
          headers: { authorization: `Bearer ${c.adminKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ expectedVersion: expected, events: [{ type: 'Uniform', data: { payload } }] }),
        });
        const body = (await res.body.json()) as { lastVersion?: number };
        // No move runs during a measurement: every append is acknowledged first time.
        assert.equal(res.statusCode, 201, `${k}: ${res.statusCode} ${JSON.stringify(body)}`);
        versions.set(k, body.lastVersion!);
        acks++;
      }
    }),
  );
  await dispatcher.close();
  return acks;
}

/** What breaks the bounds: partitions per shard off even by more than 1, a share of appends off even by more than 25%. */
function spreadViolations(partitions: Map<string, number>, appended: Map<string, number>): string[] {
  const out: string[] = [];
  const shards = [...partitions.keys()];
  const evenPartitions = [...partitions.values()].reduce((a, b) => a + b, 0) / shards.length;
  const total = [...appended.values()].reduce((a, b) => a + b, 0);
  for (const s of shards) {
    const p = partitions.get(s)!;
    if (Math.abs(p - evenPartitions) > 1) out.push(`${s} holds ${p} partitions, even is ${evenPartitions}`);
    const share = (appended.get(s) ?? 0) / total;
    if (Math.abs(share * shards.length - 1) > SHARE_TOLERANCE) out.push(`${s} took ${(share * 100).toFixed(1)}% of appends, even is ${(100 / shards.length).toFixed(1)}%`);
  }
  return out;
}

async function measure(c: Cluster, streams: { tenant: string; stream: string }[], versions: Map<string, number>, ms: number) {
  const before = await appendedByShard(c);
  const started = Date.now();
  const acks = await uniformLoad(c, streams, versions, ms);
  const seconds = (Date.now() - started) / 1000;
  const afterwards = await appendedByShard(c);
  const appended = new Map([...afterwards].map(([s, n]) => [s, n - (before.get(s) ?? 0)]));
  const partitions = new Map((await members(c)).map((s) => [s.id, s.partitions.length]));
  const total = [...appended.values()].reduce((a, b) => a + b, 0);
  // The shards' own counters account for exactly the workload's acknowledged appends.
  assert.equal(total, acks, `the shards counted ${total} events for ${acks} acknowledged appends`);
  const figures = Object.fromEntries(
    [...partitions.keys()].map((s) => [s, { partitions: partitions.get(s), appends: appended.get(s), sharePct: Number((((appended.get(s) ?? 0) / total) * 100).toFixed(1)) }]),
  );
  return { partitions, appended, acks, appendsPerSecond: Math.round(acks / seconds), figures };
}

test('after 2 shards join a 2-shard cluster and a rebalance: partitions per shard within ±1 of even, each shard takes its even share of a uniform workload ±25%', async () => {
  const c = await startCluster({ shards: 2, routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '300' } });
  clusters.push(c);
  const tenants = Array.from({ length: TENANTS }, () => tenantName('spread'));
  for (const tenant of tenants) {
    const created = await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: PARTITIONS });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  const streams = tenants.flatMap((tenant) => uniformStreams(tenant, STREAMS_PER_PARTITION).map((stream) => ({ tenant, stream })));
  const versions = new Map<string, number>();

  const added: string[] = [];
  for (let i = 0; i < 2; i++) {
    const shard = await c.startShard();
    const r = await admin(c, 'POST', '/v1/admin/cluster/shards', { id: shard.id, url: shard.url });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    added.push(shard.id);
  }

  // Control: with the new shards holding nothing, they take nothing and the bounds fail.
  const control = await measure(c, streams, versions, 3000);
  for (const s of added) {
    assert.equal(control.partitions.get(s), 0, `${s} holds nothing before the rebalance`);
    assert.equal(control.appended.get(s), 0, `${s} took no append before the rebalance`);
  }
  const controlViolations = spreadViolations(control.partitions, control.appended);
  assert.ok(controlViolations.length > 0, 'the spread check fails before the rebalance');

  const plan = await admin(c, 'POST', '/v1/admin/cluster/rebalance', { dryRun: true });
  assert.equal(plan.status, 200, JSON.stringify(plan.body));
  assert.ok(plan.body.moves.length > 0 && plan.body.moves.every((m: { to: string }) => added.includes(m.to)), JSON.stringify(plan.body.moves));
  const rebalanceStarted = Date.now();
  const rebalance = await admin(c, 'POST', '/v1/admin/cluster/rebalance', {});
  assert.equal(rebalance.status, 202, JSON.stringify(rebalance.body));
  // Settled: nothing left to plan, every shard within ±1 of even, and every move's source cleaned up.
  for (let until = Date.now() + 60_000; ; ) {
    const left = await admin(c, 'POST', '/v1/admin/cluster/rebalance', { dryRun: true });
    const counts = (await members(c)).map((s) => s.partitions.length);
    if (left.body.moves.length === 0 && Math.max(...counts) - Math.min(...counts) <= 1) break;
    if (Date.now() > until) assert.fail(`the rebalance did not settle: ${JSON.stringify(left.body.moves)} ${counts.join('/')}`);
    await sleep(200);
  }
  const rebalanceMs = Date.now() - rebalanceStarted;
  for (const m of rebalance.body.moves as { id?: string }[]) {
    if (!m.id) continue;
    for (let until = Date.now() + 20_000; ; ) {
      const move: { state: string; cleanup?: string } = (await admin(c, 'GET', `/v1/admin/moves/${m.id}`)).body;
      if (move.state === 'done' && move.cleanup !== 'pending') break;
      assert.ok(move.state !== 'rolled_back', `move ${m.id} rolled back: ${JSON.stringify(move)}`);
      if (Date.now() > until) assert.fail(`move ${m.id} did not finish: ${JSON.stringify(move)}`);
      await sleep(100);
    }
  }
  await sleep(500);

  const spread = await measure(c, streams, versions, 8000);
  console.log(
    JSON.stringify({
      figures: 'issue 12 spread',
      streams: streams.length,
      moves: plan.body.moves.length,
      rebalanceMs,
      before: { appendsPerSecond: control.appendsPerSecond, shards: control.figures, violations: controlViolations },
      after: { appendsPerSecond: spread.appendsPerSecond, shards: spread.figures },
    }),
  );
  assert.deepEqual(spreadViolations(spread.partitions, spread.appended), [], JSON.stringify(spread.figures));
  assert.equal(spread.partitions.size, 4);
});
