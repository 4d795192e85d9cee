import { readSettings, type RedisSettings } from '@skein/http';
import { APPEND_BATCH_LIMITS } from '@skein/protocol';
import { MOVE_PAUSE_POINTS, type MovePausePoint } from './moves/move-steps.ts';

export { ConfigError } from '@skein/http';

/** The router's configuration, validated once at start and frozen. */
export interface RouterConfig {
  /** `SKEIN_ROUTER_HOST`, default `127.0.0.1`. */
  readonly host: string;
  /** `SKEIN_ROUTER_PORT`, default 8080 (0 = any free port; the bound URL is logged). */
  readonly port: number;
  /**
   * `SKEIN_REDIS_URL`: the control plane (tenants, keys, topology, sequencer counter).
   * Required for a router alone; null for a node without it, which runs on the embedded
   * control store (`loadConfig(env, { redisOptional: true })`).
   */
  readonly redisUrl: string | null;
  /** `SKEIN_REDIS_TLS_CA_FILE`, `…_CERT_FILE`, `…_KEY_FILE` (rediss:// only): spread into every Redis client. */
  readonly redisOptions: RedisSettings['options'];
  /** `SKEIN_CLUSTER_SECRET` (required, at least 32 printable characters): sent to the shards on every internal API request. */
  readonly clusterSecret: string;
  /** `SKEIN_ADMIN_KEY` (required, at least 32 characters): the admin API key. */
  readonly adminKey: string;
  /**
   * `SKEIN_ROUTER_SHARDS`: `id=url,id=url`. When set, the topology in Redis is created
   * from it if absent, and shards it lists that the topology lacks are added (epoch
   * bump; existing partitions stay where their data is). Default: use the topology as stored.
   */
  readonly shards: readonly { id: string; url: string }[];
  /**
   * `SKEIN_ROUTER_MAX_BODY_BYTES`, default 4 MiB: one request body at most (413 beyond).
   * At most 16 MiB − 64 KiB: one append, with its routing, must fit one shard batch
   * (protocol's APPEND_BATCH_LIMITS).
   */
  readonly maxBodyBytes: number;
  /**
   * `SKEIN_ROUTER_MAX_PENDING_BYTES`, default 64 MiB (at least SKEIN_ROUTER_MAX_BODY_BYTES):
   * bytes of append bodies accepted and not yet answered (being read, queued for a shard,
   * at a shard). An append that would pass it gets 503 UNAVAILABLE with Retry-After
   * before its body is read, and nothing is written. README "Memory" gives the RSS it implies.
   */
  readonly maxPendingBytes: number;
  /**
   * `SKEIN_ROUTER_MAX_PENDING_BYTES_PER_SHARD`, default 32 MiB (from
   * SKEIN_ROUTER_MAX_BODY_BYTES to SKEIN_ROUTER_MAX_PENDING_BYTES): the same bound for the
   * appends bound for one shard, so a stalled shard cannot take the whole budget.
   */
  readonly maxPendingBytesPerShard: number;
  /** `SKEIN_ROUTER_SHARD_TIMEOUT_MS`, default 10000: the longest a shard request may take. */
  readonly shardTimeoutMs: number;
  /**
   * `SKEIN_ROUTER_BATCH_WAIT_MS`, default 2 (0 turns it off): for a shard reached over HTTP,
   * once a batch of two or more appends is answered, the longest the next one waits for
   * that many appends to come back before it is sent (coalescer.ts).
   */
  readonly batchWaitMs: number;
  /** `SKEIN_ROUTER_HEARTBEAT_MS`, default 15000: SSE heartbeat comment interval. */
  readonly heartbeatMs: number;
  /** `SKEIN_ROUTER_SUBSCRIBER_BUFFER_BYTES`, default 4 MiB: a subscriber with more unsent bytes than this is disconnected at once. */
  readonly subscriberBufferBytes: number;
  /** `SKEIN_ROUTER_SLOW_SUBSCRIBER_MS`, default 10000: a subscriber whose socket stays backed up (not drained) this long is disconnected. */
  readonly slowSubscriberMs: number;
  /** `SKEIN_ROUTER_POLL_MS`, default 25: how often a caught-up log subscription looks for new events. */
  readonly pollMs: number;
  /** `SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS`, default 10000: how long a moved partition's source keeps its copy after the flip. */
  readonly moveCleanupGraceMs: number;
  /** `SKEIN_ROUTER_MOVE_STALL_MS`, default 15000: a move that makes no progress this long before its fence rolls back. */
  readonly moveStallMs: number;
  /** `SKEIN_ROUTER_MOVE_MAX_BYTES_PER_SECOND`, default 0 (no limit): the copy bandwidth of one move. */
  readonly moveMaxBytesPerSecond: number;
  /**
   * `SKEIN_ROUTER_MOVE_LOCK_MS`, default 10000: how long a move's job stays with a router
   * that stopped renewing it (it died) before another router's worker takes it over. A
   * router that dies while its move is fenced pauses that partition's writes about this long.
   */
  readonly moveLockMs: number;
  /**
   * `SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS`, default none: a test fail point (DESIGN.md, "Test
   * fail points"), `point:ms,…` with points copy, tail, handshake, flip: each move waits
   * that long before the point, once. Never set in production: a `handshake` or `flip`
   * pause is a write pause of the moving partition.
   */
  readonly movePauseBeforeMs: Readonly<Partial<Record<MovePausePoint, number>>>;
  /** `SKEIN_LOG_LEVEL`, default `info`. */
  readonly logLevel: string;
}

/** Reads and validates every `SKEIN_*` setting of the router; reports all violations at once (ConfigError). */
export function loadConfig(env: NodeJS.ProcessEnv): RouterConfig & { readonly redisUrl: string };
/** For a node, which runs on its embedded control store when `SKEIN_REDIS_URL` is unset (`redisUrl` null). */
export function loadConfig(env: NodeJS.ProcessEnv, options: { redisOptional: boolean }): RouterConfig;
export function loadConfig(env: NodeJS.ProcessEnv, options: { redisOptional?: boolean } = {}): RouterConfig {
  const read = readSettings('router', env);
  const redis = options.redisOptional ? read.redisIfSet() : read.redis();
  const clusterSecret = read.secret('SKEIN_CLUSTER_SECRET', 32);
  const adminKey = env.SKEIN_ADMIN_KEY ?? '';
  if (adminKey.length < 32) read.violation('SKEIN_ADMIN_KEY is required and must be at least 32 characters');
  const shards: { id: string; url: string }[] = [];
  for (const part of (env.SKEIN_ROUTER_SHARDS ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,62})=(https?:\/\/.+)$/.exec(part);
    if (!m) read.violation(`SKEIN_ROUTER_SHARDS entries must be id=http://host:port, got ${JSON.stringify(part)}`);
    else shards.push({ id: m[1]!, url: m[2]!.replace(/\/+$/, '') });
  }
  const movePauseBeforeMs: Partial<Record<MovePausePoint, number>> = {};
  for (const part of (env.SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z]+):(\d{1,6})$/.exec(part);
    const point = MOVE_PAUSE_POINTS.find((p) => p === m?.[1]);
    if (!m || !point) read.violation(`SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS entries must be point:ms with a point of ${MOVE_PAUSE_POINTS.join(', ')}, got ${JSON.stringify(part)}`);
    else movePauseBeforeMs[point] = Number(m[2]);
  }
  const config: RouterConfig = {
    host: read.string('SKEIN_ROUTER_HOST', '127.0.0.1'),
    port: read.integer('SKEIN_ROUTER_PORT', 8080, 0, 65535),
    redisUrl: redis?.url ?? null,
    redisOptions: redis?.options ?? {},
    clusterSecret,
    adminKey,
    shards,
    maxBodyBytes: read.integer('SKEIN_ROUTER_MAX_BODY_BYTES', 4 * 1024 * 1024, 1024, APPEND_BATCH_LIMITS.maxBytes - 64 * 1024),
    maxPendingBytes: read.integer('SKEIN_ROUTER_MAX_PENDING_BYTES', 64 * 1024 * 1024, 1024),
    maxPendingBytesPerShard: read.integer('SKEIN_ROUTER_MAX_PENDING_BYTES_PER_SHARD', 32 * 1024 * 1024, 1024),
    shardTimeoutMs: read.integer('SKEIN_ROUTER_SHARD_TIMEOUT_MS', 10_000, 100),
    batchWaitMs: read.integer('SKEIN_ROUTER_BATCH_WAIT_MS', 2, 0, 1000),
    heartbeatMs: read.integer('SKEIN_ROUTER_HEARTBEAT_MS', 15_000, 10),
    subscriberBufferBytes: read.integer('SKEIN_ROUTER_SUBSCRIBER_BUFFER_BYTES', 4 * 1024 * 1024, 1024),
    slowSubscriberMs: read.integer('SKEIN_ROUTER_SLOW_SUBSCRIBER_MS', 10_000, 10),
    pollMs: read.integer('SKEIN_ROUTER_POLL_MS', 25, 1),
    moveCleanupGraceMs: read.integer('SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS', 10_000, 0),
    moveStallMs: read.integer('SKEIN_ROUTER_MOVE_STALL_MS', 15_000, 100),
    moveMaxBytesPerSecond: read.integer('SKEIN_ROUTER_MOVE_MAX_BYTES_PER_SECOND', 0, 0),
    moveLockMs: read.integer('SKEIN_ROUTER_MOVE_LOCK_MS', 10_000, 1000),
    movePauseBeforeMs: Object.freeze(movePauseBeforeMs),
    logLevel: read.logLevel(),
  };
  if (config.maxPendingBytes < config.maxBodyBytes) read.violation('SKEIN_ROUTER_MAX_PENDING_BYTES must be at least SKEIN_ROUTER_MAX_BODY_BYTES (or no append of the largest size is ever admitted)');
  if (config.maxPendingBytesPerShard < config.maxBodyBytes || config.maxPendingBytesPerShard > config.maxPendingBytes) {
    read.violation('SKEIN_ROUTER_MAX_PENDING_BYTES_PER_SHARD must be from SKEIN_ROUTER_MAX_BODY_BYTES to SKEIN_ROUTER_MAX_PENDING_BYTES');
  }
  read.done();
  return Object.freeze(config);
}
