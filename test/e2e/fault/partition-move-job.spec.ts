import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { startCluster, type Cluster, type ServiceProcess } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged, type Ack, type LoadReport } from './load.ts';
import { settledMove, type Move } from './moves.ts';

// Issue 12: a move runs as a BullMQ job on the cluster's moves queue, worked by every
// router. Real processes (two routers, three shards) and a real redis-server.

const SKEIN_BIN = fileURLToPath(new URL('../../../libs/client/bin/skein.mjs', import.meta.url));
const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface MoveJob {
  id: string;
  kind: string;
  partition: string;
  state: string;
  progress: number;
  attempts: number;
  error?: string;
  move: { state: string; from: string; to: string; copiedBytes: number; copiedEntries: number };
}

const admin = (c: Cluster, url: string, method: string, path: string, body?: unknown) => call(url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });

/** Which shards answer for a partition's log at the cluster's epoch: exactly its owner must. */
async function ownersServing(c: Cluster, url: string, partition: string): Promise<string[]> {
  const r = await admin(c, url, 'GET', '/v1/admin/cluster');
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
 * Writers at a steady pace (one append per writer every `everyMs`), so the moved
 * partition's write rate stays under the copy's bandwidth limit and the tail catches up.
 * Same discipline as load.ts: exact expected version, one Idempotency-Key per event,
 * an unknown outcome retried with the same request.
 */
function pacedWriters(url: string, key: string, tenant: string, writers: number, everyMs: number) {
  const acks: Ack[] = [];
  const statuses: Record<string, number> = {};
  let stopping = false;
  const writer = async (w: number) => {
    let version = 0;
    while (!stopping) {
      const eventId = randomUUID();
      for (;;) {
        const r = await call(url, 'POST', `/v1/tenants/${tenant}/streams/paced${w}/events`, {
          key,
          body: { expectedVersion: version, events: [{ id: eventId, type: 'Paced', data: { w, version: version + 1 } }] },
          headers: { 'idempotency-key': `paced-${eventId}` },
        }).catch(() => null);
        const status = r ? String(r.status) : 'network';
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (r && (r.status === 201 || r.status === 200)) {
          assert.equal(r.body.firstVersion, version + 1);
          acks.push({ streamId: `paced${w}`, version: r.body.firstVersion, position: BigInt(r.body.firstPosition), eventId });
          version = r.body.firstVersion;
          break;
        }
        assert.notEqual(r?.status, 409, `paced${w}: 409 at expected version ${version}`);
        if (stopping) return;
        await sleep(100);
      }
      await sleep(everyMs);
    }
  };
  const running = Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
  return {
    acks,
    async stop(): Promise<LoadReport> {
      stopping = true;
      await running;
      return { acks: acks.slice(), statuses: { ...statuses }, codes: {}, retryableWithoutRetryAfter: 0 };
    },
  };
}

/** Runs the real `skein` executable against `url` with the admin key. */
function skein(url: string, key: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SKEIN_BIN, ...args], { env: { ...process.env, SKEIN_URL: url, SKEIN_API_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Lines where `router` logged running move `id` (a run starts, or resumes, there). */
const runsOn = (router: ServiceProcess, id: string) => router.output.filter((l) => l.includes('move job running') && l.includes(id)).length;

test('a router SIGKILLed mid-copy: another router\'s worker resumes the move job from its recorded phase; one owner, nothing acknowledged lost; the job shows in skein jobs', async () => {
  const c = await startCluster({
    shards: 3,
    routers: 2,
    // A slow copy (the bandwidth limit) keeps the move copying long enough to kill its router in it.
    // A 3 s job lock (default 10 s) makes the takeover come sooner; the mechanism is the same.
    routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '200', SKEIN_ROUTER_MOVE_MAX_BYTES_PER_SECOND: '50000', SKEIN_ROUTER_MOVE_LOCK_MS: '3000' },
  });
  clusters.push(c);
  const tenant = tenantName('move-job');
  assert.equal((await admin(c, c.url, 'POST', '/v1/admin/tenants', { tenant, partitions: 3 })).status, 201);
  // Data to copy: 32 writers through both routers for 4 s or 3,000 appends, whichever comes
  // first (the copy runs at 50 kB/s: a fast machine's 4 s of appends took the move ~50 s).
  const fill = [startWriters({ url: c.routers[0]!.url, key: c.adminKey, tenant, writers: 16, streamPrefix: 'a' }), startWriters({ url: c.routers[1]!.url, key: c.adminKey, tenant, writers: 16, streamPrefix: 'b' })];
  for (const until = Date.now() + 4000; Date.now() < until && fill[0]!.acks.length + fill[1]!.acks.length < 3000; ) await sleep(50);
  const filled = await Promise.all(fill.map((l) => l.stop()));

  const cluster = await admin(c, c.url, 'GET', '/v1/admin/cluster');
  const partition = `${tenant}~0`;
  const source = (cluster.body.shards as { id: string; partitions: string[] }[]).find((s) => s.partitions.includes(partition))!.id;
  const target = (cluster.body.shards as { id: string }[]).find((s) => s.id !== source)!.id;
  const started = await admin(c, c.url, 'POST', `/v1/admin/partitions/${partition}/move`, { to: target });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id = started.body.id as string;

  // Whichever router's worker took the job runs it; the other one survives.
  let runner: ServiceProcess | undefined;
  for (let until = Date.now() + 10_000; !runner; await sleep(20)) {
    runner = c.routers.find((r) => runsOn(r, id) > 0);
    assert.ok(runner || Date.now() < until, 'no router ran the move job');
  }
  const survivor = c.routers.find((r) => r !== runner)!;
  const writes = pacedWriters(survivor.url, c.adminKey, tenant, 8, 100);

  // Killed mid-copy, once the copy has saved progress (and reported it on the job).
  let atKill: Move;
  for (let until = Date.now() + 20_000; ; await sleep(20)) {
    atKill = (await admin(c, survivor.url, 'GET', `/v1/admin/moves/${id}`)).body as Move;
    if (atKill.state === 'copying' && atKill.copiedBytes > 0) break;
    assert.ok(Date.now() < until && atKill.state === 'copying', `the copy ended before the kill: ${JSON.stringify(atKill)}`);
  }
  let running: MoveJob | undefined;
  for (let until = Date.now() + 5000; !running?.move || running.move.copiedBytes === 0; await sleep(50)) {
    const jobs = await admin(c, survivor.url, 'GET', '/v1/admin/jobs?kind=move');
    assert.equal(jobs.status, 200, JSON.stringify(jobs.body));
    running = (jobs.body.jobs as MoveJob[]).find((j) => j.id === id);
    assert.ok(Date.now() < until, `the move job shows no progress: ${JSON.stringify(running)}`);
  }
  assert.equal(running.kind, 'move');
  assert.equal(running.partition, partition);
  assert.equal(running.state, 'active');
  assert.deepEqual([running.move.state, running.move.from, running.move.to], ['copying', source, target]);
  await runner!.kill('SIGKILL');
  const killedAt = Date.now();

  // The survivor's worker takes the job over once its lock expired, and resumes the copy.
  const end = await settledMove(survivor.url, c.adminKey, id, 120_000, 200);
  const settledAfterMs = Date.now() - killedAt;
  // The survivor's first run of the job started from the phase and copy progress recorded, not from scratch.
  const resumed = survivor.output.filter((l) => l.includes('move job running') && l.includes(id)).map((l) => JSON.parse(l) as { state: string; copiedBytes: number; time: number });
  assert.ok(resumed.length >= 1, 'the survivor never ran the move');
  assert.equal(resumed[0]!.state, 'copying');
  assert.ok(resumed[0]!.copiedBytes >= atKill.copiedBytes, `resumed at ${resumed[0]!.copiedBytes} bytes, ${atKill.copiedBytes} were recorded at the kill`);
  const takeoverMs = resumed[0]!.time - killedAt;
  const owner = end.state === 'done' ? target : source;
  assert.deepEqual(await ownersServing(c, survivor.url, partition), [owner]);

  // The job: finished (completed when done, failed with the reason when rolled back), more than one run.
  const job = (await admin(c, survivor.url, 'GET', `/v1/admin/jobs/${id}`)).body as MoveJob;
  assert.equal(job.state, end.state === 'done' ? 'completed' : 'failed', JSON.stringify(job));
  assert.equal(job.progress, 100);
  assert.equal(job.move.state, end.state);
  assert.ok(job.attempts >= 2, `attempts ${job.attempts}`);
  const listed = await skein(survivor.url, c.adminKey, ['jobs', '--kind', 'move']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^${id}  move  ${partition.replace(/[~]/g, '\\~')}  ${job.state}  100%  ${end.state} ${source} -> ${target} \\d+ bytes  attempts \\d+`, 'm'));

  await sleep(500);
  const paced = await writes.stop();
  assert.ok(paced.acks.length > 50, `only ${paced.acks.length} paced acknowledgements`);
  const acks = [...filled.flatMap((r) => r.acks), ...paced.acks];
  await verifyAcknowledged({ url: survivor.url, key: c.adminKey, tenant }, { acks, statuses: {}, codes: {}, retryableWithoutRetryAfter: 0 });
  console.log(JSON.stringify({ figures: 'router killed mid-move', state: end.state, reason: end.reason, takeoverMs, settledAfterMs, copiedBytesAtKill: atKill.copiedBytes, copiedBytes: end.copiedBytes, attempts: job.attempts, acks: acks.length, pacedStatuses: paced.statuses }));
  await c.stop();
  clusters.splice(clusters.indexOf(c), 1);
});

test('a router SIGKILLed while its move is fenced: another router\'s worker takes the job over and drives the move on to the flip (or rolls it back); one owner, nothing acknowledged lost', async () => {
  const c = await startCluster({ shards: 3, routers: 2, routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '200', SKEIN_ROUTER_MOVE_LOCK_MS: '3000' } });
  clusters.push(c);
  const tenant = tenantName('move-fenced');
  assert.equal((await admin(c, c.url, 'POST', '/v1/admin/tenants', { tenant, partitions: 3 })).status, 201);
  const loads = [startWriters({ url: c.routers[0]!.url, key: c.adminKey, tenant, writers: 8, streamPrefix: 'a' }), startWriters({ url: c.routers[1]!.url, key: c.adminKey, tenant, writers: 8, streamPrefix: 'b' })];
  await sleep(2000);
  const partition = `${tenant}~1`;
  const cluster = await admin(c, c.url, 'GET', '/v1/admin/cluster');
  const home = (cluster.body.shards as { id: string; partitions: string[] }[]).find((s) => s.partitions.includes(partition))!.id;
  const away = (cluster.body.shards as { id: string }[]).find((s) => s.id !== home)!.id;

  // The fence lasts a fraction of a second: move the partition back and forth until the kill lands in it.
  let caught: { id: string; from: string; to: string; runner: ServiceProcess } | undefined;
  for (let attempt = 0, from = home, to = away; !caught && attempt < 8; attempt++, [from, to] = [to, from]) {
    const started = await admin(c, c.url, 'POST', `/v1/admin/partitions/${partition}/move`, { to });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const id = started.body.id as string;
    for (let until = Date.now() + 60_000; ; ) {
      const m = (await admin(c, c.url, 'GET', `/v1/admin/moves/${id}`)).body as Move;
      if (m.state === 'fencing') {
        const runner = c.routers.find((r) => runsOn(r, id) > 0);
        if (runner) {
          await runner.kill('SIGKILL');
          caught = { id, from, to, runner };
        }
        break;
      }
      if ((m.state === 'done' || m.state === 'rolled_back') && m.cleanup !== 'pending') break;
      assert.ok(Date.now() < until, `move ${id} still ${m.state}`);
    }
    if (!caught) {
      for (let until = Date.now() + 30_000; ; await sleep(50)) {
        const m = (await admin(c, c.url, 'GET', `/v1/admin/moves/${id}`)).body as Move;
        if ((m.state === 'done' || m.state === 'rolled_back') && m.cleanup !== 'pending') {
          if (m.state === 'rolled_back') [from, to] = [to, from];
          break;
        }
        assert.ok(Date.now() < until, `move ${id} did not settle`);
      }
    }
  }
  assert.ok(caught, 'no kill landed while a move was fenced in 8 moves');
  const survivor = c.routers.find((r) => r !== caught!.runner)!;
  const end = await settledMove(survivor.url, c.adminKey, caught.id, 120_000, 200);
  const resumed = survivor.output.filter((l) => l.includes('move job running') && l.includes(caught!.id)).map((l) => JSON.parse(l) as { state: string });
  assert.equal(resumed[0]?.state, 'fencing', 'the survivor took the job over in the fenced phase');
  const owner = end.state === 'done' ? caught.to : caught.from;
  assert.deepEqual(await ownersServing(c, survivor.url, partition), [owner]);
  const job = (await admin(c, survivor.url, 'GET', `/v1/admin/jobs/${caught.id}`)).body as MoveJob;
  assert.equal(job.move.state, end.state);
  assert.ok(job.attempts >= 2, `attempts ${job.attempts}`);

  await sleep(1000);
  const reports = await Promise.all(loads.map((l) => l.stop()));
  const acks = reports.flatMap((r) => r.acks);
  await verifyAcknowledged({ url: survivor.url, key: c.adminKey, tenant }, { acks, statuses: {}, codes: {}, retryableWithoutRetryAfter: 0 });
  console.log(JSON.stringify({ figures: 'router killed while fenced', state: end.state, reason: end.reason, pauseMs: end.pauseMs, attempts: job.attempts, acks: acks.length, statuses: reports.map((r) => r.statuses) }));
  await c.stop();
  clusters.splice(clusters.indexOf(c), 1);
});
