// A Skein process: by SKEIN_ROLE, a node (the router and the shards of SKEIN_NODE_SHARDS in
// one process, the router calling its own shards in-process and the others over HTTP), a
// router alone, or a shard alone. Configuration, root logger, metrics registries, signals.
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { exitOnUncaught, loadOrExit, stopOnSignals } from '@skein/http';
import { loadRouterConfig, startRouter, type RunningRouter } from '@skein/router';
import { createShard, loadShardConfig, type Shard, type ShardConfig } from '@skein/shard';
import { loadNodeConfig, type NodeConfig } from './config.ts';

const bootLogger = pino({ base: { component: 'node' } });
exitOnUncaught(bootLogger);

const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.apiKey',
  'apiKey',
  'req.headers["x-skein-cluster-secret"]',
  'headers["x-skein-cluster-secret"]',
];

/** Each hosted shard's settings: the shard's own (SKEIN_SHARD_*), with its id, data dir and port from the node's. */
function hostedShardConfigs(node: NodeConfig, env: NodeJS.ProcessEnv): ShardConfig[] {
  return node.shards.map((id, i) =>
    loadShardConfig({
      ...env,
      SKEIN_SHARD_ID: id,
      SKEIN_SHARD_DATA_DIR: join(node.dataDir, id),
      SKEIN_SHARD_PORT: String(node.shardPort === 0 ? 0 : node.shardPort + i),
    }),
  );
}

/** Opens a shard (its own engine, batcher, safe point, sequencer state, registry) and serves its internal API. */
async function openShard(config: ShardConfig, logger: Logger, defaultMetrics: boolean): Promise<{ shard: Shard; url: string }> {
  const registry = new Registry();
  registry.setDefaultLabels({ shard: config.shardId });
  // Standard names (process_*, nodejs_*) so stock Node.js dashboards work; once per process.
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  const shard = await createShard(config, { logger: logger.child({ shard: config.shardId }), registry });
  const url = await shard.app.listen({ host: config.host, port: config.port });
  logger.info({ shard: config.shardId, url, dataDir: config.dataDir, epoch: shard.ownership.epoch, safePoint: shard.safePoint.current().toString() }, 'shard listening');
  return { shard, url };
}

async function main(): Promise<void> {
  const env = process.env;
  const node = loadOrExit(() => loadNodeConfig(env), bootLogger);
  const routerConfig = node.role === 'shard' ? null : loadOrExit(() => loadRouterConfig(env), bootLogger);
  const shardConfigs = loadOrExit(() => (node.role === 'shard' ? [loadShardConfig(env)] : node.role === 'node' ? hostedShardConfigs(node, env) : []), bootLogger);
  const logger = pino({ level: routerConfig?.logLevel ?? shardConfigs[0]?.logLevel ?? 'info', base: { role: node.role, pid: process.pid }, redact: REDACT });

  const shards: Shard[] = [];
  let router: RunningRouter | undefined;
  try {
    const advertised: { id: string; url: string }[] = [];
    for (const [i, config] of shardConfigs.entries()) {
      const opened = await openShard(config, logger, i === 0 && routerConfig === null);
      shards.push(opened.shard);
      advertised.push({ id: config.shardId, url: `http://${node.advertiseHost}:${new URL(opened.url).port}` });
    }
    if (routerConfig) {
      // The hosted shards join the topology as any shard would, at the address other
      // routers reach them by; this router calls them in-process.
      const listed = new Set(routerConfig.shards.map((s) => s.id));
      const config = { ...routerConfig, shards: [...routerConfig.shards, ...advertised.filter((s) => !listed.has(s.id))] };
      // The router's registry carries the process's default metrics (createRouterMetrics).
      router = await startRouter(config, { logger: logger.child({ component: 'router' }), metrics: new Registry(), local: shards.map((shard, i) => ({ id: shardConfigs[i]!.shardId, localApi: shard.localApi })) });
      logger.info({ url: router.url, epoch: router.epoch, shards: advertised.map((s) => s.id) }, node.role === 'node' ? 'node listening' : 'router listening');
    }
  } catch (err) {
    logger.fatal({ err }, `${node.role} could not start`);
    process.exit(1);
  }

  // The router stops first (no new appends), then each shard drains what it holds.
  const drainMs = Math.max(10_000, ...shardConfigs.map((c) => c.drainTimeoutMs));
  stopOnSignals({
    logger,
    message: 'stopping',
    deadlineMs: drainMs + 5_000,
    stop: async () => {
      await router?.close();
      await Promise.all(shards.map((s) => s.close()));
    },
  });
}

await main();
