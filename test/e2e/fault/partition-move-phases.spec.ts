import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { partitionOf } from '@skein/protocol';
import { TOPOLOGY_KEY } from '@skein/ring';
import { startCluster, type Cluster, type ServiceProcess } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged, type LoadReport } from './load.ts';
import { getMove as getMoveOf, settledMove, type Move } from './moves.ts';

// Issue 12: "SIGKILL the source, then (separately) the target, at each phase of a move:
// afterwards exactly one shard owns the partition, nothing acknowledged is lost, and the
// move has completed or rolled back." Real processes (one router, three shards) and a real
// redis-server, shared by the cases; each case moves a partition of a tenant of its own.
//
// The kill lands in its phase through the router's test fail point
// (SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS, DESIGN.md "Test fail points"): every move waits PAUSE_MS
// once before its first copy page, its first tail round, the fence handshake and the flip,
// and logs where it waits. The case kills its shard when the router logs the pause it wants,
// so the kill is inside the phase whatever the machine's load; polling the move's state
// cannot catch the fenced phase (~0.1 s) reliably, and a bandwidth limit slows the tail too.
// A done move's phase before cleanup is the cleanup grace period (GRACE_MS).

const PAUSE_MS = 500;
const GRACE_MS = 800;
const PARTITIONS = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** The phases a case kills in: the fail point the router waits at, or the cleanup grace period. */
const PHASES = {
  copying: { point: 'copy', state: 'copying' },
  tailing: { point: 'tail', state: 'tailing' },
  // Fenced, before the handshake: the source takes no write for the partition.
  fencing: { point: 'handshake', state: 'fencing' },
  // Fenced, the log drained to the target, before the flip.
  'fencing-drained': { point: 'flip', state: 'fencing' },
  'done-before-cleanup': { point: null, state: 'done' },
} as const;
type Phase = keyof typeof PHASES;

let c: Cluster;
let redis: Redis;
const figures: object[] = [];

before(async () => {
  c = await startCluster({
    shards: 3,
    routerEnv: {
      SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS: `copy:${PAUSE_MS},tail:${PAUSE_MS},handshake:${PAUSE_MS},flip:${PAUSE_MS}`,
      SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: String(GRACE_MS),
      // A move held up by a dead shard before the fence rolls back after this (default 15 s).
      SKEIN_ROUTER_MOVE_STALL_MS: '5000',
    },
  });
  redis = new Redis(c.redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
});

after(async () => {
  console.log(JSON.stringify({ figures: 'shard SIGKILLed at each phase of a move', cases: figures }));
  redis?.disconnect();
  await c?.stop();
});

const admin = (method: string, path: string, body?: unknown) => call(c.url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });

const getMove = (id: string) => getMoveOf(c.url, c.adminKey, id);

/** When the router logged that move `id` waits at `point` (ms since the epoch), or undefined. */
function pausedAt(router: ServiceProcess, id: string, point: string): number | undefined {
  for (const line of router.output) {
    if (!line.includes('move paused (test fail point)') || !line.includes(id)) continue;
    const entry = JSON.parse(line) as { move: string; point: string; time: number };
    if (entry.move === id && entry.point === point) return entry.time;
  }
  return undefined;
}

/** Waits until the move is in `phase` (and, for a fail point, waiting at it); returns when its wait ends. */
async function reach(id: string, phase: Phase): Promise<{ move: Move; resumesAt: number }> {
  const { point, state } = PHASES[phase];
  for (let until = Date.now() + 30_000; ; await sleep(10)) {
    assert.ok(Date.now() < until, `move ${id} never reached ${phase}`);
    if (point !== null) {
      const at = pausedAt(c.routers[0]!, id, point);
      if (at !== undefined) return { move: await getMove(id), resumesAt: at + PAUSE_MS };
      continue;
    }
    const move = await getMove(id);
    assert.ok(move.state !== 'rolled_back' && move.cleanup !== 'done', `move ${id} passed ${phase}: ${JSON.stringify(move)}`);
    if (move.state === 'done' && move.cleanup === 'pending') return { move, resumesAt: move.fencedAt! + move.pauseMs! + GRACE_MS };
  }
}

const settled = (id: string) => settledMove(c.url, c.adminKey, id, 60_000, 50);

/** Shards that answer for the partition's log at the cluster's epoch (each asked directly, by its own ownership view). */
async function serving(partition: string): Promise<{ epoch: number; serving: string[]; listedBy: string[] }> {
  const r = await admin('GET', '/v1/admin/cluster');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const shards = r.body.shards as { id: string; url: string; healthy: boolean; partitions: string[] }[];
  assert.ok(shards.every((s) => s.healthy), `a shard is unhealthy: ${JSON.stringify(shards)}`);
  const out: string[] = [];
  for (const s of shards) {
    const res = await fetch(`${s.url}/internal/v1/partitions/${encodeURIComponent(partition)}/log?fromPosition=0&limit=1`, {
      headers: { 'x-skein-cluster-secret': c.secret, 'x-skein-epoch': String(r.body.epoch) },
    });
    if (res.status === 200) out.push(s.id);
    await res.body?.cancel();
  }
  return { epoch: r.body.epoch, serving: out, listedBy: shards.filter((s) => s.partitions.includes(partition)).map((s) => s.id) };
}

/** The partition log's last position as a shard holds it (0 when it holds none of it). */
async function highestOn(shard: string, partition: string): Promise<bigint> {
  const url = ((await admin('GET', '/v1/admin/cluster')).body.shards as { id: string; url: string }[]).find((s) => s.id === shard)!.url;
  const res = await fetch(`${url}/internal/v1/partitions/${encodeURIComponent(partition)}/transfer/highest`, { headers: { 'x-skein-cluster-secret': c.secret } });
  assert.equal(res.status, 200);
  return BigInt(((await res.json()) as { position: string }).position);
}

for (const phase of Object.keys(PHASES) as Phase[]) {
  for (const victim of ['source', 'target'] as const) {
    test(`SIGKILL of the ${victim} while a move is ${phase}: one owner, the move done or rolled back, every acknowledged event read back once`, async () => {
      const started = Date.now();
      const tenant = tenantName(`ph-${victim}`);
      const created = await admin('POST', '/v1/admin/tenants', { tenant, partitions: PARTITIONS });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const load = startWriters({ url: c.url, key: c.adminKey, tenant, writers: 16 });
      let stopped: Promise<LoadReport> | undefined;
      const stopLoad = () => (stopped ??= load.stop());
      try {
        await sleep(500);

        const partition = `${tenant}~0`;
        const cluster = await admin('GET', '/v1/admin/cluster');
        const shards = cluster.body.shards as { id: string; partitions: string[] }[];
        const source = shards.find((s) => s.partitions.includes(partition))!.id;
        const target = shards.find((s) => s.id !== source)!.id;
        const moveStarted = await admin('POST', `/v1/admin/partitions/${partition}/move`, { to: target });
        assert.equal(moveStarted.status, 202, JSON.stringify(moveStarted.body));
        const id = moveStarted.body.id as string;

        const { move: atKill, resumesAt } = await reach(id, phase);
        const killed = c.shards.find((s) => s.name === (victim === 'source' ? source : target))!;
        await killed.kill('SIGKILL');
        const killedAt = Date.now();
        // The kill landed in the phase: nothing moves a move on past it without the victim
        // (the copy, the tail, the handshake and the drain call it; done stays done).
        const afterKill = await getMove(id);
        assert.equal(atKill.state, PHASES[phase].state, `killed in ${atKill.state}, not ${phase}`);
        assert.equal(afterKill.state, PHASES[phase].state, `the move left ${phase} before the kill: ${JSON.stringify(afterKill)}`);
        if (phase === 'done-before-cleanup') assert.equal(afterKill.cleanup, 'pending');
        // Down until the move's wait is over, so its next step meets the dead shard.
        await sleep(Math.max(0, resumesAt + 100 - Date.now()));
        await killed.restart();
        const restartedAt = Date.now();

        const end = await settled(id);
        const settledMs = Date.now() - restartedAt;
        assert.ok(end.state === 'done' || end.state === 'rolled_back', end.state);
        const owner = end.state === 'done' ? target : source;
        const loser = owner === source ? target : source;

        // Exactly one owner: in the topology (admin view and Redis), unfenced, no move marked,
        // and by the shards' own answers at the cluster's epoch.
        const view = await serving(partition);
        assert.deepEqual(view.listedBy, [owner], `placement: ${JSON.stringify(view)}`);
        assert.deepEqual(view.serving, [owner], `shards serving the partition: ${JSON.stringify(view)}`);
        const topology = JSON.parse((await redis.get(TOPOLOGY_KEY))!) as { placements: Record<string, string>; fenced?: Record<string, string> };
        assert.equal(topology.placements[partition], owner);
        assert.equal(topology.fenced?.[partition], undefined, 'the partition is still fenced');
        assert.equal(await redis.exists(`skein:moving:${partition}`), 0, 'the partition is still marked moving');
        // The move's job ended with it: completed when done, failed with the reason when rolled back.
        const job = await admin('GET', `/v1/admin/jobs/${id}`);
        assert.equal(job.status, 200, JSON.stringify(job.body));
        assert.deepEqual([job.body.kind, job.body.state, job.body.move.state], ['move', end.state === 'done' ? 'completed' : 'failed', end.state]);
        // The copy that lost was dropped.
        assert.equal(await highestOn(loser, partition), 0n, `${loser} still holds a copy of ${partition}`);

        // Writes to the partition go on at its owner.
        const inPartition = () => load.acks.filter((a) => partitionOf(tenant, PARTITIONS, a.streamId) === partition).length;
        const before = inPartition();
        for (let until = Date.now() + 15_000; inPartition() <= before; await sleep(50)) {
          if (Date.now() < until) continue;
          const stuck = await stopLoad();
          const lines = [...c.routers[0]!.output, ...c.shards.flatMap((s) => s.output)].filter((l) => /"level":(40|50)/.test(l)).slice(-30);
          assert.fail(`no append to ${partition} acknowledged after the move settled: ${JSON.stringify({ end, codes: stuck.codes, statuses: stuck.statuses })}\n${lines.join('\n')}`);
        }
        const report = await stopLoad();
        const read = await verifyAcknowledged({ url: c.url, key: c.adminKey, tenant }, report);
        assert.ok(report.acks.length > 100, `only ${report.acks.length} acknowledgements`);

        const figure = {
          phase,
          victim,
          outcome: end.state,
          reason: end.reason,
          acks: report.acks.length,
          acksInPartition: inPartition(),
          eventsRead: read.events,
          statuses: report.statuses,
          codes: report.codes,
          downMs: restartedAt - killedAt,
          settledMs,
          pauseMs: end.pauseMs,
          caseMs: Date.now() - started,
        };
        figures.push(figure);
        console.log(JSON.stringify(figure));
      } finally {
        // A failed case stops its writers too, so they do not load the next cases.
        await stopLoad();
      }
    });
  }
}
