// The router process: configuration, root logger, metrics registry, wiring, signals.
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { exitOnUncaught, loadOrExit, stopOnSignals } from '@skein/http';
import {
  createBullJobQueues,
  createClusterAdmin,
  createControlPlane,
  createRedisControlStore,
  createRegistry,
  createRouterApp,
  createRouterTopology,
  createShardClient,
  createShardPeers,
  loadRouterConfig,
} from '@skein/router';

const bootLogger = pino({ base: { component: 'router' } });
exitOnUncaught(bootLogger);

/** How long start-up keeps retrying the control plane (Redis, a majority of shards) before giving up. */
const STARTUP_RETRY_MS = 30_000;

async function retryFor<T>(ms: number, attempt: () => Promise<T>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > until) throw err;
      bootLogger.warn({ err }, 'control plane not ready yet; retrying');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function main(): Promise<void> {
  const config = loadOrExit(() => loadRouterConfig(process.env), bootLogger);
  const logger = pino({
    level: config.logLevel,
    base: { component: 'router', pid: process.pid },
    redact: ['req.headers.authorization', 'headers.authorization', 'authorization', '*.apiKey', 'apiKey'],
  });
  // Fail fast while Redis is away: requests get 503, the client reconnects in the background.
  const redisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 2000, retryStrategy: (n: number) => Math.min(50 * n, 1000), lazyConnect: true };
  const redis = new Redis(config.redisUrl, { ...config.redisOptions, ...redisOptions });
  const subscriber = new Redis(config.redisUrl, { ...config.redisOptions, ...redisOptions, commandTimeout: undefined, enableOfflineQueue: true });
  redis.on('error', (err) => logger.debug({ err }, 'redis connection error'));
  subscriber.on('error', (err) => logger.debug({ err }, 'redis subscriber error'));

  const store = createRedisControlStore({ redis, subscriber });
  const topology = createRouterTopology({ store, log: logger });
  const shards = createShardClient({ topology, timeoutMs: config.shardTimeoutMs, clusterSecret: config.clusterSecret });
  const control = createControlPlane({ store, peers: createShardPeers({ shards, topology, seeds: config.shards }), log: logger.child({ component: 'control-plane' }) });
  const registry = createRegistry({ store, adminKey: config.adminKey, control });
  const cluster = createClusterAdmin(
    { redis, topology, control, clusterSecret: config.clusterSecret, timeoutMs: config.shardTimeoutMs, log: logger.child({ component: 'moves' }) },
    { cleanupGraceMs: config.moveCleanupGraceMs, stallMs: config.moveStallMs, maxBytesPerSecond: config.moveMaxBytesPerSecond },
  );
  const jobs = createBullJobQueues({ redisUrl: config.redisUrl, redisOptions: config.redisOptions });
  let app;
  let url: string;
  try {
    await redis.connect();
    await subscriber.connect();
    // A Redis that lost the control plane is rebuilt from the shards' records before the
    // topology is touched; shards that are still starting make this wait.
    await retryFor(STARTUP_RETRY_MS, () => control.ready());
    if (config.shards.length > 0) await retryFor(STARTUP_RETRY_MS, () => topology.ensureShards(config.shards, control));
    await registry.listen();
    await topology.listen();
    await control.listen();
    app = await createRouterApp({ store, registry, topology, shards, control, logger, metrics: new Registry(), cluster, jobs }, config);
    cluster.moves.startResuming();
    url = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    logger.fatal({ err }, 'router could not start');
    process.exit(1);
  }
  logger.info({ url, epoch: topology.epoch }, 'router listening');

  stopOnSignals({
    logger,
    message: 'stopping',
    deadlineMs: 10_000,
    stop: async () => {
      await app.close();
      await cluster.moves.close();
      await jobs.close();
      control.close();
      await shards.close();
      await Promise.allSettled([redis.quit(), subscriber.quit()]);
    },
  });
}

await main();
