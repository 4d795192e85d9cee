import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BackupManifest, EventStore } from '@skein/engine';
import { backupKey, type JobData, type JobKind, type Marked, type StoredTenant } from '@skein/protocol';
import type { TimerJobs } from '@skein/http';
import { startBullJobs, type ShardJobs } from './bullmq-jobs.ts';
import { createLocalLeases, createRedisLeases } from './lease.ts';
import { maintenanceHandlers } from './maintenance-handlers.ts';
import { createJobMetrics } from './metrics.ts';
import { createJobRunner, type JobHandler, type JobRunner } from './runner.ts';

/** The tenant hash of the Redis control store (libs/router control-keys.ts lays it out; the shard only reads it). */
const TENANT_HASH = (tenant: string) => `skein:tenant:${tenant}`;

export interface ShardMaintenanceDeps {
  shardId: string;
  engine: EventStore;
  ownership: { owned(): string[]; readonly epoch: number; check(partition: string | undefined, callerEpoch: number | undefined): Error | null; refresh(): Promise<void> };
  registry: Registry;
  logger: Logger;
  /** Redis: BullMQ queue, worker and scheduler, leases in Redis. */
  redis?: { url: string; options: RedisOptions };
  /** No Redis (a node's embedded control plane): the same jobs on these timers, tenants read from `tenants`. */
  embedded?: { timers: TimerJobs; tenants: { readTenant(tenant: string): Promise<Marked<StoredTenant>> } };
  /** More job kinds for this shard's queue (a partition move's, for example). */
  extraHandlers?: Partial<Record<JobKind, JobHandler>>;
}

export interface ShardMaintenanceOptions {
  sweepEveryMs: number;
  lockMs: number;
  backupDir: string;
  testPauseMs: number;
}

/** Runs of the timers' sweep (embedded only) as they start and end: the node's in-process job queues list them. */
export interface TimerRunObserver {
  started(id: string, data: JobData): void;
  progress(id: string, percent: number): void;
  /** `result` as a queued job's (`{ skipped }` when not run); `error` for a run that threw. */
  finished(id: string, end: { result: Record<string, unknown> } | { error: string }): void;
}

export interface ShardMaintenance {
  readonly runner: JobRunner;
  /** Null while maintenance runs; otherwise the one-line reason it does not. */
  readonly refused: string | null;
  /** Reports the timers' runs from now on to `observer` (one observer; a later call replaces it). No-op with Redis: BullMQ's sweep enqueues jobs, listed as any. */
  observeTimerRuns(observer: TimerRunObserver): void;
  close(): Promise<void>;
}

/**
 * Starts a shard's maintenance: retention, compaction and backup job code under
 * per-unit leases, run by BullMQ (Redis) or by in-process timers (embedded). Never throws
 * for a Redis that may evict: the shard runs on without maintenance, and says why.
 */
export async function startShardMaintenance(deps: ShardMaintenanceDeps, options: ShardMaintenanceOptions): Promise<ShardMaintenance> {
  const { shardId, engine, ownership } = deps;
  const log = deps.logger.child({ component: 'maintenance' });
  let jobs: ShardJobs | null = null;
  const metrics = createJobMetrics(deps.registry, { queueDepth: () => jobs?.counts() ?? Promise.resolve(null), bucketSizes: () => engine.environmentSizes() });
  const redis = deps.redis ? new Redis(deps.redis.url, { ...deps.redis.options, maxRetriesPerRequest: 2, retryStrategy: (n) => Math.min(n * 100, 2000) }) : null;
  redis?.on('error', () => {});

  async function tenantMaxAge(tenant: string): Promise<number | undefined> {
    const retention = redis
      ? await redis.hget(TENANT_HASH(tenant), 'retention').then((text) => (text ? (JSON.parse(text) as StoredTenant['retention']) : {}))
      : ((await deps.embedded!.tenants.readTenant(tenant)).value?.retention ?? {});
    return typeof retention.maxAge === 'number' ? retention.maxAge : undefined;
  }

  async function onBackup(backupId: string, manifest: BackupManifest): Promise<void> {
    if (!redis) return;
    const bytes = manifest.buckets.reduce((sum, b) => sum + b.bytes, 0);
    await redis.hset(backupKey(backupId), `shard:${shardId}`, JSON.stringify({ shard: shardId, position: manifest.highestPosition, bytes, createdAt: manifest.createdAt }));
  }

  const handlers = { ...maintenanceHandlers({ shardId, engine, backupDir: options.backupDir, tenantMaxAge, onBackup, testPauseMs: options.testPauseMs }), ...deps.extraHandlers };
  const leases = redis ? createRedisLeases({ redis, log }, { ttlMs: options.lockMs }) : createLocalLeases();
  const runner = createJobRunner({ shardId, handlers, leases, ownership, metrics, log });

  let observer: TimerRunObserver | null = null;
  /** One run of the sweep, reported to the observer; throws what the run threw. */
  async function timerRun(id: string, data: JobData): Promise<void> {
    const seen = observer;
    seen?.started(id, data);
    try {
      const outcome = await runner.run(id, data, 1, async (percent) => seen?.progress(id, percent));
      seen?.finished(id, { result: outcome.status === 'done' ? outcome.result : { skipped: outcome.status === 'held' ? 'held' : outcome.reason } });
    } catch (err) {
      seen?.finished(id, { error: err instanceof Error ? err.message : String(err) });
      throw err;
    }
  }

  if (redis) {
    jobs = await startBullJobs({ redisUrl: deps.redis!.url, redisOptions: deps.redis!.options, shardId, runner, ownership, log }, { sweepEveryMs: options.sweepEveryMs, lockMs: options.lockMs });
  } else if (deps.embedded) {
    let run = 0;
    deps.embedded.timers.every(`maintenance-${shardId}`, options.sweepEveryMs, async () => {
      run++;
      const epoch = ownership.epoch;
      for (const partition of ownership.owned()) {
        try {
          await timerRun(`${shardId}:timer-${run}-retention-${partition}`, { kind: 'retention', shard: shardId, partition, epoch });
        } catch (err) {
          log.error({ err, kind: 'retention', partition }, 'job failed; it runs again at the next sweep');
        }
      }
      await timerRun(`${shardId}:timer-${run}-compact`, { kind: 'compact', shard: shardId, epoch });
    });
    log.info({ sweepEveryMs: options.sweepEveryMs }, 'maintenance: in-process timers (no Redis)');
  }
  const refused = jobs?.refused ?? null;
  metrics.enabled.set(refused === null && (redis !== null || deps.embedded !== undefined) ? 1 : 0);
  return {
    runner,
    refused,
    observeTimerRuns(next) {
      observer = next;
    },
    async close() {
      await jobs?.close();
      redis?.disconnect();
    },
  };
}
