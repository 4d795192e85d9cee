// The shard process: configuration, root logger, metrics registry, wiring, signals.
import { pino } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ConfigError, loadConfig } from './config.ts';
import { createShard, type Shard } from './shard.ts';

const bootLogger = pino({ base: { component: 'shard' } });

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      bootLogger.fatal({ violations: err.violations }, err.message);
      process.exit(1);
    }
    throw err;
  }

  const logger = pino({
    level: config.logLevel,
    base: { shard: config.shardId, pid: process.pid },
    redact: ['req.headers.authorization', 'headers.authorization', 'authorization', '*.apiKey'],
  });
  const registry = new Registry();
  registry.setDefaultLabels({ shard: config.shardId });
  collectDefaultMetrics({ register: registry, prefix: 'skein_shard_process_' });

  let shard: Shard;
  let url: string;
  try {
    shard = await createShard(config, { logger, registry });
    url = await shard.app.listen({ host: config.host, port: config.port });
  } catch (err) {
    logger.fatal({ err }, 'shard could not start');
    process.exit(1);
  }
  logger.info({ url, dataDir: config.dataDir, epoch: shard.ownership.epoch, safePoint: shard.safePoint.current().toString() }, 'shard listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    const force = setTimeout(() => {
      logger.error({ timeoutMs: config.drainTimeoutMs }, 'drain timed out; exiting');
      process.exit(1);
    }, config.drainTimeoutMs);
    force.unref();
    shard.close().then(
      () => {
        logger.info({}, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

process.on('uncaughtException', (err) => {
  bootLogger.fatal({ err }, 'uncaught exception');
  process.exit(1);
});

await main();
