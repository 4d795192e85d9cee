import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { MOVE_JOB_DEFAULTS, MOVES_QUEUE, isSkeinError, parseMoveJobData, type MoveJobData, type MoveJobProgress } from '@skein/protocol';
import type { MoveLogger, MoveRecord, MoveSteps } from './move-steps.ts';
import { MOVE_KEYS, type MoveLock } from './redis-moves.ts';

export interface MoveJobsOptions {
  /** Before the fence, a run that makes no progress this long rolls the move back. Default 15 s. */
  stallMs?: number;
  /** How long the source keeps its copy after the flip. Default 10 s. */
  cleanupGraceMs?: number;
  /**
   * BullMQ's lock on a running move (renewed by the worker every half of it). A router
   * that dies mid-move leaves its job to another router's worker once the lock expired
   * and the stalled-job check (every half of it) saw so. Default 10 s.
   */
  lockMs?: number;
  /** Moves running at once in the whole cluster (the queue's global concurrency). Default 2. */
  concurrency?: number;
}

/** The cluster's moves queue (`skein-moves`) and this router's worker of it. */
export interface MoveJobs {
  /** The key of a move job's lock: the step scripts check the run's token against it. */
  lockKeyOf(id: string): string;
  /** Adds the job of a move that began at topology epoch `epoch` (its job id is the move id; adding it again is a no-op). */
  enqueue(move: MoveRecord, epoch: number): Promise<void>;
  /** Re-enqueues moves not finished whose job is gone (a router died between begin and enqueue) or failed. */
  reconcile(): Promise<number>;
  /** Stops taking moves; a move running here is handed back to the queue at its next step. */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const terminal = (m: MoveRecord) => m.state === 'done' || m.state === 'rolled_back';
const progressOf = (m: MoveRecord): MoveJobProgress => ({ state: m.state, copiedBytes: m.copiedBytes, copiedEntries: m.copiedEntries });

/**
 * Runs partition moves as BullMQ jobs on `skein-moves`, one worker per router. A run
 * drives the move from the phase its record holds (DESIGN.md, "Moving a partition"),
 * reports progress after each step, and ends when the move is done or rolled back and
 * cleaned. A done move waits out the cleanup grace period as a delayed job (holding no
 * slot of the global concurrency). A rolled-back move's job fails without retry, its
 * reason the job's error.
 */
export async function startMoveJobs(
  deps: { redisUrl: string; redisOptions: RedisOptions; redis: Redis; steps: MoveSteps; epoch: () => number; log: MoveLogger },
  options: MoveJobsOptions = {},
): Promise<MoveJobs> {
  const { steps, log, redis } = deps;
  const stallMs = options.stallMs ?? 15_000;
  const graceMs = options.cleanupGraceMs ?? 10_000;
  const lockMs = options.lockMs ?? 10_000;
  const concurrency = options.concurrency ?? 2;
  // BullMQ's blocking commands need no per-request retry limit.
  const connection = new Redis(deps.redisUrl, { ...deps.redisOptions, maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: (n) => Math.min(n * 100, 2000) });
  connection.on('error', () => {});
  const queue = new Queue(MOVES_QUEUE, { connection });
  queue.on('error', (err) => log.warn({ err }, 'moves queue error'));
  await queue.setGlobalConcurrency(concurrency);
  const lockKeyOf = (id: string) => `${queue.toKey(id)}:lock`;
  let closing = false;

  async function enqueue(move: MoveRecord, epoch: number): Promise<void> {
    const data: MoveJobData = { kind: 'move', partition: move.partition, from: move.from, to: move.to, epoch };
    await queue.add('move', data, { ...MOVE_JOB_DEFAULTS, jobId: move.id });
  }

  /** One run of a move's job: from the phase recorded to the end, or until handed back. */
  async function run(job: Job, token: string | undefined): Promise<Record<string, unknown>> {
    const id = job.id ?? '';
    if (!parseMoveJobData(job.data) || token === undefined) throw new UnrecoverableError(`job ${id} of ${MOVES_QUEUE} is not a move's`);
    const lock: MoveLock = { key: lockKeyOf(id), token };
    let move = await steps.load(id);
    if (!move) throw new UnrecoverableError(`no move ${id}`);
    log.info({ move: id, partition: move.partition, state: move.state, copiedBytes: move.copiedBytes, attempt: job.attemptsStarted }, 'move job running');
    let lastProgress = Date.now();
    let backoff = 50;
    const handBack = async (at: number) => {
      await job.moveToDelayed(at, token);
      throw new DelayedError();
    };
    for (;;) {
      if (terminal(move)) {
        if (move.cleanup === 'pending') {
          const at = (move.fencedAt ?? 0) + (move.pauseMs ?? 0) + graceMs;
          // After a flip the source keeps its copy for the grace period: the job waits it out delayed.
          if (move.state === 'done' && Date.now() < at) await handBack(at);
          // A failure here (the shard is down) fails the run: BullMQ retries it with backoff.
          move = await steps.cleanup(move, lock);
          continue;
        }
        await redis.srem(MOVE_KEYS.active, id);
        if (move.state === 'rolled_back') throw new UnrecoverableError(`rolled back: ${move.reason ?? 'unknown reason'}`);
        return { state: move.state, pauseMs: move.pauseMs, copiedBytes: move.copiedBytes, copiedEntries: move.copiedEntries };
      }
      if (closing) await handBack(Date.now());
      try {
        move = await steps.advance(move, lock);
        lastProgress = Date.now();
        backoff = 50;
        await job.updateProgress(progressOf(move));
      } catch (err) {
        // Another run holds the job now: this one must change nothing more.
        if (isSkeinError(err, 'CONFLICT') && err.details.reason === 'lock') throw err;
        const reason = isSkeinError(err) ? `${err.code}: ${err.message}` : String(err);
        log.warn({ err, move: id, state: move.state }, 'partition move step failed');
        // After the fence every moment is a write pause: roll back at once. Before it, retry until
        // stalled, unless the target was drained or removed meanwhile (the fence refuses it for good).
        const targetRefused = isSkeinError(err, 'CONFLICT') && err.details.reason === 'target';
        if (move.state === 'fencing' || targetRefused || Date.now() - lastProgress > stallMs) {
          try {
            move = await steps.rollback((await steps.load(id)) ?? move, reason, lock);
            await job.updateProgress(progressOf(move));
          } catch (e) {
            if (isSkeinError(e, 'CONFLICT') && e.details.reason === 'lock') throw e;
            log.warn({ err: e, move: id }, 'rollback failed; retried');
            await sleep(200);
            move = (await steps.load(id)) ?? move;
          }
        } else {
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 1000);
          move = (await steps.load(id)) ?? move;
        }
      }
    }
  }

  const worker = new Worker(MOVES_QUEUE, run, {
    connection,
    concurrency,
    lockDuration: lockMs,
    stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
    // A move outlives any number of routers dying under it: it is never failed for stalling.
    maxStalledCount: 1000,
    autorun: true,
  });
  worker.on('error', (err) => log.warn({ err }, 'moves worker error'));
  worker.on('failed', (job, err) => log.warn({ err, move: job?.id, attempts: job?.attemptsMade }, 'move job failed'));

  return {
    lockKeyOf,
    enqueue,
    async reconcile() {
      let requeued = 0;
      for (const id of await redis.smembers(MOVE_KEYS.active)) {
        const move = await steps.load(id);
        if (!move) {
          await redis.srem(MOVE_KEYS.active, id);
          continue;
        }
        const job = await queue.getJob(id);
        if (!job) await enqueue(move, deps.epoch());
        else if (await job.isFailed()) await job.retry('failed');
        else continue;
        requeued++;
        log.info({ move: id, partition: move.partition, state: move.state }, 'move job re-enqueued');
      }
      return requeued;
    },
    async close() {
      closing = true;
      await worker.close();
      await queue.close();
      connection.disconnect();
    },
  };
}
