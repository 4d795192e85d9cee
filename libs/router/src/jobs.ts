import { randomBytes } from 'node:crypto';
import { Queue, type Job, type JobType } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import {
  BACKUPS_KEY,
  JOB_DEFAULTS,
  JOB_KINDS,
  MOVES_QUEUE,
  backupKey,
  deduplicationIdOf,
  jobIdOf,
  maintenanceQueueName,
  movePercent,
  parseJobData,
  parseJobId,
  parseMoveJobData,
  parseMoveJobProgress,
  type BackupShardView,
  type BackupView,
  type EnqueuedJob,
  type JobData,
  type JobKind,
  type JobQueues,
  type JobState,
  type JobView,
} from '@skein/protocol';

export type { EnqueuedJob, JobQueues };

const STATE_TYPES: Record<JobState, JobType[]> = {
  waiting: ['waiting', 'delayed', 'prioritized', 'waiting-children'],
  active: ['active'],
  completed: ['completed'],
  failed: ['failed'],
};

function stateOf(state: string): JobState {
  if (state === 'active' || state === 'completed' || state === 'failed') return state;
  return 'waiting';
}

/**
 * A job's state, and its fields as of that state. A job read while active whose state is
 * read after it finished would show `completed` with no result and no finish time (BullMQ
 * sets the state and the return value in one step, after the fields were read): such a
 * job is read again.
 */
export async function settled(queue: Queue, job: Job): Promise<{ job: Job; state: JobState }> {
  const state = stateOf(await job.getState());
  if ((state === 'completed' || state === 'failed') && !job.finishedOn && job.id !== undefined) {
    const fresh = await queue.getJob(job.id);
    if (fresh) return { job: fresh, state };
  }
  return { job, state };
}

async function viewOf(shard: string, queue: Queue, read: Job): Promise<JobView | null> {
  if (!parseJobData(read.data)) return null;
  const { job, state } = await settled(queue, read);
  const data = parseJobData(job.data)!;
  const progress = typeof job.progress === 'number' ? Math.max(0, Math.min(100, Math.round(job.progress))) : 0;
  return {
    id: jobIdOf(shard, job.id ?? ''),
    kind: data.kind,
    ...(data.partition !== undefined ? { partition: data.partition } : {}),
    shard,
    state,
    progress: state === 'completed' ? 100 : progress,
    attempts: job.attemptsStarted,
    createdAt: new Date(job.timestamp).toISOString(),
    ...(job.finishedOn ? { finishedAt: new Date(job.finishedOn).toISOString() } : {}),
    ...(state === 'completed' && job.returnvalue !== undefined ? { result: job.returnvalue } : {}),
    ...(job.failedReason ? { error: job.failedReason } : {}),
  };
}

/** A move's job as `GET /v1/admin/jobs` shows it: its phase and bytes as last reported. */
async function moveViewOf(queue: Queue, read: Job): Promise<JobView | null> {
  if (!parseMoveJobData(read.data)) return null;
  const { job, state } = await settled(queue, read);
  const data = parseMoveJobData(job.data)!;
  const reported = parseMoveJobProgress(job.progress);
  const move = reported ?? { state: 'copying' as const, copiedBytes: 0, copiedEntries: 0 };
  return {
    id: job.id ?? '',
    kind: 'move',
    partition: data.partition,
    state,
    progress: state === 'completed' ? 100 : movePercent(move.state),
    attempts: job.attemptsStarted,
    createdAt: new Date(job.timestamp).toISOString(),
    ...(job.finishedOn ? { finishedAt: new Date(job.finishedOn).toISOString() } : {}),
    ...(state === 'completed' && job.returnvalue !== undefined ? { result: job.returnvalue } : {}),
    ...(job.failedReason ? { error: job.failedReason } : {}),
    move: { ...move, from: data.from, to: data.to },
  };
}

const ALL_TYPES: JobType[] = ['waiting', 'delayed', 'prioritized', 'active', 'completed', 'failed'];

const newBackupId = () => `${new Date().toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;

/** Job queues in Redis (BullMQ's `skein-maintenance-<shard>`, and `skein-moves` to read), one connection for all of them. */
export function createBullJobQueues(deps: { redisUrl: string; redisOptions: RedisOptions }): JobQueues {
  const connection = new Redis(deps.redisUrl, { ...deps.redisOptions, maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: (n) => Math.min(n * 100, 2000) });
  connection.on('error', () => {});
  const queues = new Map<string, Queue>();
  const moves = new Queue(MOVES_QUEUE, { connection });
  moves.on('error', () => {});
  const queueOf = (shard: string) => {
    let q = queues.get(shard);
    if (!q) {
      q = new Queue(maintenanceQueueName(shard), { connection });
      q.on('error', () => {});
      queues.set(shard, q);
    }
    return q;
  };

  async function enqueue(jobs: readonly JobData[]): Promise<EnqueuedJob[]> {
    const out: EnqueuedJob[] = [];
    for (const data of jobs) {
      const job = await queueOf(data.shard).add(data.kind, data, { ...JOB_DEFAULTS, deduplication: { id: deduplicationIdOf(data) } });
      out.push({ id: jobIdOf(data.shard, job.id ?? ''), kind: data.kind, ...(data.partition !== undefined ? { partition: data.partition } : {}), shard: data.shard });
    }
    return out;
  }

  return {
    enqueue,
    async list(shards, { state, kind, limit }) {
      const types = state ? STATE_TYPES[state] : ALL_TYPES;
      const all: JobView[] = [];
      if (!kind || kind === 'move') {
        for (const job of await moves.getJobs(types, 0, limit - 1, false)) {
          const view = job ? await moveViewOf(moves, job) : null;
          if (view && (!state || view.state === state)) all.push(view);
        }
      }
      for (const shard of kind === 'move' ? [] : shards) {
        // Each queue's newest `limit` of each type; the sweep's own jobs are not maintenance jobs.
        const queue = queueOf(shard);
        const jobs = await queue.getJobs(types, 0, limit - 1, false);
        for (const job of jobs) {
          if (!job || !(JOB_KINDS as readonly string[]).includes(job.name)) continue;
          if (kind && job.name !== kind) continue;
          const view = await viewOf(shard, queue, job);
          if (view && (!state || view.state === state)) all.push(view);
        }
      }
      all.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
      return all.slice(0, limit);
    },
    async get(id) {
      const parsed = parseJobId(id);
      if (!parsed) {
        const job = id.length > 0 ? await moves.getJob(id) : undefined;
        return job ? moveViewOf(moves, job) : null;
      }
      const queue = queueOf(parsed.shard);
      const job = await queue.getJob(parsed.queueJobId);
      return job ? viewOf(parsed.shard, queue, job) : null;
    },
    async createBackup(shards, epoch) {
      const id = newBackupId();
      const createdAt = Date.now();
      // Named first: a shard that never reports leaves the backup incomplete, visibly.
      await connection.multi().hset(backupKey(id), 'meta', JSON.stringify({ createdAt, shards })).zadd(BACKUPS_KEY, createdAt, id).exec();
      const jobs = await enqueue(shards.map((shard) => ({ kind: 'backup' as const, shard, epoch, backupId: id })));
      return { id, jobs };
    },
    async listBackups(limit) {
      const ids = await connection.zrevrange(BACKUPS_KEY, 0, limit - 1);
      const out: BackupView[] = [];
      for (const id of ids) {
        const h = await connection.hgetall(backupKey(id));
        if (!h.meta) continue;
        const meta = JSON.parse(h.meta) as { createdAt: number; shards: string[] };
        const shards: BackupShardView[] = [];
        for (const shard of meta.shards) {
          const part = h[`shard:${shard}`];
          if (!part) continue;
          const p = JSON.parse(part) as { position: string; bytes: number };
          shards.push({ shard, position: p.position, bytes: p.bytes });
        }
        out.push({ id, createdAt: new Date(meta.createdAt).toISOString(), complete: shards.length === meta.shards.length, shards });
      }
      return out;
    },
    async close() {
      await Promise.allSettled([moves, ...queues.values()].map((q) => q.close()));
      connection.disconnect();
    },
  };
}
