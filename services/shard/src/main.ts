// The shard process: configuration, root logger, metrics registry, wiring, signals.
import { pino } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { exitOnUncaught, loadOrExit, stopOnSignals } from '@skein/http';
import { createShard, loadShardConfig, type Shard } from '@skein/shard';

const bootLogger = pino({ base: { component: 'shard' } });
exitOnUncaught(bootLogger);

async function main(): Promise<void> {
  const config = loadOrExit(() => loadShardConfig(process.env), bootLogger);
  const logger = pino({
    level: config.logLevel,
    base: { shard: config.shardId, pid: process.pid },
    redact: ['req.headers.authorization', 'headers.authorization', 'authorization', '*.apiKey', 'req.headers["x-skein-cluster-secret"]', 'headers["x-skein-cluster-secret"]'],
  });
  const registry = new Registry();
  registry.setDefaultLabels({ shard: config.shardId });
  // Standard names (process_*, nodejs_*) so stock Node.js dashboards work.
  collectDefaultMetrics({ register: registry });

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

  // SIGTERM drains: stop accepting, answer in-flight batches, close the environments.
  stopOnSignals({ logger, message: 'draining', deadlineMs: config.drainTimeoutMs, stop: () => shard.close() });
}

await main();
