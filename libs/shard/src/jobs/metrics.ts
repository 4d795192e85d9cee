import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Maintenance jobs' metrics (names `skein_shard_…`, base units, bounded labels: kind, result, state). */
export interface JobMetrics {
  /** Job runs by kind and result: completed, failed, skipped (not owned, stale epoch), delayed (lease held). */
  readonly jobs: Counter<'kind' | 'result'>;
  readonly jobSeconds: Histogram<'kind'>;
  /** Bytes removed by retention (stored records) and given back by compaction (file shrink). */
  readonly reclaimedBytes: Counter<'kind'>;
  /** 1 while this shard runs maintenance; 0 when it was refused (for example a Redis that may evict). */
  readonly enabled: Gauge;
}

export interface JobMetricsSources {
  /** Jobs of this shard's queue by state, read at scrape time; null without a queue. */
  queueDepth(): Promise<Record<string, number> | null>;
  /** Bytes on disk of each bucket environment, oldest first (the last one is the current bucket). */
  bucketSizes(): { id: string; bytes: number }[];
}

const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800];

export function createJobMetrics(registry: Registry, sources: JobMetricsSources): JobMetrics {
  const registers = [registry];
  new Gauge({
    name: 'skein_shard_job_queue_depth',
    help: 'Jobs in this shard maintenance queue by state (waiting, active, delayed, failed), read at scrape time.',
    labelNames: ['state'] as const,
    registers,
    async collect() {
      try {
        const counts = await sources.queueDepth();
        if (counts) for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      } catch {
        // Redis away: the samples keep their last values.
      }
    },
  });
  new Gauge({
    name: 'skein_shard_buckets',
    help: 'Bucket environments of the shard: the current one (open for writes) and the closed ones.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const sizes = sources.bucketSizes();
      this.set({ state: 'current' }, sizes.length > 0 ? 1 : 0);
      this.set({ state: 'closed' }, Math.max(0, sizes.length - 1));
    },
  });
  new Gauge({
    name: 'skein_shard_bucket_bytes',
    help: 'Bytes on disk of the current bucket environment and of the closed ones together (compaction shrinks the closed).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const sizes = sources.bucketSizes();
      this.set({ state: 'current' }, sizes.at(-1)?.bytes ?? 0);
      this.set({ state: 'closed' }, sizes.slice(0, -1).reduce((sum, b) => sum + b.bytes, 0));
    },
  });
  return {
    jobs: new Counter({ name: 'skein_shard_jobs_total', help: 'Maintenance job runs by kind and result (completed, failed, skipped, delayed).', labelNames: ['kind', 'result'] as const, registers }),
    jobSeconds: new Histogram({ name: 'skein_shard_job_duration_seconds', help: 'Duration of maintenance job runs by kind, seconds.', labelNames: ['kind'] as const, buckets: DURATION_BUCKETS, registers }),
    reclaimedBytes: new Counter({ name: 'skein_shard_reclaimed_bytes_total', help: 'Bytes reclaimed by kind: stored records removed by retention, file bytes given back by compaction.', labelNames: ['kind'] as const, registers }),
    enabled: new Gauge({ name: 'skein_shard_maintenance_enabled', help: '1 while this shard runs maintenance jobs; 0 when refused (see the log: for example Redis maxmemory-policy is not noeviction).', registers }),
  };
}
