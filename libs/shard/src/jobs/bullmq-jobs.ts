import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { JOB_DEFAULTS, deduplicationIdOf, jobIdOf, maintenanceQueueName, parseJobData, type JobData } from '@skein/protocol';
import type { JobRunner } from './runner.ts';

/** A shard's maintenance queue and worker, or why it runs none. */
export interface ShardJobs {
  /** Null while maintenance runs; otherwise the one-line reason it does not. */
  readonly refused: string | null;
  /** Jobs of the queue by state, for the queue-depth gauge; null when refused. */
  counts(): Promise<Record<string, number> | null>;
  /** Stops taking jobs and waits for the running one (its lease is released). */
  close(): Promise<void>;
}

export interface BullJobsDeps {
  redisUrl: string;
  redisOptions: RedisOptions;
  shardId: string;
  runner: JobRunner;
  /** The partitions this shard owns now, and the topology epoch it knows. */
  ownership: { owned(): string[]; readonly epoch: number };
  log: Logger;
}

export interface BullJobsOptions {
  /** How often the sweep enqueues retention of every owned partition and a compaction of the shard's closed buckets. */
  sweepEveryMs: number;
  /** BullMQ's job lock and stalled-job check interval; a killed worker's job runs again after about twice this. */
  lockMs: number;
}

/** Why maintenance must not run against this Redis, or null. BullMQ's keys must never be evicted: a lost job or lock breaks "exactly once". */
export async function evictionRefusal(redis: Pick<Redis, 'info'>): Promise<string | null> {
  const info = await redis.info('memory');
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy === undefined) return 'Redis did not report its maxmemory-policy (INFO memory); maintenance needs noeviction';
  if (policy !== 'noeviction') return `Redis maxmemory-policy is ${policy}; maintenance (BullMQ) needs noeviction (CONFIG SET maxmemory-policy noeviction)`;
  return null;
}

/**
 * Runs this shard's maintenance on BullMQ: queue `skein-maintenance-<shard>`, one worker
 * (this process: nothing else opens the shard's files), and one job scheduler (`sweep`)
 * whose job enqueues one job per owned partition and kind, deduplicated. A Redis whose
 * maxmemory-policy is not noeviction is refused: the shard runs on without maintenance,
 * `refused` says why (logged once, at error).
 */
export async function startBullJobs(deps: BullJobsDeps, options: BullJobsOptions): Promise<ShardJobs> {
  const { shardId, runner } = deps;
  const name = maintenanceQueueName(shardId);
  const log = deps.log.child({ queue: name });
  // BullMQ's blocking commands need no per-request retry limit.
  const connection = new Redis(deps.redisUrl, { ...deps.redisOptions, maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 100, 2000) });
  connection.on('error', () => {});
  const refused = await evictionRefusal(connection).catch((err: unknown) => `Redis could not be asked for its maxmemory-policy (${err instanceof Error ? err.message : String(err)})`);
  if (refused) {
    log.error({ shard: shardId }, `maintenance off: ${refused}`);
    connection.disconnect();
    return { refused, counts: async () => null, close: async () => {} };
  }

  const queue = new Queue(name, { connection });
  queue.on('error', (err) => log.warn({ err }, 'maintenance queue error'));
  const enqueue = (data: JobData) => queue.add(data.kind, data, { ...JOB_DEFAULTS, deduplication: { id: deduplicationIdOf(data) } });

  async function sweep(): Promise<Record<string, unknown>> {
    const epoch = deps.ownership.epoch;
    const partitions = deps.ownership.owned();
    for (const partition of partitions) await enqueue({ kind: 'retention', shard: shardId, partition, epoch });
    await enqueue({ kind: 'compact', shard: shardId, epoch });
    return { retention: partitions.length, compact: 1 };
  }

  const worker = new Worker(
    name,
    async (job: Job, token?: string) => {
      if (job.name === 'sweep') return sweep();
      const data = parseJobData(job.data);
      if (!data) throw new Error(`job ${job.id} of ${name} carries no job data`);
      const id = jobIdOf(shardId, job.id ?? '');
      const outcome = await runner.run(id, data, job.attemptsStarted, (percent) => job.updateProgress(percent));
      if (outcome.status === 'held') {
        // Another run of the unit holds its lease (a stalled job run again while the first
        // still runs): this one waits rather than completes, so it runs once the unit is free.
        await job.moveToDelayed(Date.now() + Math.max(500, Math.floor(options.lockMs / 2)), token);
        throw new DelayedError();
      }
      if (outcome.status === 'skipped') return { skipped: outcome.reason };
      return outcome.result;
    },
    { connection, concurrency: 1, lockDuration: options.lockMs, stalledInterval: options.lockMs, maxStalledCount: 1, autorun: true },
  );
  worker.on('error', (err) => log.warn({ err }, 'maintenance worker error'));
  // Failures are logged here, once per failed run.
  worker.on('failed', (job, err) => log.error({ err, jobId: job ? jobIdOf(shardId, job.id ?? '') : undefined, kind: job?.name, attempts: job?.attemptsMade }, 'job failed'));
  await queue.upsertJobScheduler('sweep', { every: options.sweepEveryMs }, { name: 'sweep', data: {}, opts: { removeOnComplete: { count: 10 }, removeOnFail: { count: 10 } } });
  log.info({ sweepEveryMs: options.sweepEveryMs, lockMs: options.lockMs }, 'maintenance: BullMQ worker running');

  return {
    refused: null,
    counts: () => queue.getJobCounts('waiting', 'active', 'delayed', 'failed'),
    async close() {
      await worker.close();
      await queue.close();
      connection.disconnect();
    },
  };
}
