import { FastHistogram } from '@skein/http';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EngineObserver } from '@skein/engine';
import type { SequencerObserver } from '@skein/sequencer';

/** The shard's metrics (names `skein_<component>_<what>_<unit>`; labels bounded). */
export interface ShardMetrics {
  readonly appendSeconds: FastHistogram<'result'>;
  readonly eventsAppended: Counter;
  readonly bytesAppended: Counter;
  readonly requestSeconds: Histogram<'route' | 'code'>;
  readonly subscribers: Gauge;
  readonly subscribersDropped: Counter;
  /** Append requests refused with 503 before their body was read: SKEIN_SHARD_MAX_PENDING_BYTES was held. */
  readonly appendsOverCapacity: Counter;
  /** Wire to the engine's `observer`. */
  readonly engineObserver: EngineObserver;
  /** Wire to the Redis sequencer's `observe`. */
  readonly sequencerObserver: SequencerObserver;
}

export interface MetricsSources {
  safePoint(): bigint;
  /** The sequencer counter, read from Redis. */
  sequencerPosition(): Promise<bigint>;
  environmentBytes(): number;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Registers the shard's metrics on `registry` (one per process, created by main).
 * Gauges read their sources at scrape time.
 */
export function createShardMetrics(registry: Registry, sources: MetricsSources): ShardMetrics {
  const registers = [registry];
  // Observed per append or per batch: FastHistogram (the same scrape as prom-client's
  // Histogram at a fraction of its cost per observation).
  const appendSeconds = new FastHistogram({
    name: 'skein_shard_append_duration_seconds',
    help: 'Time from receiving an append to answering it (durable), seconds.',
    labelNames: ['result'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const batchEvents = new FastHistogram({
    name: 'skein_shard_batch_size_events',
    help: 'Events per group-commit batch (one sequencer allocation, one transaction).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
    registers,
  });
  const batchOps = new FastHistogram({
    name: 'skein_shard_batch_size_operations',
    help: 'Operations (appends, deletes, metadata and snapshot writes) per group-commit batch.',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 4096],
    registers,
  });
  const batchSeconds = new FastHistogram({
    name: 'skein_shard_batch_duration_seconds',
    help: 'Time of one group-commit batch from decision to durable, seconds.',
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const eventsAppended = new Counter({ name: 'skein_shard_events_appended_total', help: 'Events written (duplicates not counted).', registers });
  const bytesAppended = new Counter({
    name: 'skein_shard_appended_bytes_total',
    help: 'Request bytes of the appends written (duplicates and failures not counted).',
    registers,
  });
  const sequencerSeconds = new FastHistogram({
    name: 'skein_sequencer_round_trip_seconds',
    help: 'Redis round trips of the sequencer (allocate, current, re-seed), seconds.',
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const storageFaulted = new Gauge({
    name: 'skein_shard_storage_faulted',
    help: '1 while the shard storage is faulted (full, read-only, immutable or failing disk): writes are refused and /readyz answers 503.',
    registers,
  });
  const storageFaults = new Counter({
    name: 'skein_shard_storage_faults_total',
    help: 'Storage faults that began, by errno or LMDB code.',
    labelNames: ['code'] as const,
    registers,
  });
  const storageRefused = new Counter({
    name: 'skein_shard_storage_refused_operations_total',
    help: 'Write operations (appends, deletes, metadata and snapshot writes) refused with 503 because of a storage fault, by code.',
    labelNames: ['code'] as const,
    registers,
  });
  const sequencerErrors = new Counter({ name: 'skein_sequencer_errors_total', help: 'Sequencer round trips Redis did not answer.', registers });
  const undecodableRecords = new Counter({
    name: 'skein_shard_undecodable_records_total',
    help: 'Stored event records that could not be decoded, met by reads (each skipped and logged with partition, stream and version; counted per read).',
    registers,
  });
  new Gauge({
    name: 'skein_shard_safe_point',
    help: 'The shard safe point: it will never commit an event at or below this global position that it has not committed already.',
    registers,
    collect() {
      this.set(Number(sources.safePoint()));
    },
  });
  new Gauge({
    name: 'skein_shard_safe_point_lag_positions',
    help: 'The sequencer counter minus this shard safe point, read at scrape time: positions allocated that the shard cannot vouch for yet. The stable watermark lags the counter by the largest of these.',
    registers,
    async collect() {
      // Safe point first: it never passes the counter, so the difference is never negative.
      const safePoint = sources.safePoint();
      try {
        this.set(Number((await sources.sequencerPosition()) - safePoint));
      } catch {
        // Redis away: the sample keeps its last value; skein_sequencer_errors_total counts the failure.
      }
    },
  });
  new Gauge({
    name: 'skein_shard_lmdb_environment_bytes',
    help: 'Bytes on disk of the shard LMDB environments.',
    registers,
    collect() {
      this.set(sources.environmentBytes());
    },
  });
  const requestSeconds = new Histogram({
    name: 'skein_shard_http_request_duration_seconds',
    help: 'Internal API requests, seconds.',
    labelNames: ['route', 'code'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const subscribers = new Gauge({ name: 'skein_shard_subscribers', help: 'Open live subscriptions.', registers });
  const subscribersDropped = new Counter({
    name: 'skein_shard_subscribers_dropped_total',
    help: 'Subscriptions disconnected because the consumer did not keep up.',
    registers,
  });

  const appendsOverCapacity = new Counter({
    name: 'skein_shard_append_requests_over_capacity_total',
    help: 'Append requests refused with 503 before their body was read: the shard held its bound of pending append bytes.',
    registers,
  });

  return {
    appendsOverCapacity,
    appendSeconds,
    eventsAppended,
    bytesAppended,
    requestSeconds,
    subscribers,
    subscribersDropped,
    engineObserver: {
      batch({ ops, events, seconds }) {
        batchOps.observe(ops);
        if (events > 0) batchEvents.observe(events);
        batchSeconds.observe(seconds);
      },
      undecodableRecord() {
        undecodableRecords.inc();
      },
      storageFault(fault) {
        storageFaulted.set(fault ? 1 : 0);
        if (fault) storageFaults.inc({ code: fault.code });
      },
      storageRefused({ code, ops }) {
        storageRefused.inc({ code }, ops);
      },
    },
    sequencerObserver: {
      roundTrip(seconds, ok) {
        sequencerSeconds.observe(seconds);
        if (!ok) sequencerErrors.inc();
      },
    },
  };
}
