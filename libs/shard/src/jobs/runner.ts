import type { Logger } from 'pino';
import { isSkeinError, type JobData, type JobKind } from '@skein/protocol';
import type { JobMetrics } from './metrics.ts';
import type { HeldLease, Leases } from './lease.ts';

/** One run of one job, as its handler sees it. */
export interface JobRun {
  /** `<shard>:<queue job id>` (or the timer's name on a node without Redis). */
  readonly id: string;
  readonly data: JobData;
  /** 1 for the first run of the job, more for a retry or a stalled job run again. */
  readonly attempt: number;
  /** A child logger with the job's id, kind, shard and partition. */
  readonly log: Logger;
  readonly lease: HeldLease;
  /** Reports progress, 0–100. */
  progress(percent: number): Promise<void>;
}

/** What a handler returns: its result, and the bytes it reclaimed (counted by kind). */
export interface JobResult {
  result: Record<string, unknown>;
  reclaimedBytes: number;
}

/** The code of one job kind; the runner takes its lease first. */
export interface JobHandler {
  /** The unit its lease covers: the partition, or `shard/<id>` for work on all of a shard's buckets. */
  unit(data: JobData): string;
  run(job: JobRun): Promise<JobResult>;
}

/** Job kinds to their code: maintenance's (maintenance-handlers.ts), and any other kind registered beside them (moves). */
export type JobHandlers = Partial<Record<JobKind, JobHandler>>;

export type RunOutcome =
  | { status: 'done'; result: Record<string, unknown> }
  /** Another run holds the unit's lease: run this one later. */
  | { status: 'held' }
  /** Not to be run at all: this shard does not own the partition, or its epoch is stale. */
  | { status: 'skipped'; reason: 'not-owner' | 'stale-epoch' | 'unknown-kind' };

export interface JobRunner {
  run(id: string, data: JobData, attempt: number, progress: (percent: number) => Promise<void>): Promise<RunOutcome>;
}

export interface JobRunnerDeps {
  shardId: string;
  handlers: JobHandlers;
  leases: Leases;
  ownership: { readonly epoch: number; check(partition: string | undefined, callerEpoch: number | undefined): Error | null; refresh(): Promise<void> };
  metrics: JobMetrics;
  log: Logger;
}

/**
 * Runs a job under its unit's lease: the same code whether BullMQ's worker or a node's
 * timers call it. Outcomes, durations and reclaimed bytes are counted by kind; each run
 * logs once (its start at debug, its end at info, a failure at error where handled by the caller).
 */
export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const { handlers, leases, ownership, metrics } = deps;
  return {
    async run(id, data, attempt, progress) {
      const handler = handlers[data.kind];
      const log = deps.log.child({ jobId: id, kind: data.kind, shard: deps.shardId, ...(data.partition !== undefined ? { partition: data.partition } : {}) });
      if (!handler) {
        metrics.jobs.inc({ kind: data.kind, result: 'skipped' });
        log.warn({}, 'job skipped: no handler for its kind on this shard');
        return { status: 'skipped', reason: 'unknown-kind' };
      }
      if (data.partition !== undefined) {
        let refused = ownership.check(data.partition, undefined);
        if (refused && isSkeinError(refused, 'NOT_OWNER')) {
          // A tenant placed since this shard last read the topology takes no new epoch:
          // read it before refusing (a retention asked for right after a tenant was created
          // was skipped on the shards that had not seen its placement yet).
          await ownership.refresh();
          refused = ownership.check(data.partition, undefined);
        }
        if (refused && isSkeinError(refused, 'NOT_OWNER')) {
          metrics.jobs.inc({ kind: data.kind, result: 'skipped' });
          log.info({ epoch: ownership.epoch }, 'job skipped: the partition is not this shard\'s');
          return { status: 'skipped', reason: 'not-owner' };
        }
        // Not loaded yet (UNAVAILABLE): a retry comes back once the topology is read.
        if (refused) throw refused;
      }
      const epoch = Math.max(ownership.epoch, data.epoch);
      const unit = handler.unit(data);
      const taken = await leases.acquire(unit, epoch, { shard: deps.shardId, id });
      if (!taken.ok) {
        metrics.jobs.inc({ kind: data.kind, result: taken.reason === 'held' ? 'delayed' : 'skipped' });
        if (taken.reason === 'held') {
          log.info({ unit }, 'job delayed: another run holds the lease of its unit');
          return { status: 'held' };
        }
        log.warn({ unit, epoch, floor: taken.floor }, 'job skipped: a run at a newer ownership epoch ran on its unit');
        return { status: 'skipped', reason: 'stale-epoch' };
      }
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      log.debug({ unit, epoch, attempt }, 'job started');
      try {
        const { result, reclaimedBytes } = await handler.run({ id, data, attempt, log, lease: taken.lease, progress });
        await progress(100);
        metrics.jobs.inc({ kind: data.kind, result: 'completed' });
        metrics.jobSeconds.observe({ kind: data.kind }, seconds());
        if (reclaimedBytes > 0) metrics.reclaimedBytes.inc({ kind: data.kind }, reclaimedBytes);
        log.info({ unit, epoch, attempt, durationMs: Math.round(seconds() * 1000), ...result }, 'job completed');
        return { status: 'done', result };
      } catch (err) {
        metrics.jobs.inc({ kind: data.kind, result: 'failed' });
        metrics.jobSeconds.observe({ kind: data.kind }, seconds());
        throw err;
      } finally {
        await taken.lease.release().catch((err: unknown) => log.warn({ err, unit }, 'lease not released; it expires'));
      }
    },
  };
}
