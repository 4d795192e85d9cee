import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { holdDataDir, type DataDirHold } from './data-dir-hold.ts';
import { createEngine, partitionTransferOf, type EngineOptions, type EventStore } from '@skein/engine';
import type { Marked, PositionRange, Sequencer, ShardApi, StoredTenant } from '@skein/protocol';
import type { TimerJobs } from '@skein/http';
import { createRedisSequencer, type RedisSequencer } from '@skein/sequencer';
import { createShardApp } from './app.ts';
import type { ShardConfig } from './config.ts';
import { openControlRecordStore, type ControlRecordStore } from './control-records.ts';
import { createLocalShardApi } from './local-api.ts';
import { createShardMetrics } from './metrics.ts';
import type { EmbeddedSequencer } from './embedded-control-store.ts';
import { createOwnership, type Ownership, type TopologySource, type TopologySubscriber } from './ownership.ts';
import { createSafePointTracker, type SafePointTracker } from './safe-point.ts';
import { openSequencerStateFile, type SequencerStateFile } from './sequencer-state.ts';
import { createWriteGate, type WriteGate } from './write-gate.ts';
import { startShardMaintenance, type ShardMaintenance } from './jobs/shard-maintenance.ts';

/** A wired shard: its HTTP app (not listening yet) and the parts tests look at. */
export interface Shard {
  readonly app: FastifyInstance;
  readonly engine: EventStore;
  /** Redis's (one connection per shard), or the node's embedded one. */
  readonly sequencer: Sequencer;
  readonly safePoint: SafePointTracker;
  readonly ownership: Ownership;
  readonly stateFile: SequencerStateFile;
  readonly controlRecords: ControlRecordStore;
  /** Retention, compaction and backup jobs (BullMQ with Redis, timers embedded). */
  readonly maintenance: ShardMaintenance;
  /** This shard as a ShardApi for a router in the same process, routing at `callerEpoch()`. */
  localApi(callerEpoch: () => number): ShardApi;
  /**
   * Drains and closes everything: stops accepting requests and answers those in flight
   * (app), ends subscriptions, closes the engine (answers everything queued, closes the
   * environments), persists the sequencer state, and disconnects from Redis.
   */
  close(): Promise<void>;
}

export interface ShardDeps {
  logger: Logger;
  registry: Registry;
  /**
   * A node without Redis: its embedded control store (`openEmbeddedControlStore`), shared
   * by every shard of the process, gives the sequencer and the topology. Absent: Redis
   * (`config.redisUrl`, required then).
   */
  control?: EmbeddedShardControl;
  /**
   * How the engine commits: `commitThread` for a shard sharing its process (a node:
   * a commit's fdatasync then holds neither the router nor the other shards);
   * `returnTally` shared by a node's shards (its writers move between them);
   * `testCommitDelayMs` for tests only. Default: inline commits, no delay, its own tally.
   */
  engineOptions?: Pick<EngineOptions, 'commitThread' | 'testCommitDelayMs' | 'returnTally'>;
  /** With `control`: the node's in-process timers, which run this shard's maintenance (BullMQ's job schedulers otherwise). */
  timerJobs?: TimerJobs;
}

/** What a shard takes from an embedded control store (`EmbeddedControlStore` satisfies it). */
export interface EmbeddedShardControl {
  readonly sequencer: EmbeddedSequencer;
  readonly topologySource: TopologySource;
  readonly topologySubscriber: TopologySubscriber;
  readTenant(tenant: string): Promise<Marked<StoredTenant>>;
}

/** How often the topology is re-read even without an announcement (missed while disconnected). */
const TOPOLOGY_REFRESH_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Builds a shard from its configuration: sequencer state file, Redis sequencer,
 * engine, safe point tracker, ownership, metrics and HTTP app. The caller listens.
 */
export async function createShard(config: ShardConfig, deps: ShardDeps): Promise<Shard> {
  // Before anything in the directory is opened: one shard process per data directory.
  const hold = await holdDataDir(config.dataDir);
  try {
    return await openShard(config, deps, hold);
  } catch (err) {
    await hold.release();
    throw err;
  }
}

async function openShard(config: ShardConfig, deps: ShardDeps, hold: DataDirHold): Promise<Shard> {
  const { logger, registry } = deps;
  const stateFile = openSequencerStateFile(config.dataDir, logger);
  const controlRecords = openControlRecordStore(config.dataDir);

  // The engine needs a sequencer at creation and the Redis sequencer needs the engine's
  // highest committed position as part of its initial high-water: a forwarding
  // sequencer breaks the cycle (nothing allocates before the app serves).
  const embedded = deps.control;
  const redisUrl = config.redisUrl;
  if (!embedded && redisUrl === null) throw new Error('a shard needs SKEIN_REDIS_URL or an embedded control store');
  let redisSequencer: RedisSequencer | undefined;
  let tracker: SafePointTracker | undefined;
  let engine: EventStore | undefined;
  const delayMs = config.testAllocationDelayMs;
  const sequencer: Sequencer = {
    async allocate(count: number, engineFloor: bigint): Promise<PositionRange> {
      // Above every safe point this shard published, before a restart too (the persisted
      // bound, sequencer-state.ts) and since (the tracker publishes nothing above what is
      // committed while an allocation is pending): a counter re-seeded after a Redis wipe
      // from the members' high-waters may lie below a published safe point.
      const published = tracker ? tracker.current() : stateFile.initial.bound;
      let floor = engineFloor > stateFile.initial.bound ? engineFloor : stateFile.initial.bound;
      if (published > floor) floor = published;
      const range = embedded ? await embedded.sequencer.allocate(count, floor) : await redisSequencer!.allocate(count, floor);
      // The Redis sequencer reports what it observed itself (onObserved).
      if (embedded) stateFile.observe(range.last);
      // Tests only: widen the window between allocation and commit.
      if (delayMs > 0) await sleep(Math.random() * delayMs);
      return range;
    },
    current: async () => {
      if (!embedded) return redisSequencer!.current();
      const value = await embedded.sequencer.current();
      stateFile.observe(value);
      return value;
    },
    close: async () => {},
  };

  const metrics = createShardMetrics(registry, {
    safePoint: () => tracker?.current() ?? 0n,
    sequencerPosition: () => sequencer.current(),
    environmentBytes: () => (engine ? engine.environmentSizes().reduce((sum, e) => sum + e.bytes, 0) : 0),
  });

  const clockOffsetMs = config.testClockOffsetMs;
  engine = createEngine({
    path: config.dataDir,
    ...(clockOffsetMs > 0 ? { clock: () => Date.now() + clockOffsetMs } : {}),
    sequencer,
    mapSizeBytes: config.mapSizeBytes,
    storageReserveBytes: config.storageReserveBytes,
    storageProbeIntervalMs: config.storageProbeIntervalMs,
    batchWaitMs: config.batchWaitMs,
    logger: logger.child({ component: 'engine' }),
    observer: metrics.engineObserver,
    ...deps.engineOptions,
  });
  const store = engine;
  let gate: WriteGate | undefined;
  let open = true;

  const highestCommitted = store.writerState().highestCommitted;
  const initialHighWater = stateFile.initial.highWater > highestCommitted ? stateFile.initial.highWater : highestCommitted;
  // Where the safe point starts: the high-water, not the bound. Invariant: a published safe
  // point is never above a counter value this shard observed (a counter read, an allocation,
  // a committed position), so never above the counter when a reader uses it (it only grows;
  // a re-seed sets it at or above every member's high-water before anyone allocates). The
  // watermark is a promise for shards outside the reader's topology too: one that joins, or
  // takes a partition over, later allocates from the counter. The bound (sequencer-state.ts)
  // lies up to RESERVE_MAX above the counter; published at start, it became the watermark
  // of a cluster whose only shard had restarted, and a shard that joined next appended
  // below it (test/e2e/fault/restarted-shard-watermark.spec.ts). This shard's own
  // allocations still start above the bound (allocate): its previous run may have
  // published up to it.
  const initialSafePoint = initialHighWater;
  // Every shard of an embedded node raises the shared counter past what it committed or
  // published before anything allocates (the counter is written without waiting for the disk).
  embedded?.sequencer.seed(initialHighWater);
  if (redisUrl !== null && !embedded) redisSequencer = createRedisSequencer({
    url: redisUrl,
    redisOptions: config.redisOptions,
    memberId: config.shardId,
    initialHighWater,
    // Safe points up to the persisted bound needed no state write: a crash may lose the
    // high-water that covered them, and a re-seed must still count them.
    reseedFloor: () => stateFile.persistedBound(),
    knownMembers: stateFile.initial.members,
    removedMembers: stateFile.initial.removed,
    onObserved: (value) => stateFile.observe(value),
    onMembers: (ids) => stateFile.addMembers(ids),
    // After onObserved raised the high-water over them: one state write holds both.
    onRemoved: (ids) => stateFile.removeMembers(ids),
    observe: metrics.sequencerObserver,
    // A fence of one of this shard's partitions refuses positions to writes admitted before it (write-gate.ts).
    fenceGeneration: () => gate?.generation() ?? 0,
    onFenced: () => void ownership.refresh(),
  });
  stateFile.addMembers([config.shardId]);

  const redis = embedded ? null : new Redis(redisUrl!, {
    ...config.redisOptions,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 500,
    connectTimeout: 1000,
    retryStrategy: (attempt) => Math.min(attempt * 50, 1000),
  });
  let lastRedisError = 0;
  redis?.on('error', (err) => {
    // Reconnects retry every second at most: log the loss, not every attempt.
    if (Date.now() - lastRedisError > 10_000) logger.warn({ err }, 'Redis connection error');
    lastRedisError = Date.now();
  });
  const subscriber = embedded ? null : new Redis(redisUrl!, {
    ...config.redisOptions,
    maxRetriesPerRequest: null,
    connectTimeout: 1000,
    retryStrategy: (attempt) => Math.min(attempt * 50, 1000),
  });
  subscriber?.on('error', () => {});

  const ownership = createOwnership({
    shardId: config.shardId,
    source: embedded?.topologySource ?? redis!,
    logger: logger.child({ component: 'topology' }),
    // A removed shard stops being a sequencer member, here and in Redis (`@skein/sequencer`, "Removed members").
    onRemoved: (removed) => redisSequencer?.removeMembers(Object.entries(removed).map(([id, counter]) => ({ id, coveredUpTo: BigInt(counter) }))),
  });
  // After a reconnect, announcements may have been missed.
  subscriber?.on('ready', () => void ownership.refresh());
  redis?.on('ready', () => void ownership.refresh());
  void ownership.listen(embedded?.topologySubscriber ?? subscriber!).catch((err: unknown) => logger.warn({ err }, 'topology announcements not subscribed'));
  const topologyTimer = setInterval(() => void ownership.refresh(), TOPOLOGY_REFRESH_MS);
  gate = createWriteGate(store, ownership);
  const gated = gate.store;
  topologyTimer.unref();

  tracker = createSafePointTracker(
    {
      engine: store,
      sequencer,
      durable: { bound: () => stateFile.persistedBound(), flush: () => stateFile.flush() },
      logger: logger.child({ component: 'safe-point' }),
    },
    // At start nothing is allocated: every later allocation is above the persisted bound (allocate).
    { initial: initialSafePoint, intervalMs: config.safePointIntervalMs },
  );
  const safePoint = tracker;

  const app = createShardApp(
    { engine: gated, transfer: partitionTransferOf(store), gate, safePoint, ownership, metrics, registry, logger, ...(redis ? { redis } : {}), controlRecords, isOpen: () => open },
    {
      shardId: config.shardId,
      clusterSecret: config.clusterSecret,
      maxBodyBytes: config.maxBodyBytes,
      maxPendingBytes: config.maxPendingBytes,
      safePointMaxWaitMs: config.safePointMaxWaitMs,
      heartbeatMs: config.heartbeatMs,
      slowSubscriberMs: config.slowSubscriberMs,
    },
  );
  // Serve once the topology was read; with Redis down at start, requests for partitions
  // answer 503 until it is (readiness says so too).
  if (redis && redis.status !== 'ready') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  await ownership.refresh();
  const maintenance = await startShardMaintenance(
    {
      shardId: config.shardId,
      engine: store,
      ownership,
      registry,
      logger,
      ...(redisUrl !== null && !embedded ? { redis: { url: redisUrl, options: config.redisOptions } } : {}),
      ...(embedded && deps.timerJobs ? { embedded: { timers: deps.timerJobs, tenants: embedded } } : {}),
    },
    { sweepEveryMs: config.maintenanceIntervalMs, lockMs: config.jobLockMs, backupDir: config.backupDir, testPauseMs: config.testJobPauseMs },
  );
  // A restarted shard publishes a fresh counter read at once: past what it abandoned.
  await safePoint.refresh();
  safePoint.start();

  let closing: Promise<void> | null = null;
  return {
    app,
    engine: store,
    sequencer: redisSequencer ?? embedded!.sequencer,
    safePoint,
    ownership,
    stateFile,
    controlRecords,
    maintenance,
    localApi: (callerEpoch) =>
      createLocalShardApi(
        { shardId: config.shardId, engine: gated, ownership, safePoint, metrics, controlRecords, safePointMaxWaitMs: config.safePointMaxWaitMs },
        callerEpoch,
      ),
    close() {
      closing ??= (async () => {
        clearInterval(topologyTimer);
        await app.close();
        await maintenance.close();
        open = false;
        safePoint.stop();
        await store.close();
        await controlRecords.close();
        await stateFile.flush();
        await redisSequencer?.close();
        subscriber?.disconnect();
        if (redis?.status === 'ready') await redis.quit().catch(() => redis.disconnect());
        else redis?.disconnect();
        await hold.release();
      })();
      return closing;
    },
  };
}
