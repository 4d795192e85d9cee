import { readSettings, type RedisSettings } from '@skein/http';
import { APPEND_BATCH_LIMITS } from '@skein/protocol';
import { isAbsolute, join, resolve } from 'node:path';

export { ConfigError } from '@skein/http';

/** The shard's configuration, validated once at start and frozen. */
export interface ShardConfig {
  /** `SKEIN_SHARD_ID` (required): this shard's name in the topology and its sequencer member id. */
  readonly shardId: string;
  /** `SKEIN_SHARD_HOST`, default `127.0.0.1`. */
  readonly host: string;
  /** `SKEIN_SHARD_PORT`, default 0 (any free port; the bound URL is logged). */
  readonly port: number;
  /** `SKEIN_SHARD_DATA_DIR` (required): LMDB environments and the sequencer state file live here. */
  readonly dataDir: string;
  /**
   * `SKEIN_REDIS_URL`: the control plane (sequencer counter, topology). Required for a
   * shard alone; null for a node's shard without it, which runs on the node's embedded
   * control store (`loadConfig(env, { redisOptional: true })`, `createShard`'s `control`).
   */
  readonly redisUrl: string | null;
  /** `SKEIN_REDIS_TLS_CA_FILE`, `…_CERT_FILE`, `…_KEY_FILE` (rediss:// only): spread into every Redis client. */
  readonly redisOptions: RedisSettings['options'];
  /** `SKEIN_CLUSTER_SECRET` (required, at least 32 printable characters): every internal API request must carry it (probes excepted). */
  readonly clusterSecret: string;
  /**
   * `SKEIN_SHARD_MAX_BODY_BYTES`, default 32 MiB: one internal request at most (the router
   * coalesces appends). At least 16 MiB, the largest batch a router sends (protocol's APPEND_BATCH_LIMITS).
   */
  readonly maxBodyBytes: number;
  /**
   * `SKEIN_SHARD_MAX_PENDING_BYTES`, default 64 MiB (at least SKEIN_SHARD_MAX_BODY_BYTES):
   * bytes of append requests received and not yet answered (being read, queued in the
   * engine, committing). A request that would pass it gets 503 UNAVAILABLE before its
   * body is read, and nothing is written.
   */
  readonly maxPendingBytes: number;
  /** `SKEIN_SHARD_SAFE_POINT_INTERVAL_MS`, default 50: how often the safe point is refreshed when nobody asks. */
  readonly safePointIntervalMs: number;
  /** `SKEIN_SHARD_SAFE_POINT_MAX_WAIT_MS`, default 2000: the longest a `safe-point?atLeast=` request waits. */
  readonly safePointMaxWaitMs: number;
  /** `SKEIN_SHARD_HEARTBEAT_MS`, default 15000: SSE heartbeat comment interval. */
  readonly heartbeatMs: number;
  /** `SKEIN_SHARD_SLOW_SUBSCRIBER_MS`, default 30000: a subscriber whose socket stays full this long is disconnected. */
  readonly slowSubscriberMs: number;
  /** `SKEIN_SHARD_DRAIN_TIMEOUT_MS`, default 10000: how long SIGTERM waits for in-flight requests. */
  readonly drainTimeoutMs: number;
  /** `SKEIN_SHARD_MAP_SIZE_BYTES`, default: the engine's (1 GiB, grown on demand). */
  readonly mapSizeBytes: number | undefined;
  /**
   * `SKEIN_SHARD_STORAGE_RESERVE_BYTES`, default: the engine's (64 MiB): the most disk
   * space kept allocated past the data so a full disk refuses writes cleanly (DESIGN.md,
   * "Storage faults").
   */
  readonly storageReserveBytes: number | undefined;
  /** `SKEIN_SHARD_STORAGE_PROBE_INTERVAL_MS`, default 1000: how often faulted storage is probed for recovery. */
  readonly storageProbeIntervalMs: number;
  /**
   * `SKEIN_SHARD_BATCH_WAIT_MS`, default 2 (0 turns it off): after a group commit of two or
   * more writes is answered, how long the next one may wait for that many writes to come
   * back before it commits (the engine's `batchWaitMs`).
   */
  readonly batchWaitMs: number;
  /** `SKEIN_LOG_LEVEL`, default `info`. */
  readonly logLevel: string;
  /**
   * `SKEIN_SHARD_TEST_ALLOCATION_DELAY_MS` (tests only): sleep a random 0..n ms between
   * receiving an allocation and committing it, to widen the window the safe point must
   * respect. Default 0 (off).
   */
  readonly testAllocationDelayMs: number;
  /**
   * `SKEIN_SHARD_MAINTENANCE_INTERVAL_MS`, default 3600000 (an hour): how often the sweep
   * enqueues retention of every owned partition and a compaction of the closed buckets.
   */
  readonly maintenanceIntervalMs: number;
  /**
   * `SKEIN_SHARD_JOB_LOCK_MS`, default 30000: a maintenance job's BullMQ lock and its
   * partition lease last this long unless renewed (every third of it); a job of a killed
   * process runs again after about twice this.
   */
  readonly jobLockMs: number;
  /** `SKEIN_SHARD_BACKUP_DIR`, default `<data dir>/backups`: where backups of this shard go (production: another volume). */
  readonly backupDir: string;
  /** `SKEIN_SHARD_TEST_JOB_PAUSE_MS` (tests only): the first run of a compaction pauses this long after its first bucket. Default 0. */
  readonly testJobPauseMs: number;
  /** `SKEIN_SHARD_TEST_CLOCK_OFFSET_MS` (tests only): the engine's clock runs this far ahead (closes buckets, ages events). Default 0. */
  readonly testClockOffsetMs: number;
}

const SHARD_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * Reads and validates every `SKEIN_*` setting of the shard; reports all violations at
 * once (ConfigError) and returns a frozen object.
 */
export function loadConfig(env: NodeJS.ProcessEnv): ShardConfig & { readonly redisUrl: string };
/** For a node, which runs on its embedded control store when `SKEIN_REDIS_URL` is unset (`redisUrl` null). */
export function loadConfig(env: NodeJS.ProcessEnv, options: { redisOptional: boolean }): ShardConfig;
export function loadConfig(env: NodeJS.ProcessEnv, options: { redisOptional?: boolean } = {}): ShardConfig {
  const read = readSettings('shard', env);
  const shardId = read.required('SKEIN_SHARD_ID');
  if (shardId && !SHARD_ID_RE.test(shardId)) read.violation(`SKEIN_SHARD_ID must match ${SHARD_ID_RE.source}, got ${JSON.stringify(shardId)}`);
  const dataDirRaw = read.required('SKEIN_SHARD_DATA_DIR');
  const redis = options.redisOptional ? read.redisIfSet() : read.redis();
  const clusterSecret = read.secret('SKEIN_CLUSTER_SECRET', 32);
  const mapSizeRaw = read.integer('SKEIN_SHARD_MAP_SIZE_BYTES', 0, 1024 * 1024);
  const reserveRaw = read.integer('SKEIN_SHARD_STORAGE_RESERVE_BYTES', 0, 1024 * 1024);
  const config: ShardConfig = {
    shardId,
    host: read.string('SKEIN_SHARD_HOST', '127.0.0.1'),
    port: read.integer('SKEIN_SHARD_PORT', 0, 0, 65535),
    dataDir: dataDirRaw && !isAbsolute(dataDirRaw) ? resolve(dataDirRaw) : dataDirRaw,
    redisUrl: redis?.url ?? null,
    redisOptions: redis?.options ?? {},
    clusterSecret,
    maxBodyBytes: read.integer('SKEIN_SHARD_MAX_BODY_BYTES', 32 * 1024 * 1024, APPEND_BATCH_LIMITS.maxBytes),
    maxPendingBytes: read.integer('SKEIN_SHARD_MAX_PENDING_BYTES', 64 * 1024 * 1024, APPEND_BATCH_LIMITS.maxBytes),
    safePointIntervalMs: read.integer('SKEIN_SHARD_SAFE_POINT_INTERVAL_MS', 50, 1, 60_000),
    safePointMaxWaitMs: read.integer('SKEIN_SHARD_SAFE_POINT_MAX_WAIT_MS', 2000, 0, 60_000),
    heartbeatMs: read.integer('SKEIN_SHARD_HEARTBEAT_MS', 15_000, 10, 15_000),
    slowSubscriberMs: read.integer('SKEIN_SHARD_SLOW_SUBSCRIBER_MS', 30_000, 10),
    drainTimeoutMs: read.integer('SKEIN_SHARD_DRAIN_TIMEOUT_MS', 10_000, 0),
    mapSizeBytes: mapSizeRaw === 0 ? undefined : mapSizeRaw,
    storageReserveBytes: reserveRaw === 0 ? undefined : reserveRaw,
    storageProbeIntervalMs: read.integer('SKEIN_SHARD_STORAGE_PROBE_INTERVAL_MS', 1000, 10, 60_000),
    batchWaitMs: read.integer('SKEIN_SHARD_BATCH_WAIT_MS', 2, 0, 1000),
    logLevel: read.logLevel(),
    testAllocationDelayMs: read.integer('SKEIN_SHARD_TEST_ALLOCATION_DELAY_MS', 0, 0, 10_000),
    maintenanceIntervalMs: read.integer('SKEIN_SHARD_MAINTENANCE_INTERVAL_MS', 3_600_000, 1000),
    jobLockMs: read.integer('SKEIN_SHARD_JOB_LOCK_MS', 30_000, 1000, 600_000),
    backupDir: ((raw) => (raw && !isAbsolute(raw) ? resolve(raw) : raw))(read.string('SKEIN_SHARD_BACKUP_DIR', dataDirRaw ? join(dataDirRaw, 'backups') : '')),
    testJobPauseMs: read.integer('SKEIN_SHARD_TEST_JOB_PAUSE_MS', 0, 0, 600_000),
    testClockOffsetMs: read.integer('SKEIN_SHARD_TEST_CLOCK_OFFSET_MS', 0, 0, 10 * 365 * 86_400_000),
  };
  if (config.maxPendingBytes < config.maxBodyBytes) read.violation('SKEIN_SHARD_MAX_PENDING_BYTES must be at least SKEIN_SHARD_MAX_BODY_BYTES (or no batch of the largest size is ever admitted)');
  read.done();
  return Object.freeze(config);
}
