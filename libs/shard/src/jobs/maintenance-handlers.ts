import { maintenanceOf, type BackupManifest, type EventStore } from '@skein/engine';
import { tenantOfPartition, type JobData } from '@skein/protocol';
import type { JobHandler, JobHandlers } from './runner.ts';

export interface MaintenanceHandlerDeps {
  shardId: string;
  engine: EventStore;
  /** Where backups of this shard go (`<dir>/<backup id>`, closed buckets shared in `<dir>/objects`). */
  backupDir: string;
  /** The tenant's `retention.maxAge` in seconds from its control-store record; undefined: none. */
  tenantMaxAge(tenant: string): Promise<number | undefined>;
  /** Records a shard's finished part of a backup (where `GET /v1/admin/backups` finds it). */
  onBackup(backupId: string, manifest: BackupManifest): Promise<void>;
  /** Tests only: the first run of a compaction pauses this long after its first bucket (a window to kill the process in). Default 0. */
  testPauseMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The maintenance kinds. `retention` runs per partition. `compact` and `backup` run per
 * shard: buckets are the shard's environments and each holds all of its partitions, so
 * their lease unit is `shard/<id>` and a job carries no partition.
 */
export function maintenanceHandlers(deps: MaintenanceHandlerDeps): JobHandlers {
  const maintenance = maintenanceOf(deps.engine);
  const shardUnit = () => `shard/${deps.shardId}`;
  const partitionUnit = (data: JobData) => {
    if (data.partition === undefined) throw new Error(`a ${data.kind} job needs a partition`);
    return data.partition;
  };

  const retention: JobHandler = {
    unit: partitionUnit,
    async run(job) {
      const partition = partitionUnit(job.data);
      const maxAge = await deps.tenantMaxAge(tenantOfPartition(partition));
      const r = await maintenance.retain(partition, maxAge !== undefined ? { maxAgeMs: maxAge * 1000 } : {});
      return { result: { events: r.events, bytes: r.bytes, logEntries: r.logEntries, idempotencyKeys: r.idempotencyKeys, bucketsDropped: r.bucketsDropped }, reclaimedBytes: r.bytes };
    },
  };

  const compact: JobHandler = {
    unit: shardUnit,
    async run(job) {
      const closed = maintenance.closedBuckets();
      const buckets: { bucket: string; bytesBefore: number; bytesAfter: number; copied: boolean }[] = [];
      for (const [i, id] of closed.entries()) {
        if (!job.lease.held) throw new Error('the lease was lost; the compaction stops (a later run goes on)');
        const r = await maintenance.compact(id);
        buckets.push({ bucket: r.bucket, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, copied: r.copied });
        await job.progress(Math.floor(((i + 1) * 100) / (closed.length + 1)));
        if (i === 0 && job.attempt === 1 && (deps.testPauseMs ?? 0) > 0) await sleep(deps.testPauseMs!);
      }
      const reclaimed = buckets.reduce((sum, b) => sum + Math.max(0, b.bytesBefore - b.bytesAfter), 0);
      return { result: { buckets }, reclaimedBytes: reclaimed };
    },
  };

  const backup: JobHandler = {
    unit: shardUnit,
    async run(job) {
      const id = job.data.backupId;
      if (id === undefined) throw new Error('a backup job needs a backupId');
      const manifest = await maintenance.backup(deps.backupDir, { id });
      await deps.onBackup(id, manifest);
      const bytes = manifest.buckets.reduce((sum, b) => sum + b.bytes, 0);
      return { result: { backup: id, position: manifest.highestPosition, bytes, buckets: manifest.buckets.length }, reclaimedBytes: 0 };
    },
  };

  return { retention, compact, backup };
}
