// The router process: configuration, root logger, metrics registry, wiring, signals.
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { exitOnUncaught, loadOrExit, stopOnSignals } from '@skein/http';
import { createRouterApp } from './app.ts';
import { loadConfig } from './config.ts';
import { createRegistry } from './registry.ts';
import { createShardClient } from './shard-client.ts';
import { createRouterTopology } from './topology.ts';

const bootLogger = pino({ base: { component: 'router' } });
exitOnUncaught(bootLogger);

async function main(): Promise<void> {
  const config = loadOrExit(loadConfig, bootLogger);
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

  const registry = createRegistry({ redis, adminKey: config.adminKey });
  const topology = createRouterTopology({ redis, log: logger });
  const shards = createShardClient({ topology, timeoutMs: config.shardTimeoutMs, clusterSecret: config.clusterSecret });
  let app;
  let url: string;
  try {
    await redis.connect();
    await subscriber.connect();
    if (config.shards.length > 0) await topology.ensureShards(config.shards);
    await registry.listen(subscriber);
    await topology.listen(subscriber);
    app = await createRouterApp({ redis, registry, topology, shards, logger, metrics: new Registry() }, config);
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
      await shards.close();
      await Promise.allSettled([redis.quit(), subscriber.quit()]);
    },
  });
}

await main();
