import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { BackupManifest } from '@skein/engine';
import type { JobData, JobQueues, JobView } from '@skein/protocol';
import { createLocalJobQueues } from './local-job-queues.ts';
import type { JobRunner, RunOutcome } from './runner.ts';
import type { TimerRunObserver } from './shard-maintenance.ts';

const log = pino({ level: 'silent' });

/** A runner whose runs wait until released, recording what ran. */
function gatedRunner() {
  const ran: JobData[] = [];
  const gates: (() => void)[] = [];
  let running = 0;
  let maxRunning = 0;
  const runner: JobRunner = {
    async run(_id, data, _attempt, progress): Promise<RunOutcome> {
      running++;
      maxRunning = Math.max(maxRunning, running);
      ran.push(data);
      await progress(40);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return { status: 'done', result: { ran: data.kind } };
    },
  };
  return { runner, ran, release: () => gates.splice(0).forEach((g) => g()), get maxRunning() { return maxRunning; } };
}

async function until(jobs: JobQueues, id: string, state: JobView['state']): Promise<JobView> {
  for (let i = 0; i < 200; i++) {
    const view = await jobs.get(id);
    if (view?.state === state) return view;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`job ${id} never reached ${state}: ${JSON.stringify(await jobs.get(id))}`);
}

test('answers the job already waiting or running for a unit instead of a new one, and runs one job at a time per shard', async () => {
  const gated = gatedRunner();
  const jobs = createLocalJobQueues({ shards: [{ id: 'shard-0', runner: gated.runner, backupDir: '' }], log });
  const [first] = await jobs.enqueue([{ kind: 'retention', shard: 'shard-0', partition: 'acme~0', epoch: 1 }]);
  const [second] = await jobs.enqueue([{ kind: 'retention', shard: 'shard-0', partition: 'acme~1', epoch: 1 }]);
  const running = await until(jobs, first!.id, 'active');
  assert.equal(running.progress, 40);
  // acme~0 is running, acme~1 waiting: both are answered as they are.
  const again = await jobs.enqueue([
    { kind: 'retention', shard: 'shard-0', partition: 'acme~0', epoch: 1 },
    { kind: 'retention', shard: 'shard-0', partition: 'acme~1', epoch: 1 },
  ]);
  assert.deepEqual(again.map((j) => j.id), [first!.id, second!.id]);
  assert.equal((await jobs.get(second!.id))?.state, 'waiting');
  assert.equal(gated.ran.length, 1, 'the second job waits for the first');

  gated.release();
  await until(jobs, second!.id, 'active');
  gated.release();
  const done = await until(jobs, second!.id, 'completed');
  assert.equal(done.progress, 100);
  assert.deepEqual(done.result, { ran: 'retention' });
  assert.ok(done.finishedAt);
  assert.equal(gated.maxRunning, 1);

  // Finished: the unit takes a new job.
  const [third] = await jobs.enqueue([{ kind: 'retention', shard: 'shard-0', partition: 'acme~0', epoch: 1 }]);
  assert.notEqual(third!.id, first!.id);
  await until(jobs, third!.id, 'active');
  gated.release();
  await until(jobs, third!.id, 'completed');
  const listed = await jobs.list(['shard-0'], { limit: 10 });
  assert.deepEqual(listed.map((j) => j.id), [third!.id, second!.id, first!.id], 'newest first');
  await jobs.close();
});

test('keeps the last historyLimit finished jobs and forgets older ones', async () => {
  const runner: JobRunner = { run: async () => ({ status: 'done', result: {} }) };
  const jobs = createLocalJobQueues({ shards: [{ id: 'shard-0', runner, backupDir: '' }] , log }, { historyLimit: 3 });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const [job] = await jobs.enqueue([{ kind: 'retention', shard: 'shard-0', partition: `acme~${i}`, epoch: 1 }]);
    ids.push(job!.id);
    await until(jobs, job!.id, 'completed');
  }
  const listed = await jobs.list(['shard-0'], { limit: 100 });
  assert.deepEqual(listed.map((j) => j.id), ids.slice(2).reverse());
  assert.equal(await jobs.get(ids[0]!), null);
  assert.equal(await jobs.get(ids[1]!), null);
  assert.equal((await jobs.list(['shard-0'], { limit: 2 })).length, 2);
  assert.equal((await jobs.list(['shard-0'], { state: 'failed', limit: 100 })).length, 0);
  assert.equal((await jobs.list(['shard-1'], { limit: 100 })).length, 0);
  await jobs.close();
});

test('runs a failing job again with backoff, then reports it failed with its error', async () => {
  let runs = 0;
  const runner: JobRunner = {
    async run() {
      runs++;
      throw new Error(`disk full (${runs})`);
    },
  };
  const jobs = createLocalJobQueues({ shards: [{ id: 'shard-0', runner, backupDir: '' }], log }, { attempts: 3, backoffMs: 1 });
  const [job] = await jobs.enqueue([{ kind: 'compact', shard: 'shard-0', epoch: 1 }]);
  const failed = await until(jobs, job!.id, 'failed');
  assert.equal(runs, 3);
  assert.equal(failed.attempts, 3);
  assert.equal(failed.error, 'disk full (3)');
  await jobs.close();
});

test('a job whose unit is leased by a timer run waits and runs once the unit is free', async () => {
  let held = 2;
  const runner: JobRunner = { run: async () => (held-- > 0 ? { status: 'held' } : { status: 'done', result: { ok: true } }) };
  const jobs = createLocalJobQueues({ shards: [{ id: 'shard-0', runner, backupDir: '' }], log }, { heldRetryMs: 1 });
  const [job] = await jobs.enqueue([{ kind: 'compact', shard: 'shard-0', epoch: 1 }]);
  const done = await until(jobs, job!.id, 'completed');
  assert.deepEqual(done.result, { ok: true });
  assert.equal(done.attempts, 1);
  await jobs.close();
});

test('a backup is one id with one job per shard, listed complete once every shard reported, and backups of earlier runs are listed from their manifests', async () => {
  const earlier: BackupManifest = { id: '20260101T000000000Z-abcdef', createdAt: Date.parse('2026-01-01T00:00:00Z'), highestPosition: '41', buckets: [{ id: 'b0', bytes: 100, reused: false }, { id: 'b1', bytes: 20, reused: true }] };
  const onDisk: Record<string, BackupManifest[]> = { '/b/shard-0': [earlier], '/b/shard-1': [earlier] };
  const runnerOf = (shard: string): JobRunner => ({
    async run(_id, data) {
      const m: BackupManifest = { id: data.backupId!, createdAt: Date.now(), highestPosition: shard === 'shard-0' ? '7' : '9', buckets: [{ id: 'b', bytes: 5, reused: false }] };
      onDisk[`/b/${shard}`]!.push(m);
      return { status: 'done', result: { backup: m.id, position: m.highestPosition, bytes: 5, buckets: 1 } };
    },
  });
  const jobs = createLocalJobQueues({
    shards: ['shard-0', 'shard-1'].map((id) => ({ id, runner: runnerOf(id), backupDir: `/b/${id}` })),
    log,
    listBackups: (dir) => onDisk[dir] ?? [],
  });
  const backup = await jobs.createBackup(['shard-0', 'shard-1'], 1);
  assert.match(backup.id, /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$/);
  assert.deepEqual(backup.jobs.map((j) => [j.kind, j.shard]), [['backup', 'shard-0'], ['backup', 'shard-1']]);
  for (const j of backup.jobs) await until(jobs, j.id, 'completed');
  const [latest, old] = await jobs.listBackups(10);
  assert.deepEqual(latest, { id: backup.id, createdAt: latest!.createdAt, complete: true, shards: [{ shard: 'shard-0', position: '7', bytes: 5 }, { shard: 'shard-1', position: '9', bytes: 5 }] });
  assert.deepEqual(old, { id: earlier.id, createdAt: '2026-01-01T00:00:00.000Z', complete: true, shards: [{ shard: 'shard-0', position: '41', bytes: 120 }, { shard: 'shard-1', position: '41', bytes: 120 }] });
  assert.equal((await jobs.listBackups(1)).length, 1);
  await jobs.close();
});

test('a job for a shard not in this process fails at once', async () => {
  const jobs = createLocalJobQueues({ shards: [], log });
  const [job] = await jobs.enqueue([{ kind: 'compact', shard: 'shard-9', epoch: 1 }]);
  const view = await jobs.get(job!.id);
  assert.equal(view?.state, 'failed');
  assert.match(view?.error ?? '', /shard-9 is not in this process/);
  assert.equal(await jobs.get('no-such-job'), null);
  await jobs.close();
});

test('lists the timers\' runs beside the queued jobs, without holding back a job enqueued for the same unit', async () => {
  let observer: TimerRunObserver | undefined;
  const gated = gatedRunner();
  const jobs = createLocalJobQueues({ shards: [{ id: 'shard-0', runner: gated.runner, backupDir: '', timerRuns: { observeTimerRuns: (o) => (observer = o) } }], log });
  assert.ok(observer);
  observer.started('shard-0:timer-1-compact', { kind: 'compact', shard: 'shard-0', epoch: 1 });
  observer.progress('shard-0:timer-1-compact', 50);
  assert.deepEqual((await jobs.list(['shard-0'], { state: 'active', limit: 10 })).map((j) => [j.id, j.progress]), [['shard-0:timer-1-compact', 50]]);
  // Its unit's job is queued (the runner's lease makes it wait for the timer's run).
  const [queued] = await jobs.enqueue([{ kind: 'compact', shard: 'shard-0', epoch: 1 }]);
  assert.notEqual(queued!.id, 'shard-0:timer-1-compact');
  observer.finished('shard-0:timer-1-compact', { result: { buckets: [] } });
  const timer = await jobs.get('shard-0:timer-1-compact');
  assert.equal(timer?.state, 'completed');
  assert.deepEqual(timer?.result, { buckets: [] });
  // The queued job still answers a second enqueue of the unit.
  assert.equal((await jobs.enqueue([{ kind: 'compact', shard: 'shard-0', epoch: 1 }]))[0]!.id, queued!.id);
  observer.started('shard-0:timer-2-compact', { kind: 'compact', shard: 'shard-0', epoch: 1 });
  observer.finished('shard-0:timer-2-compact', { error: 'disk full' });
  assert.equal((await jobs.get('shard-0:timer-2-compact'))?.error, 'disk full');
  await until(jobs, queued!.id, 'active');
  gated.release();
  await until(jobs, queued!.id, 'completed');
  await jobs.close();
});
