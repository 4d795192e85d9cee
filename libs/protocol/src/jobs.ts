// Maintenance jobs (DESIGN.md, "Maintenance"; API.md, "Maintenance, jobs and backups"):
// what the router that enqueues and lists them and the shard that runs them agree on.
// The queue is BullMQ's in a cluster (one per shard, run by the process hosting the
// shard), in-process timers on a node without Redis; neither is named here.

/** Kinds of job. `move` is a partition move's: it runs on the cluster's moves queue, not a shard's (see `MOVES_QUEUE`). */
export const JOB_KINDS = ['retention', 'compact', 'backup', 'move'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** Kinds an operator may run now with `POST /v1/admin/maintenance`. */
export const MAINTENANCE_KINDS = ['retention', 'compact'] as const;
export type MaintenanceKind = (typeof MAINTENANCE_KINDS)[number];

/** States as the API reports them (BullMQ's `delayed` and `prioritized` report as `waiting`). */
export const JOB_STATES = ['waiting', 'active', 'completed', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

/**
 * What a job carries. `partition`: retention's unit; compaction and backup act on every
 * bucket of the shard, which holds all its partitions (`partition` absent). `epoch`: the
 * topology epoch the job was made at (a lease refuses a job older than the newest epoch
 * that ran on its unit).
 */
export interface JobData {
  kind: JobKind;
  shard: string;
  partition?: string;
  epoch: number;
  /** `backup`: the cluster-wide backup id, shared by the jobs of every shard. */
  backupId?: string;
}

/** A job as `GET /v1/admin/jobs` shows it. */
export interface JobView {
  /** `<shard>:<queue job id>`: names the shard queue it is in; a move's job is the move's id (no `:`). */
  id: string;
  kind: JobKind;
  partition?: string;
  shard?: string;
  state: JobState;
  /** 0–100. */
  progress: number;
  attempts: number;
  createdAt: string;
  finishedAt?: string;
  result?: unknown;
  error?: string;
  /** Kind `move`: where the move stands, as its job last reported it. */
  move?: MoveJobProgress & { from: string; to: string };
}

/** One shard's part of a backup. */
export interface BackupShardView {
  shard: string;
  /** Every event at or below this global position (retention aside) is in the backup. */
  position: string;
  bytes: number;
}

export interface BackupView {
  id: string;
  createdAt: string;
  /** True once every shard named at creation reported its part. */
  complete: boolean;
  shards: BackupShardView[];
}

/** A job as `POST /v1/admin/maintenance` and `POST /v1/admin/backups` answer it. */
export interface EnqueuedJob {
  id: string;
  kind: JobKind;
  partition?: string;
  shard: string;
}

/**
 * The router's side of maintenance jobs: it enqueues them on the owning shards' queues
 * and reads them back. Implemented on BullMQ in a cluster (the router's jobs.ts: the
 * shard hosting a queue runs its jobs; listing also reads the moves queue), and in
 * process on a node without Redis (the shard library's local-job-queues.ts).
 */
export interface JobQueues {
  /** Adds each job to its shard's queue; a job already waiting or running for the same unit is returned instead of a new one. */
  enqueue(jobs: readonly JobData[]): Promise<EnqueuedJob[]>;
  /** Jobs of the shards' queues (and of the moves queue, where there is one), newest first. */
  list(shards: readonly string[], filter: { state?: JobState; kind?: JobKind; limit: number }): Promise<JobView[]>;
  /** Null when no such job (or its shard queue) exists; an id without `:` is a move's. */
  get(id: string): Promise<JobView | null>;
  /** Starts a backup of every shard in `shards`: one `backup` job per shard queue, one backup id. */
  createBackup(shards: readonly string[], epoch: number): Promise<{ id: string; jobs: EnqueuedJob[] }>;
  /** Backups, newest first. */
  listBackups(limit: number): Promise<BackupView[]>;
  close(): Promise<void>;
}

/** The BullMQ queue of shard `shard`'s jobs. */
export const maintenanceQueueName = (shard: string): string => `skein-maintenance-${shard}`;

/** `<shard>:<queue job id>`. Shard ids never hold `:`. */
export const jobIdOf = (shard: string, queueJobId: string): string => `${shard}:${queueJobId}`;

/** The shard and the queue's job id of a job id; null for one not of that form. */
export function parseJobId(id: string): { shard: string; queueJobId: string } | null {
  const at = id.indexOf(':');
  if (at <= 0 || at === id.length - 1) return null;
  return { shard: id.slice(0, at), queueJobId: id.slice(at + 1) };
}

/** Redis keys of backups: a sorted set of ids by creation time, a hash per backup (`meta`, then one field per shard reporting). */
export const BACKUPS_KEY = 'skein:backups';
export const backupKey = (id: string): string => `skein:backup:${id}`;

/** Backup ids (also directory names): sortable by time, no path separators. */
export const BACKUP_ID_RE = /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$/;

/**
 * The deduplication id of a job: while one job of a kind waits or runs for a unit (a
 * partition, or a shard's buckets), adding another returns that one.
 */
export function deduplicationIdOf(data: JobData): string {
  if (data.kind === 'backup') return `backup:${data.backupId ?? ''}:${data.shard}`;
  return `${data.kind}:${data.partition ?? `shard/${data.shard}`}`;
}

/** Job options every enqueuer uses (plain values, the queue's own option names): retries with backoff, bounded history. */
export const JOB_DEFAULTS = Object.freeze({
  attempts: 3,
  backoff: { type: 'exponential', delay: 5000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 1000 },
});

/**
 * Partition moves run on one queue for the whole cluster, worked by every router: a move
 * spans two shards and must outlive either (a shard's own queue stops with its process).
 * A move's job id is the move id; its record (`skein:move:<id>`) stays the source of
 * truth for its phase, which the move's steps check atomically in Redis.
 */
export const MOVES_QUEUE = 'skein-moves';

/** A move's phases (API.md, "Membership and partition moves"). */
export const MOVE_STATES = ['copying', 'tailing', 'fencing', 'done', 'rolled_back'] as const;
export type MoveState = (typeof MOVE_STATES)[number];

/** What a move's job carries; which phase it is in is read from the move record. */
export interface MoveJobData {
  kind: 'move';
  partition: string;
  from: string;
  to: string;
  /** The topology epoch the move began at. */
  epoch: number;
}

/** What a move's job reports after each step (`job.updateProgress`). */
export interface MoveJobProgress {
  state: MoveState;
  copiedBytes: number;
  copiedEntries: number;
}

/**
 * A move job's options: JOB_DEFAULTS' bounded history, more attempts sooner. A run
 * retries its own steps and rolls the move back when it stalls; what BullMQ retries is
 * a run that failed as a whole (Redis away, or the cleanup of a shard that is down):
 * 10 attempts from 1 s doubling span about 8.5 minutes.
 */
export const MOVE_JOB_DEFAULTS = Object.freeze({
  ...JOB_DEFAULTS,
  attempts: 10,
  backoff: { type: 'exponential', delay: 1000 },
});

/** Progress of a move's job by phase, 0–100 (a copy's size is not known ahead). */
export function movePercent(state: MoveState): number {
  return { copying: 0, tailing: 50, fencing: 75, done: 100, rolled_back: 100 }[state];
}

const isMoveState = (v: unknown): v is MoveState => typeof v === 'string' && (MOVE_STATES as readonly string[]).includes(v);

/** The move job data in `value`, or null (checked at the queue's edge). */
export function parseMoveJobData(value: unknown): MoveJobData | null {
  if (value === null || typeof value !== 'object') return null;
  const v = value as Record<string, unknown>;
  if (v.kind !== 'move' || typeof v.partition !== 'string' || typeof v.from !== 'string' || typeof v.to !== 'string' || typeof v.epoch !== 'number') return null;
  return { kind: 'move', partition: v.partition, from: v.from, to: v.to, epoch: v.epoch };
}

/** A move job's reported progress in `value`, or null before its first step. */
export function parseMoveJobProgress(value: unknown): MoveJobProgress | null {
  if (value === null || typeof value !== 'object') return null;
  const v = value as Record<string, unknown>;
  if (!isMoveState(v.state) || typeof v.copiedBytes !== 'number' || typeof v.copiedEntries !== 'number') return null;
  return { state: v.state, copiedBytes: v.copiedBytes, copiedEntries: v.copiedEntries };
}

/** The job data in `value`, or null when it is not a job's (checked at the queue's edge: Redis holds what anyone wrote). */
export function parseJobData(value: unknown): JobData | null {
  if (value === null || typeof value !== 'object') return null;
  const v = value as Record<string, unknown>;
  if (typeof v.kind !== 'string' || !(JOB_KINDS as readonly string[]).includes(v.kind)) return null;
  if (typeof v.shard !== 'string' || typeof v.epoch !== 'number') return null;
  if (v.partition !== undefined && typeof v.partition !== 'string') return null;
  if (v.backupId !== undefined && typeof v.backupId !== 'string') return null;
  return {
    kind: v.kind as JobKind,
    shard: v.shard,
    epoch: v.epoch,
    ...(typeof v.partition === 'string' ? { partition: v.partition } : {}),
    ...(typeof v.backupId === 'string' ? { backupId: v.backupId } : {}),
  };
}
