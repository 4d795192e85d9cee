// Move jobs on BullMQ against a real redis-server: the run drives a move from its recorded
// phase under the job's lock, reports progress, fails a rolled-back move's job without
// retry, and a starting router re-enqueues moves left without a job. The steps are a
// stand-in that keeps the record in Redis and checks the lock as the step script does.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { MOVES_QUEUE, SkeinError, parseMoveJobProgress } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { startMoveJobs, type MoveJobs } from './move-jobs.ts';
import type { MoveRecord, MoveSteps } from './move-steps.ts';
import { MOVE_KEYS, type MoveLock } from './redis-moves.ts';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const silent = { info() {}, warn() {} };
const next = { copying: 'tailing', tailing: 'fencing', fencing: 'done' } as const;

/** Steps over the record in Redis: each moves one phase on, refused (CONFLICT lock) unless `lock` is the job's lock as BullMQ holds it. */
function phaseSteps(redis: Redis, options: { failIn?: MoveRecord['state']; stepMs?: number } = {}) {
  const seen: { state: string; locked: boolean }[] = [];
  const save = async (m: MoveRecord) => {
    await redis.set(MOVE_KEYS.move(m.id), JSON.stringify(m));
    return m;
  };
  const check = async (lock: MoveLock) => {
    const locked = (await redis.get(lock.key)) === lock.token;
    if (!locked) throw new SkeinError('CONFLICT', 'lock', { reason: 'lock' });
  };
  const steps: MoveSteps = {
    async load(id) {
      const text = await redis.get(MOVE_KEYS.move(id));
      return text === null ? null : (JSON.parse(text) as MoveRecord);
    },
    begin: (m) => save(m),
    async advance(m, lock) {
      seen.push({ state: m.state, locked: (await redis.get(lock.key)) === lock.token });
      await check(lock);
      if (options.stepMs) await sleep(options.stepMs);
      if (m.state === options.failIn) throw new SkeinError('UNAVAILABLE', 'the source is away', { retryAfter: 1 });
      if (m.state === 'done' || m.state === 'rolled_back') return m;
      const state = next[m.state];
      return save({ ...m, state, copiedBytes: m.copiedBytes + 100, copiedEntries: m.copiedEntries + 1, ...(state === 'done' ? { cleanup: 'pending' as const, fencedAt: Date.now(), pauseMs: 0 } : {}) });
    },
    async rollback(m, reason, lock) {
      await check(lock);
      return save({ ...m, state: 'rolled_back', reason, cleanup: 'pending' });
    },
    async cleanup(m, lock) {
      await check(lock);
      return save({ ...m, cleanup: 'done' });
    },
  };
  return { steps, seen };
}

let db = 0;
async function setup(options: { failIn?: MoveRecord['state']; stepMs?: number } = {}) {
  const url = `${server.url}/${db++ % 16}`;
  const redis = new Redis(url);
  await redis.flushdb();
  const { steps, seen } = phaseSteps(redis, options);
  const started: MoveJobs[] = [];
  const start = async () => {
    const jobs = await startMoveJobs({ redisUrl: url, redisOptions: {}, redis, steps, epoch: () => 7, log: silent }, { cleanupGraceMs: 0, lockMs: 2000, stallMs: 200 });
    started.push(jobs);
    return jobs;
  };
  const queue = new Queue(MOVES_QUEUE, { connection: new Redis(url, { maxRetriesPerRequest: null }) });
  const record = async (m: Partial<MoveRecord> & { id: string }) => {
    const now = new Date().toISOString();
    const move: MoveRecord = { partition: 't~0', from: 'a', to: 'b', state: 'copying', createdAt: now, updatedAt: now, copiedBytes: 0, copiedEntries: 0, cursor: null, ...m };
    await redis.multi().set(MOVE_KEYS.move(move.id), JSON.stringify(move)).sadd(MOVE_KEYS.active, move.id).exec();
    return move;
  };
  const finished = async (id: string): Promise<Job> => {
    for (let until = Date.now() + 15_000; ; await sleep(50)) {
      const job = await queue.getJob(id);
      if (job && (job.finishedOn || job.failedReason)) return job;
      assert.ok(Date.now() < until, `job ${id} did not finish`);
    }
  };
  return {
    redis,
    steps,
    seen,
    start,
    record,
    queue,
    finished,
    async close() {
      for (const j of started) await j.close();
      await queue.close();
      redis.disconnect();
    },
  };
}

test('a move job runs the move from its recorded phase to done under its lock, reporting progress after each step', async () => {
  const t = await setup();
  try {
    const jobs = await t.start();
    const move = await t.record({ id: 'm-done', state: 'tailing', copiedBytes: 500, copiedEntries: 5 });
    await jobs.enqueue(move, 7);
    const job = await t.finished(move.id);
    assert.equal(await job.getState(), 'completed');
    assert.deepEqual(job.returnvalue, { state: 'done', pauseMs: 0, copiedBytes: 700, copiedEntries: 7 });
    assert.deepEqual(parseMoveJobProgress(job.progress), { state: 'done', copiedBytes: 700, copiedEntries: 7 });
    assert.deepEqual(job.data, { kind: 'move', partition: 't~0', from: 'a', to: 'b', epoch: 7 });
    // Resumed at the recorded phase, every step under the lock BullMQ holds for the run.
    assert.deepEqual(t.seen, [{ state: 'tailing', locked: true }, { state: 'fencing', locked: true }]);
    const stored = await t.steps.load(move.id);
    assert.deepEqual([stored?.state, stored?.cleanup], ['done', 'done']);
    assert.equal(await t.redis.sismember(MOVE_KEYS.active, move.id), 0);
  } finally {
    await t.close();
  }
});

test('a move whose step fails after the fence rolls back; its job fails with the reason, without retry', async () => {
  const t = await setup({ failIn: 'fencing' });
  try {
    const jobs = await t.start();
    const move = await t.record({ id: 'm-back', state: 'fencing', fencedAt: Date.now() });
    await jobs.enqueue(move, 7);
    const job = await t.finished(move.id);
    assert.equal(await job.getState(), 'failed');
    assert.equal(job.failedReason, 'rolled back: UNAVAILABLE: the source is away');
    assert.equal(job.attemptsMade, 1);
    const stored = await t.steps.load(move.id);
    assert.deepEqual([stored?.state, stored?.cleanup], ['rolled_back', 'done']);
  } finally {
    await t.close();
  }
});

test('a router starting re-enqueues an unfinished move left without a job', async () => {
  const t = await setup();
  try {
    // Begun, but its router died before the job was added.
    const orphan = await t.record({ id: 'm-orphan', state: 'copying' });
    const jobs = await t.start();
    assert.equal(await jobs.reconcile(), 1);
    const job = await t.finished(orphan.id);
    assert.equal(await job.getState(), 'completed');
    assert.equal((await t.steps.load(orphan.id))?.state, 'done');
    // Nothing left to re-enqueue: the finished move left the active set.
    assert.equal(await jobs.reconcile(), 0);
  } finally {
    await t.close();
  }
});

test('a router stopping hands its running move back to the queue at the next step; another router finishes it', async () => {
  const t = await setup({ stepMs: 300 });
  try {
    const first = await t.start();
    const move = await t.record({ id: 'm-handed', state: 'copying' });
    await first.enqueue(move, 7);
    for (let until = Date.now() + 5000; t.seen.length === 0; await sleep(20)) assert.ok(Date.now() < until, 'the move never ran');
    const stopping = Date.now();
    await first.close();
    // Closed at the step boundary, not after the whole move (three steps of 300 ms).
    assert.ok(Date.now() - stopping < 800, `close took ${Date.now() - stopping} ms`);
    assert.notEqual((await t.steps.load(move.id))?.state, 'done');
    await t.start();
    const job = await t.finished(move.id);
    assert.equal(await job.getState(), 'completed');
    assert.equal((await t.steps.load(move.id))?.state, 'done');
    assert.ok(t.seen.every((s) => s.locked));
  } finally {
    await t.close();
  }
});
