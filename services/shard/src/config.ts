import { isAbsolute, resolve } from 'node:path';

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
  /** `SKEIN_REDIS_URL` (required): the control plane (sequencer counter, topology). */
  readonly redisUrl: string;
  /** `SKEIN_SHARD_MAX_BODY_BYTES`, default 32 MiB: one internal request at most (the router coalesces appends). */
  readonly maxBodyBytes: number;
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
  /** `SKEIN_LOG_LEVEL`, default `info`. */
  readonly logLevel: string;
  /**
   * `SKEIN_SHARD_TEST_ALLOCATION_DELAY_MS` (tests only): sleep a random 0..n ms between
   * receiving an allocation and committing it, to widen the window the safe point must
   * respect. Default 0 (off).
   */
  readonly testAllocationDelayMs: number;
}

/** Thrown by {@link loadConfig} with every violation, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly violations: readonly string[];
  constructor(violations: string[]) {
    super(`invalid shard configuration:\n  ${violations.join('\n  ')}`);
    this.violations = violations;
  }
}

const SHARD_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Reads and validates every `SKEIN_*` setting of the shard; reports all violations at
 * once (ConfigError) and returns a frozen object.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ShardConfig {
  const violations: string[] = [];

  const required = (name: string): string => {
    const v = env[name];
    if (v === undefined || v.trim() === '') {
      violations.push(`${name} is required`);
      return '';
    }
    return v.trim();
  };
  const integer = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      violations.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };

  const shardId = required('SKEIN_SHARD_ID');
  if (shardId && !SHARD_ID_RE.test(shardId)) violations.push(`SKEIN_SHARD_ID must match ${SHARD_ID_RE.source}, got ${JSON.stringify(shardId)}`);

  const dataDirRaw = required('SKEIN_SHARD_DATA_DIR');
  const dataDir = dataDirRaw && !isAbsolute(dataDirRaw) ? resolve(dataDirRaw) : dataDirRaw;

  const redisUrl = required('SKEIN_REDIS_URL');
  if (redisUrl) {
    try {
      const u = new URL(redisUrl);
      if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') violations.push(`SKEIN_REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`);
    } catch {
      violations.push(`SKEIN_REDIS_URL must be a redis:// URL, got ${JSON.stringify(redisUrl)}`);
    }
  }

  const host = env.SKEIN_SHARD_HOST?.trim() || '127.0.0.1';
  const port = integer('SKEIN_SHARD_PORT', 0, 0, 65535);
  const maxBodyBytes = integer('SKEIN_SHARD_MAX_BODY_BYTES', 32 * 1024 * 1024, 1024);
  const safePointIntervalMs = integer('SKEIN_SHARD_SAFE_POINT_INTERVAL_MS', 50, 1, 60_000);
  const safePointMaxWaitMs = integer('SKEIN_SHARD_SAFE_POINT_MAX_WAIT_MS', 2000, 0, 60_000);
  const heartbeatMs = integer('SKEIN_SHARD_HEARTBEAT_MS', 15_000, 10, 15_000);
  const slowSubscriberMs = integer('SKEIN_SHARD_SLOW_SUBSCRIBER_MS', 30_000, 10);
  const drainTimeoutMs = integer('SKEIN_SHARD_DRAIN_TIMEOUT_MS', 10_000, 0);
  const mapSizeRaw = integer('SKEIN_SHARD_MAP_SIZE_BYTES', 0, 1024 * 1024);
  const testAllocationDelayMs = integer('SKEIN_SHARD_TEST_ALLOCATION_DELAY_MS', 0, 0, 10_000);

  const logLevel = env.SKEIN_LOG_LEVEL?.trim() || 'info';
  if (!LOG_LEVELS.includes(logLevel)) violations.push(`SKEIN_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  if (violations.length > 0) throw new ConfigError(violations);
  return Object.freeze({
    shardId,
    host,
    port,
    dataDir,
    redisUrl,
    maxBodyBytes,
    safePointIntervalMs,
    safePointMaxWaitMs,
    heartbeatMs,
    slowSubscriberMs,
    drainTimeoutMs,
    mapSizeBytes: mapSizeRaw === 0 ? undefined : mapSizeRaw,
    logLevel,
    testAllocationDelayMs,
  });
}
