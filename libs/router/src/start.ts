// A router wired from its configuration: control store, topology, shards, registry and
// app, listening. Shared by every entry point that runs a router (services/router,
// services/node), so that they differ only in where the shards live.
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { ControlStore, ShardApi } from '@skein/protocol';
import { createRouterApp } from './app.ts';
import type { RouterConfig } from './config.ts';
import { createShardPeers } from './control-peers.ts';
import { createBullJobQueues, type JobQueues } from './jobs.ts';
import { createControlPlane } from './control-plane.ts';
import { createClusterAdmin } from './moves/cluster-admin.ts';
import { createRedisControlStore } from './redis-control-store.ts';
import { createRegistry } from './registry.ts';
import { createShardClient } from './shard-client.ts';
import { createRouterTopology } from './topology.ts';

/** A shard hosted by the router's own process: called in-process at the router's epoch. */
export interface LocalShard {
  readonly id: string;
  localApi(callerEpoch: () => number): ShardApi;
}

export interface RouterDepsOfProcess {
  /** The process's root logger (the router logs through it). */
  logger: Logger;
  /** The process's metrics registry. */
  metrics: MetricsRegistry;
  /** Shards in this process, reached without HTTP. Default none. */
  local?: readonly LocalShard[];
  /**
   * The control store when it is not Redis: a node's embedded one (`@skein/shard`'s
   * `openEmbeddedControlStore`; the caller closes it). Default: Redis at `config.redisUrl`.
   */
  store?: ControlStore;
  /**
   * Maintenance jobs when they are not BullMQ's: a node's in-process queues (`@skein/shard`'s
   * `createLocalJobQueues`; the caller closes them). Default: BullMQ at `config.redisUrl`,
   * none without Redis (the admin job routes are then not served).
   */
  jobs?: JobQueues;
}

export interface RunningRouter {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly epoch: number;
  /** Stops accepting requests, ends subscriptions, closes shard connections and Redis. */
  close(): Promise<void>;
}

/** How long start-up keeps retrying the control plane (Redis, a majority of shards) before giving up. */
const STARTUP_RETRY_MS = 30_000;

async function retryFor<T>(ms: number, log: Logger, attempt: () => Promise<T>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > until) throw err;
      log.warn({ err }, 'control plane not ready yet; retrying');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Builds the router and listens on `config.host:config.port`; throws when it cannot start. */
export async function startRouter(config: RouterConfig, deps: RouterDepsOfProcess): Promise<RunningRouter> {
  const { logger } = deps;
  // Fail fast while Redis is away: requests get 503, the client reconnects in the background.
  const redisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 2000, retryStrategy: (n: number) => Math.min(50 * n, 1000), lazyConnect: true };
  const redisUrl = deps.store ? null : config.redisUrl;
  if (!deps.store && redisUrl === null) throw new Error('a router needs SKEIN_REDIS_URL or an embedded control store');
  const redis = redisUrl === null ? null : new Redis(redisUrl, { ...config.redisOptions, ...redisOptions });
  const subscriber = redisUrl === null ? null : new Redis(redisUrl, { ...config.redisOptions, ...redisOptions, commandTimeout: undefined, enableOfflineQueue: true });
  redis?.on('error', (err) => logger.debug({ err }, 'redis connection error'));
  subscriber?.on('error', (err) => logger.debug({ err }, 'redis subscriber error'));

  const store = deps.store ?? createRedisControlStore({ redis: redis!, subscriber: subscriber! });
  const topology = createRouterTopology({ store, log: logger });
  const local = new Map<string, ShardApi>();
  for (const shard of deps.local ?? []) local.set(shard.id, shard.localApi(() => topology.epoch));
  const shards = createShardClient({ topology, timeoutMs: config.shardTimeoutMs, clusterSecret: config.clusterSecret, local });
  const control = createControlPlane({ store, peers: createShardPeers({ shards, topology, seeds: config.shards }), log: logger.child({ component: 'control-plane' }) });
  const registry = createRegistry({ store, adminKey: config.adminKey, control });
  await redis?.connect();
  await subscriber?.connect();
  // A Redis that lost the control plane is rebuilt from the shards' records before the
  // topology is touched; shards that are still starting make this wait.
  await retryFor(STARTUP_RETRY_MS, logger, () => control.ready());
  if (config.shards.length > 0) await retryFor(STARTUP_RETRY_MS, logger, () => topology.ensureShards(config.shards, control));
  await registry.listen();
  await topology.listen();
  await control.listen();
  // Membership and partition moves need Redis (the fence is a Redis script with the sequencer's keys).
  // Moves run as BullMQ jobs on the cluster's moves queue; every router works it.
  const cluster =
    redis && redisUrl !== null
      ? await createClusterAdmin(
          { redis, redisUrl, redisOptions: config.redisOptions, topology, control, clusterSecret: config.clusterSecret, timeoutMs: config.shardTimeoutMs, log: logger.child({ component: 'moves' }) },
          { cleanupGraceMs: config.moveCleanupGraceMs, stallMs: config.moveStallMs, maxBytesPerSecond: config.moveMaxBytesPerSecond, lockMs: config.moveLockMs, pauseBeforeMs: config.movePauseBeforeMs },
        )
      : undefined;
  const ownJobs = deps.jobs !== undefined || redisUrl === null ? undefined : createBullJobQueues({ redisUrl, redisOptions: config.redisOptions });
  const jobs = deps.jobs ?? ownJobs;
  const app = await createRouterApp({ store, registry, topology, shards, control, logger, metrics: deps.metrics, ...(cluster ? { cluster } : {}), ...(jobs ? { jobs } : {}) }, config);
  const url = await app.listen({ host: config.host, port: config.port });
  return {
    app,
    url,
    get epoch() {
      return topology.epoch;
    },
    async close() {
      await app.close();
      await cluster?.close();
      await ownJobs?.close();
      control.close();
      await shards.close();
      if (redis && subscriber) await Promise.allSettled([redis.quit(), subscriber.quit()]);
    },
  };
}
