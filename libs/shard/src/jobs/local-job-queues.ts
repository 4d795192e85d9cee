import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { listBackups as listBackupsOnDisk, type BackupManifest } from '@skein/engine';
import { JOB_DEFAULTS, deduplicationIdOf, jobIdOf, parseJobId, type BackupShardView, type BackupView, type EnqueuedJob, type JobData, type JobQueues, type JobView } from '@skein/protocol';
import type { JobRunner } from './runner.ts';
import type { ShardMaintenance } from './shard-maintenance.ts';

/** A shard of this process whose jobs the queues run: its job runner (`Shard.maintenance.runner`) and backup directory. */
export interface LocalJobShard {
  id: string;
  runner: JobRunner;
  /** The shard's `SKEIN_SHARD_BACKUP_DIR`: its backups' manifests are listed from here. */
  backupDir: string;
  /** The shard's maintenance (`Shard.maintenance`): its timers' runs are listed beside the queued jobs. Default: not listed. */
  timerRuns?: Pick<ShardMaintenance, 'observeTimerRuns'>;
}

export interface LocalJobQueuesDeps {
  shards: readonly LocalJobShard[];
  log: Logger;
  /** Milliseconds since the epoch, for the jobs' and backups' timestamps. Default `Date.now`. */
  clock?: () => number;
  /** Backups recorded in a directory, oldest first. Default the engine's `listBackups`. */
  listBackups?: (dir: string) => BackupManifest[];
}

export interface LocalJobQueuesOptions {
  /** Finished (completed or failed) jobs kept for `GET /v1/admin/jobs`, across shards; older ones are forgotten. Waiting and running jobs are always kept (at most one per unit). */
  historyLimit: number;
  /** Backups started by this process kept in memory (those on disk are listed from their manifests). */
  backupLimit: number;
  /** Runs of a job that fails, as BullMQ's `attempts`. */
  attempts: number;
  /** Wait before the second run of a failed job, doubling for each later one (BullMQ's exponential backoff). */
  backoffMs: number;
  /** Wait before a job whose unit is leased by another run (a timer's sweep) tries again. */
  heldRetryMs: number;
}

export const defaultLocalJobQueuesOptions: Readonly<LocalJobQueuesOptions> = Object.freeze({
  historyLimit: 1000,
  backupLimit: 1000,
  attempts: JOB_DEFAULTS.attempts,
  backoffMs: JOB_DEFAULTS.backoff.delay,
  heldRetryMs: 500,
});

interface Entry {
  readonly view: JobView;
  readonly data: JobData;
  readonly dedupId: string;
}

interface StartedBackup {
  createdAt: number;
  shards: readonly string[];
  /** Parts reported by this process's backup jobs, by shard. */
  parts: Map<string, BackupShardView>;
}

/** Backup ids as the BullMQ path makes them (BACKUP_ID_RE): sortable by time. */
const backupIdAt = (ms: number) => `${new Date(ms).toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Maintenance jobs in this process, for a node without Redis: the admin job endpoints
 * over the same job runners BullMQ's workers call in a cluster. Each shard runs its jobs
 * one at a time in the order enqueued; a job for a unit (deduplicationIdOf) that is
 * already waiting or running is answered instead of a new one. Jobs and the backups
 * started here live in memory only (bounded; lost on restart); backups of earlier runs
 * are listed from the manifests in the shards' backup directories.
 */
export function createLocalJobQueues(deps: LocalJobQueuesDeps, options: Partial<LocalJobQueuesOptions> = {}): JobQueues {
  const opts = { ...defaultLocalJobQueuesOptions, ...options };
  const clock = deps.clock ?? Date.now;
  const readBackups = deps.listBackups ?? listBackupsOnDisk;
  const log = deps.log.child({ component: 'local-jobs' });
  const shards = new Map(deps.shards.map((s) => [s.id, s]));
  // Every job still known, in the order enqueued (a Map keeps insertion order).
  const history = new Map<string, Entry>();
  // Ids of finished jobs, oldest first: the ones forgotten past historyLimit.
  const finished: string[] = [];
  const pending = new Map<string, Entry>();
  const tails = new Map<string, Promise<void>>();
  const backups = new Map<string, StartedBackup>();
  const boot = randomBytes(3).toString('hex');
  let seq = 0;
  let closed = false;
  let wake: () => void = () => {};
  const closing = new Promise<void>((r) => (wake = r));
  const pause = (ms: number) => Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref()), closing]);

  function finish(entry: Entry, state: 'completed' | 'failed', outcome: { result?: unknown; error?: string }): void {
    const view = entry.view;
    view.state = state;
    view.finishedAt = new Date(clock()).toISOString();
    if (state === 'completed') {
      view.progress = 100;
      view.result = outcome.result;
      delete view.error;
    } else if (outcome.error !== undefined) {
      view.error = outcome.error;
    }
    if (pending.get(entry.dedupId) === entry) pending.delete(entry.dedupId);
    finished.push(entry.view.id);
    while (finished.length > opts.historyLimit) history.delete(finished.shift()!);
  }

  async function execute(shard: LocalJobShard, entry: Entry): Promise<void> {
    for (let attempt = 1; !closed; ) {
      entry.view.state = 'active';
      entry.view.attempts = attempt;
      try {
        const outcome = await shard.runner.run(entry.view.id, entry.data, attempt, async (percent) => {
          entry.view.progress = Math.max(0, Math.min(100, Math.round(percent)));
        });
        if (outcome.status === 'held') {
          // A timer's sweep holds the unit: this job runs after it, as BullMQ delays it.
          entry.view.state = 'waiting';
          await pause(opts.heldRetryMs);
          continue;
        }
        const result = outcome.status === 'skipped' ? { skipped: outcome.reason } : outcome.result;
        if (entry.data.kind === 'backup' && outcome.status === 'done') recordBackupPart(shard.id, entry.data.backupId, result);
        finish(entry, 'completed', { result });
        return;
      } catch (err) {
        log.error({ err, jobId: entry.view.id, kind: entry.data.kind, attempts: attempt }, 'job failed');
        if (attempt >= opts.attempts) {
          finish(entry, 'failed', { error: errorText(err) });
          return;
        }
        entry.view.state = 'waiting';
        entry.view.error = errorText(err);
        await pause(opts.backoffMs * 2 ** (attempt - 1));
        attempt++;
      }
    }
  }

  function recordBackupPart(shard: string, backupId: string | undefined, result: Record<string, unknown>): void {
    const started = backupId === undefined ? undefined : backups.get(backupId);
    if (!started || typeof result.position !== 'string' || typeof result.bytes !== 'number') return;
    started.parts.set(shard, { shard, position: result.position, bytes: result.bytes });
  }

  async function enqueue(jobs: readonly JobData[]): Promise<EnqueuedJob[]> {
    const out: EnqueuedJob[] = [];
    for (const data of jobs) {
      const dedupId = deduplicationIdOf(data);
      let entry = pending.get(dedupId);
      if (!entry) {
        const id = jobIdOf(data.shard, `${boot}-${++seq}`);
        const view: JobView = { id, kind: data.kind, ...(data.partition !== undefined ? { partition: data.partition } : {}), shard: data.shard, state: 'waiting', progress: 0, attempts: 0, createdAt: new Date(clock()).toISOString() };
        entry = { view, data, dedupId };
        history.set(id, entry);
        const shard = shards.get(data.shard);
        if (!shard || closed) {
          finish(entry, 'failed', { error: closed ? 'the node is stopping' : `shard ${data.shard} is not in this process` });
        } else {
          pending.set(dedupId, entry);
          const queued = entry;
          tails.set(shard.id, (tails.get(shard.id) ?? Promise.resolve()).then(() => execute(shard, queued)));
        }
      }
      out.push({ id: entry.view.id, kind: data.kind, ...(data.partition !== undefined ? { partition: data.partition } : {}), shard: data.shard });
    }
    return out;
  }

  // A timer's run is listed as it goes but queues nothing: a job enqueued for its unit
  // meanwhile waits for its lease (execute), as one enqueued behind BullMQ's sweep would.
  for (const shard of shards.values()) {
    shard.timerRuns?.observeTimerRuns({
      started(id, data) {
        const view: JobView = { id, kind: data.kind, ...(data.partition !== undefined ? { partition: data.partition } : {}), shard: data.shard, state: 'active', progress: 0, attempts: 1, createdAt: new Date(clock()).toISOString() };
        history.set(id, { view, data, dedupId: deduplicationIdOf(data) });
      },
      progress(id, percent) {
        const entry = history.get(id);
        if (entry) entry.view.progress = Math.max(0, Math.min(100, Math.round(percent)));
      },
      finished(id, end) {
        const entry = history.get(id);
        if (!entry || entry.view.finishedAt !== undefined) return;
        if ('result' in end) finish(entry, 'completed', { result: end.result });
        else finish(entry, 'failed', { error: end.error });
      },
    });
  }

  /** Backups in the shards' directories (earlier runs' included), by id; a directory shared by shards names no shard. */
  function backupsOnDisk(): Map<string, { createdAt: number; parts: BackupShardView[] }> {
    const byDir = new Map<string, string[]>();
    for (const s of shards.values()) byDir.set(s.backupDir, [...(byDir.get(s.backupDir) ?? []), s.id]);
    const out = new Map<string, { createdAt: number; parts: BackupShardView[] }>();
    for (const [dir, owners] of byDir) {
      if (dir === '') continue;
      let manifests: BackupManifest[];
      try {
        manifests = readBackups(dir);
      } catch (err) {
        log.warn({ err, dir }, 'backup list unreadable; its backups are not listed');
        continue;
      }
      for (const m of manifests) {
        const seen = out.get(m.id) ?? { createdAt: m.createdAt, parts: [] };
        seen.createdAt = Math.min(seen.createdAt, m.createdAt);
        if (owners.length === 1) seen.parts.push({ shard: owners[0]!, position: m.highestPosition, bytes: m.buckets.reduce((sum, b) => sum + b.bytes, 0) });
        out.set(m.id, seen);
      }
    }
    return out;
  }

  return {
    enqueue,
    async list(shardIds, { state, kind, limit }) {
      const wanted = new Set(shardIds);
      const out: JobView[] = [];
      // Newest first: the history is in the order enqueued.
      for (const { view } of [...history.values()].reverse()) {
        if (out.length >= limit) break;
        if (view.shard === undefined || !wanted.has(view.shard)) continue;
        if ((state && view.state !== state) || (kind && view.kind !== kind)) continue;
        out.push({ ...view });
      }
      return out;
    },
    async get(id) {
      if (!parseJobId(id)) return null;
      const entry = history.get(id);
      return entry ? { ...entry.view } : null;
    },
    async createBackup(shardIds, epoch) {
      const createdAt = clock();
      const id = backupIdAt(createdAt);
      backups.set(id, { createdAt, shards: [...shardIds], parts: new Map() });
      for (const old of backups.keys()) {
        if (backups.size <= opts.backupLimit) break;
        backups.delete(old);
      }
      const jobs = await enqueue(shardIds.map((shard) => ({ kind: 'backup' as const, shard, epoch, backupId: id })));
      return { id, jobs };
    },
    async listBackups(limit) {
      const disk = backupsOnDisk();
      const ids = new Set([...backups.keys(), ...disk.keys()]);
      const out: BackupView[] = [];
      for (const id of ids) {
        const started = backups.get(id);
        const found = disk.get(id);
        const parts = new Map((found?.parts ?? []).map((p) => [p.shard, p]));
        for (const [shard, p] of started?.parts ?? []) parts.set(shard, p);
        // Named at creation here; for an earlier run's backup, the shards of this process.
        const named = started?.shards ?? [...shards.keys()];
        const listed = named.flatMap((s) => parts.get(s) ?? []);
        out.push({ id, createdAt: new Date(started?.createdAt ?? found!.createdAt).toISOString(), complete: listed.length === named.length, shards: listed });
      }
      out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : b.id.localeCompare(a.id)));
      return out.slice(0, limit);
    },
    async close() {
      closed = true;
      wake();
      await Promise.allSettled([...tails.values()]);
    },
  };
}
