import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged } from './load.ts';

// The admin cluster-wide log (`GET /v1/events`, every shard's whole log merged) while a
// partition moves: the target holds the copied events before the flip and the source keeps
// them until its cleanup after the grace period; each position must still show once.
// Real processes and a real redis-server throughout.

const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function admin(c: Cluster, method: string, path: string, body?: unknown) {
  return call(c.url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });
}

/**
 * Every event of one tenant in `path` (a log read page by page with small pages, so that
 * paging crosses a flip), asserting positions strictly ascend across all pages: no position
 * is read twice. A 503 or 421 (a shard or the router between two topologies) is retried.
 * Stops past `until` (writers keep appending: a reader chasing them would not end).
 */
async function readAll(c: Cluster, path: string, tenant: string | undefined, until: bigint): Promise<bigint[]> {
  const out: bigint[] = [];
  let previous = -1n;
  for (let from = '0', retries = 0; ; ) {
    const r = await admin(c, 'GET', `${path}?fromPosition=${from}&limit=500`);
    if ((r.status === 503 || r.status === 421) && retries++ < 50) {
      await sleep(100);
      continue;
    }
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (r.body.events.length === 0) return out;
    for (const e of r.body.events as { position: string; tenant?: string }[]) {
      const position = BigInt(e.position);
      if (position > until) return out;
      assert.ok(position > previous, `${path}: position ${position} after ${previous} (repeated or out of order)`);
      previous = position;
      if (tenant === undefined || e.tenant === tenant) out.push(position);
    }
    from = r.body.next;
  }
}

/**
 * The cluster log (filtered to `tenant`) holds exactly the tenant log's positions up to a
 * marker appended now: both reads wait for the watermark to cover what was acknowledged.
 */
async function assertClusterLogMatchesTenantLog(c: Cluster, tenant: string, when: string): Promise<number> {
  const marker = await admin(c, 'POST', `/v1/tenants/${tenant}/streams/marker/events`, { expectedVersion: 'any', events: [{ type: 'Marker', data: {} }] });
  assert.equal(marker.status, 201, JSON.stringify(marker.body));
  const until = BigInt(marker.body.lastPosition);
  const cluster = await readAll(c, '/v1/events', tenant, until);
  const own = await readAll(c, `/v1/tenants/${tenant}/events`, undefined, until);
  assert.equal(cluster[cluster.length - 1], until, `${when}: the cluster log lacks the marker`);
  assert.deepEqual(cluster, own, `${when}: the cluster log's events of ${tenant} differ from its tenant log up to ${until}`);
  return cluster.length;
}

test('while a partition moves and until the source cleans it up, the cluster-wide log shows each position once and equals the tenant log', async () => {
  const c = await startCluster({
    shards: 3,
    // A slow copy keeps the target holding copied events before the flip for a while; a long
    // grace keeps them on the source after it.
    routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '6000', SKEIN_ROUTER_MOVE_MAX_BYTES_PER_SECOND: '60000' },
  });
  clusters.push(c);
  const tenant = tenantName('glog');
  assert.equal((await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: 3 })).status, 201);
  const load = startWriters({ url: c.url, key: c.adminKey, tenant, writers: 2 });
  await sleep(6000);

  const cluster = await admin(c, 'GET', '/v1/admin/cluster');
  const shards = cluster.body.shards as { id: string; partitions: string[] }[];
  const partition = `${tenant}~0`;
  const source = shards.find((s) => s.partitions.includes(partition))!.id;
  const target = shards.find((s) => s.id !== source)!.id;
  const started = await admin(c, 'POST', `/v1/admin/partitions/${partition}/move`, { to: target });
  assert.equal(started.status, 202, JSON.stringify(started.body));

  // Read the whole cluster log again and again: during the copy, across the flip, and
  // through the grace period before the source's cleanup.
  const states = new Set<string>();
  let reads = 0;
  for (let until = Date.now() + 120_000; ; ) {
    const m = (await admin(c, 'GET', `/v1/admin/moves/${started.body.id}`)).body as { state: string; copiedBytes: number; cleanup?: string };
    states.add(m.copiedBytes > 0 && (m.state === 'copying' || m.state === 'tailing') ? 'copied-before-flip' : m.state);
    if (m.state === 'done' && m.cleanup !== 'pending') break;
    assert.ok(m.state !== 'rolled_back', JSON.stringify(m));
    assert.ok(Date.now() < until, `move still ${m.state}`);
    await assertClusterLogMatchesTenantLog(c, tenant, `during the move (${m.state}, cleanup ${m.cleanup})`);
    reads++;
  }
  assert.ok(states.has('copied-before-flip'), `never read while the target held copied events: ${[...states].join(',')}`);
  assert.ok(reads >= 3, `only ${reads} reads during the move`);

  const report = await load.stop();
  await verifyAcknowledged({ url: c.url, key: c.adminKey, tenant }, report);
  // Quiet now: both logs are complete, so they must be equal outright.
  const all = await readAll(c, '/v1/events', tenant, 2n ** 62n);
  assert.deepEqual(all, await readAll(c, `/v1/tenants/${tenant}/events`, undefined, 2n ** 62n));
  assert.ok(all.length >= report.acks.length, `${all.length} events for ${report.acks.length} acknowledgements`);
  console.log(JSON.stringify({ figures: 'cluster log during a move', reads, events: all.length, acks: report.acks.length, statuses: report.statuses }));
});
