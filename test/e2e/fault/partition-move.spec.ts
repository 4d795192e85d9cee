import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { partitionOf } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged } from './load.ts';
import { settledMove, type Move } from './moves.ts';

// Issue 12: scale out online. Real processes and a real redis-server throughout.

const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function admin(c: Cluster, method: string, path: string, body?: unknown) {
  return call(c.url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });
}

const waitMove = (c: Cluster, id: string) => settledMove(c.url, c.adminKey, id);

async function placements(c: Cluster): Promise<Record<string, string[]>> {
  const r = await admin(c, 'GET', '/v1/admin/cluster');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return Object.fromEntries((r.body.shards as { id: string; partitions: string[] }[]).map((s) => [s.id, s.partitions]));
}

/** Which shards answer for a partition's log at the cluster's epoch: exactly its owner must. */
async function ownersServing(c: Cluster, partition: string): Promise<string[]> {
  const r = await admin(c, 'GET', '/v1/admin/cluster');
  const serving: string[] = [];
  for (const s of r.body.shards as { id: string; url: string }[]) {
    const res = await fetch(`${s.url}/internal/v1/partitions/${encodeURIComponent(partition)}/log?fromPosition=0&limit=1`, {
      headers: { 'x-skein-cluster-secret': c.secret, 'x-skein-epoch': String(r.body.epoch) },
    }).catch(() => null);
    if (res?.status === 200) serving.push(s.id);
    await res?.body?.cancel();
  }
  return serving;
}

/**
 * A tenant-log subscriber over SSE that resumes with Last-Event-ID whenever its
 * subscription ends (a shard went away), recording every event it receives.
 */
function subscribe(c: Cluster, tenant: string) {
  const events: { position: bigint; streamId: string; version: number }[] = [];
  const controller = new AbortController();
  let last = '';
  const done = (async () => {
    while (!controller.signal.aborted) {
      try {
        const res = await fetch(`${c.url}/v1/tenants/${tenant}/events/subscribe?fromPosition=0`, {
          headers: { authorization: `Bearer ${c.adminKey}`, ...(last ? { 'last-event-id': last } : {}) },
          signal: controller.signal,
        });
        if (res.status !== 200) {
          await res.body?.cancel();
          await sleep(200);
          continue;
        }
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let i;
          while ((i = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, i);
            buffer = buffer.slice(i + 2);
            let data = '';
            let id = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('data:')) data += line.slice(5).trim();
              else if (line.startsWith('id:')) id = line.slice(3).trim();
            }
            if (!data) continue;
            const e = JSON.parse(data) as { position: string; streamId: string; version: number };
            events.push({ position: BigInt(e.position), streamId: e.streamId, version: e.version });
            if (id) last = id;
          }
        }
      } catch {
        if (controller.signal.aborted) return;
        await sleep(200);
      }
    }
  })();
  return {
    events,
    async stop() {
      controller.abort();
      await done.catch(() => undefined);
    },
  };
}

/** Appends to streams of one partition one at a time, timing each (the write pause of a move). */
function probe(c: Cluster, tenant: string, streams: string[]) {
  const samples: { at: number; ms: number }[] = [];
  let stopping = false;
  const running = (async () => {
    const versions = new Map(streams.map((s) => [s, 0]));
    for (let n = 0; !stopping; n++) {
      const s = streams[n % streams.length]!;
      const started = Date.now();
      const r = await call(c.url, 'POST', `/v1/tenants/${tenant}/streams/${s}/events`, {
        key: c.adminKey,
        body: { expectedVersion: versions.get(s), events: [{ type: 'Probe', data: { n } }] },
        headers: { 'idempotency-key': `probe-${s}-${versions.get(s)}` },
      });
      if (r.status === 201 || r.status === 200) {
        versions.set(s, r.body.lastVersion);
        samples.push({ at: started, ms: Date.now() - started });
      }
    }
  })();
  return {
    samples,
    async stop() {
      stopping = true;
      await running;
    },
  };
}

function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
}

/** Streams of `tenant` (6 partitions) that land in `partition`. */
function streamsIn(tenant: string, partition: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (partitionOf(tenant, 6, `probe-${i}`) === partition) out.push(`probe-${i}`);
  return out;
}

/** Every position of the tenant log, read page by page. */
async function tenantLog(c: Cluster, tenant: string): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let from = '0'; ; ) {
    const r = await call(c.url, 'GET', `/v1/tenants/${tenant}/events?fromPosition=${from}&limit=1000`, { key: c.adminKey });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (r.body.events.length === 0) return out;
    for (const e of r.body.events) out.push(BigInt(e.position));
    from = r.body.next;
  }
}

test('under 32 writers and a tenant-log subscriber: a partition moves, a 4th shard joins and is rebalanced onto, a shard drains and leaves; nothing acknowledged is lost or repeated', async () => {
  const c = await startCluster({ shards: 3, routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '500' } });
  clusters.push(c);
  const tenant = tenantName('move');
  const created = await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: 6 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const before = await placements(c);
  assert.deepEqual(Object.values(before).map((p) => p.length).sort(), [2, 2, 2], 'balanced from the start');

  const partition = `${tenant}~1`;
  const source = Object.entries(before).find(([, ps]) => ps.includes(partition))![0];
  const target = Object.keys(before).find((s) => s !== source)!;
  // An idempotent append before the move, retried after it.
  const [idemStream] = streamsIn(tenant, partition, 1);
  const original = await call(c.url, 'POST', `/v1/tenants/${tenant}/streams/${idemStream}/events`, {
    key: c.adminKey,
    body: { expectedVersion: 'no_stream', events: [{ type: 'Once', data: {} }] },
    headers: { 'idempotency-key': 'across-the-move' },
  });
  assert.equal(original.status, 201, JSON.stringify(original.body));

  const subscriber = subscribe(c, tenant);
  const load = startWriters({ url: c.url, key: c.adminKey, tenant, writers: 32 });
  const probeStreams = streamsIn(tenant, partition, 4);
  const latency = probe(c, tenant, probeStreams.slice(1));
  await sleep(2000);

  // 1. One partition moves under load.
  const started = await admin(c, 'POST', `/v1/admin/partitions/${partition}/move`, { to: target });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  assert.equal(started.body.state, 'copying');
  const conflict = await admin(c, 'POST', `/v1/admin/partitions/${partition}/move`, { to: target });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.code, 'CONFLICT');
  const moved = await waitMove(c, started.body.id);
  assert.equal(moved.state, 'done', JSON.stringify(moved));
  assert.deepEqual(await ownersServing(c, partition), [target]);
  const retried = await call(c.url, 'POST', `/v1/tenants/${tenant}/streams/${idemStream}/events`, {
    key: c.adminKey,
    body: { expectedVersion: 'no_stream', events: [{ type: 'Once', data: {} }] },
    headers: { 'idempotency-key': 'across-the-move' },
  });
  assert.equal(retried.status, 200, JSON.stringify(retried.body));
  assert.equal(retried.body.duplicate, true);
  assert.equal(retried.body.firstPosition, original.body.firstPosition);
  await sleep(1000);
  await latency.stop();
  const window = latency.samples.filter((s) => s.at >= moved.fencedAt! - 1000 && s.at <= moved.fencedAt! + moved.pauseMs! + 1000);
  const copySeconds = (moved.fencedAt! - moved.copyStartedAt!) / 1000;

  // 2. A fourth shard joins; rebalance moves only partitions that go to it.
  const fourth = await c.startShard();
  const added = await admin(c, 'POST', '/v1/admin/cluster/shards', { id: fourth.id, url: fourth.url });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  assert.equal((await admin(c, 'POST', '/v1/admin/cluster/shards', { id: fourth.id, url: fourth.url })).body.code, 'CONFLICT');
  const plan = await admin(c, 'POST', '/v1/admin/cluster/rebalance', { dryRun: true });
  assert.equal(plan.status, 200);
  assert.ok(plan.body.moves.length > 0 && plan.body.moves.every((m: Move) => m.to === fourth.id), JSON.stringify(plan.body));
  const rebalance = await admin(c, 'POST', '/v1/admin/cluster/rebalance', {});
  assert.equal(rebalance.status, 202);
  // Each planned move began at once and is a job on the moves queue.
  assert.ok(rebalance.body.moves.every((m: Move) => typeof m.id === 'string'), JSON.stringify(rebalance.body));
  const moveJobs = (await admin(c, 'GET', '/v1/admin/jobs?kind=move')).body.jobs as { id: string; kind: string }[];
  for (const m of rebalance.body.moves as Move[]) assert.ok(moveJobs.some((j) => j.id === m.id && j.kind === 'move'), `no job for move ${m.id}`);
  for (let until = Date.now() + 120_000; ; ) {
    const now = await placements(c);
    if ((now[fourth.id]?.length ?? 0) >= plan.body.moves.length) break;
    if (Date.now() > until) assert.fail(`rebalance did not finish: ${JSON.stringify(now)}`);
    await sleep(200);
  }
  const afterRebalance = await placements(c);
  const counts = Object.values(afterRebalance).map((p) => p.length);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `partitions per shard after rebalance: ${JSON.stringify(afterRebalance)}`);

  // 3. A shard drains and leaves.
  const leaving = Object.keys(afterRebalance).find((s) => s !== fourth.id)!;
  const drain = await admin(c, 'POST', `/v1/admin/cluster/shards/${leaving}/drain`);
  assert.equal(drain.status, 202, JSON.stringify(drain.body));
  const early = await admin(c, 'DELETE', `/v1/admin/cluster/shards/${leaving}`);
  assert.equal(early.status, 409);
  assert.equal(early.body.code, 'SHARD_NOT_EMPTY');
  for (let until = Date.now() + 120_000; ; ) {
    const now = await placements(c);
    if ((now[leaving]?.length ?? 0) === 0) break;
    if (Date.now() > until) assert.fail(`drain did not finish: ${JSON.stringify(now)}`);
    await sleep(200);
  }
  const removed = await admin(c, 'DELETE', `/v1/admin/cluster/shards/${leaving}`);
  assert.equal(removed.status, 204, JSON.stringify(removed.body));
  const cluster = await admin(c, 'GET', '/v1/admin/cluster');
  assert.deepEqual(cluster.body.shards.map((s: { id: string }) => s.id).sort(), Object.keys(afterRebalance).filter((s) => s !== leaving).sort());
  assert.ok(cluster.body.shards.every((s: { state: string }) => s.state === 'active'));
  await sleep(1000);

  const report = await load.stop();
  await verifyAcknowledged({ url: c.url, key: c.adminKey, tenant }, report);
  assert.ok(report.acks.length > 200, `only ${report.acks.length} acknowledgements`);
  // The subscriber saw every event of the tenant log exactly once, in global order.
  const log = await tenantLog(c, tenant);
  for (let until = Date.now() + 30_000; subscriber.events.length < log.length && Date.now() < until; ) await sleep(200);
  await subscriber.stop();
  const positions = subscriber.events.map((e) => e.position);
  for (let i = 1; i < positions.length; i++) assert.ok(positions[i]! > positions[i - 1]!, `subscriber out of order or repeated at ${positions[i]}`);
  assert.deepEqual(positions, log, 'the subscriber received exactly the tenant log');

  console.log(
    JSON.stringify({
      figures: 'issue 12',
      acks: report.acks.length,
      statuses: report.statuses,
      movePauseMs: moved.pauseMs,
      appendP99DuringFlipMs: p99(window.map((s) => s.ms)),
      appendMaxDuringFlipMs: Math.max(...window.map((s) => s.ms)),
      copiedBytes: moved.copiedBytes,
      copyBytesPerSecond: Math.round(moved.copiedBytes / Math.max(copySeconds, 0.001)),
      partitionsPerShardAfterRebalance: Object.fromEntries(Object.entries(afterRebalance).map(([s, p]) => [s, p.length])),
    }),
  );
});

for (const victim of ['source', 'target'] as const) {
  test(`SIGKILL of the ${victim} during a move: afterwards exactly one shard owns the partition, the move completed or rolled back, nothing acknowledged is lost`, async () => {
    const c = await startCluster({
      shards: 3,
      // A slow copy (the bandwidth limit) keeps the move in progress long enough to kill a shard in it.
      routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '200', SKEIN_ROUTER_MOVE_STALL_MS: '3000', SKEIN_ROUTER_MOVE_MAX_BYTES_PER_SECOND: '20000' },
    });
    clusters.push(c);
    const tenant = tenantName(`kill-${victim}`);
    assert.equal((await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: 3 })).status, 201);
    const load = startWriters({ url: c.url, key: c.adminKey, tenant, writers: 32 });
    await sleep(3000);
    const before = await placements(c);
    const partition = `${tenant}~0`;
    const source = Object.entries(before).find(([, ps]) => ps.includes(partition))![0];
    const target = Object.keys(before).find((s) => s !== source)!;
    const started = await admin(c, 'POST', `/v1/admin/partitions/${partition}/move`, { to: target });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    for (let until = Date.now() + 20_000; ; ) {
      const m = (await admin(c, 'GET', `/v1/admin/moves/${started.body.id}`)).body as Move;
      // Killed while it copies the snapshot or tails what commits meanwhile (before the fence).
      if ((m.state === 'copying' || m.state === 'tailing') && m.copiedBytes > 0) break;
      assert.ok(Date.now() < until && (m.state === 'copying' || m.state === 'tailing'), `the move reached the fence before the kill: ${JSON.stringify(m)}`);
      await sleep(20);
    }
    const killed = c.shards.find((s) => s.name === (victim === 'source' ? source : target))!;
    await killed.kill('SIGKILL');
    await sleep(4000);
    await killed.restart();
    const end = await waitMove(c, started.body.id);
    assert.ok(end.state === 'rolled_back' || end.state === 'done', end.state);
    const owner = end.state === 'done' ? target : source;
    assert.deepEqual(await ownersServing(c, partition), [owner]);
    // The move's job ended with it: completed when done, failed with the reason when rolled back.
    const job = await admin(c, 'GET', `/v1/admin/jobs/${started.body.id}`);
    assert.equal(job.status, 200, JSON.stringify(job.body));
    assert.deepEqual([job.body.kind, job.body.partition, job.body.move.state], ['move', partition, end.state]);
    if (end.state === 'done') assert.equal(job.body.state, 'completed');
    else assert.deepEqual([job.body.state, job.body.error], ['failed', `rolled back: ${end.reason}`]);
    const now = await placements(c);
    assert.ok(now[owner]!.includes(partition));
    await sleep(1500);
    const report = await load.stop();
    await verifyAcknowledged({ url: c.url, key: c.adminKey, tenant }, report);
    console.log(JSON.stringify({ figures: `kill ${victim}`, state: end.state, reason: end.reason, acks: report.acks.length, statuses: report.statuses }));
  });
}
