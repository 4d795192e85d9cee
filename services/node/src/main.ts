// A Skein process: by SKEIN_ROLE, a node (the router and the shards of SKEIN_NODE_SHARDS in
// one process, the router calling its own shards in-process and the others over HTTP), a
// router alone, or a shard alone. Configuration, root logger, metrics registries, signals.
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createTimerJobs, exitOnUncaught, loadOrExit, stopOnSignals, type TimerJobs } from '@skein/http';
import { loadRouterConfig, startRouter, type JobQueues, type RunningRouter } from '@skein/router';
import { ReturnTally, createLocalJobQueues, createShard, loadShardConfig, openEmbeddedControlStore, type EmbeddedControlStore, type Shard, type ShardConfig, type ShardDeps } from '@skein/shard';
import { hostedShardConfigs, loadNodeConfig } from './config.ts';

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

/** Opens a shard (its own engine, batcher, safe point, sequencer state, registry) and serves its internal API. */
async function openShard(config: ShardConfig, logger: Logger, defaultMetrics: boolean, engineOptions: ShardDeps['engineOptions'], control?: EmbeddedControlStore, timerJobs?: TimerJobs): Promise<{ shard: Shard; url: string }> {
  const registry = new Registry();
  registry.setDefaultLabels({ shard: config.shardId });
  // Standard names (process_*, nodejs_*) so stock Node.js dashboards work; once per process.
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  const shard = await createShard(config, { logger: logger.child({ shard: config.shardId }), registry, ...(engineOptions ? { engineOptions } : {}), ...(control ? { control } : {}), ...(timerJobs ? { timerJobs } : {}) });
  // Exclusive: in a node forked by `npm start --nodes N` (a cluster worker) the shard's port is
  // this process's own socket, not one the launcher accepts on and hands over.
  const url = await shard.app.listen({ host: config.host, port: config.port, exclusive: true });
  logger.info({ shard: config.shardId, url, dataDir: config.dataDir, epoch: shard.ownership.epoch, safePoint: shard.safePoint.current().toString() }, 'shard listening');
  return { shard, url };
}

async function main(): Promise<void> {
  const env = process.env;
  const node = loadOrExit(() => loadNodeConfig(env), bootLogger);
  // A node may run without Redis (the embedded control store); a router or shard alone may not.
  const routerConfig = node.role === 'shard' ? null : loadOrExit(() => loadRouterConfig(env, { redisOptional: node.role === 'node' }), bootLogger);
  const shardConfigs = loadOrExit(() => (node.role === 'shard' ? [loadShardConfig(env)] : node.role === 'node' ? hostedShardConfigs(node, env) : []), bootLogger);
  const logger = pino({ level: routerConfig?.logLevel ?? shardConfigs[0]?.logLevel ?? 'info', base: { role: node.role, pid: process.pid }, redact: REDACT });

  // No Redis: the control plane is this process's (embedded control store, maintenance on
  // timers), for the shards it hosts only: another process could share neither the
  // sequencer nor the topology.
  const embedded = routerConfig !== null && routerConfig.redisUrl === null;
  if (embedded) {
    const problem =
      shardConfigs.length === 0
        ? 'SKEIN_NODE_SHARDS is required without SKEIN_REDIS_URL: the embedded control plane serves the shards of this process'
        : routerConfig.shards.some((s) => !node.shards.includes(s.id))
          ? 'SKEIN_ROUTER_SHARDS may name only this node\'s shards without SKEIN_REDIS_URL: the embedded control plane is not shared with other processes'
          : null;
    if (problem) {
      bootLogger.fatal({ problems: [problem] }, 'invalid configuration');
      process.exit(1);
    }
  }
  let control: EmbeddedControlStore | undefined;
  // Maintenance registers its periodic jobs here when there is no Redis (BullMQ's job schedulers otherwise).
  const timerJobs = embedded ? createTimerJobs({ logger: logger.child({ component: 'timer-jobs' }) }) : null;
  const shards: Shard[] = [];
  let router: RunningRouter | undefined;
  let jobs: JobQueues | undefined;
  try {
    if (embedded) {
      const path = join(node.dataDir, 'control');
      control = openEmbeddedControlStore(path);
      logger.info({ controlPlane: 'embedded', path }, 'control plane: embedded (no SKEIN_REDIS_URL): sequencer, tenants, keys and topology in LMDB, maintenance on timers');
    }
    const advertised: { id: string; url: string }[] = [];
    // In a node, each shard commits on a thread of its own (one shard's fdatasync holds
    // neither the router nor the other shards), and its gathering batches count the
    // writers every shard of the node answered (the router sends a writer's next append
    // to whichever shard owns its stream). A shard alone commits inline.
    const engineOptions = node.role === 'node' ? { commitThread: true, returnTally: new ReturnTally() } : undefined;
    for (const [i, config] of shardConfigs.entries()) {
      const opened = await openShard(config, logger, i === 0 && routerConfig === null, engineOptions, control, timerJobs ?? undefined);
      shards.push(opened.shard);
      advertised.push({ id: config.shardId, url: `http://${node.advertiseHost}:${new URL(opened.url).port}` });
    }
    if (routerConfig) {
      // The hosted shards join the topology as any shard would, at the address other
      // routers reach them by; this router calls them in-process.
      const listed = new Set(routerConfig.shards.map((s) => s.id));
      const config = { ...routerConfig, shards: [...routerConfig.shards, ...advertised.filter((s) => !listed.has(s.id))] };
      // No Redis: the admin job endpoints run jobs on the hosted shards' runners, in this process.
      if (embedded) jobs = createLocalJobQueues({ shards: shards.map((shard, i) => ({ id: shardConfigs[i]!.shardId, runner: shard.maintenance.runner, backupDir: shardConfigs[i]!.backupDir, timerRuns: shard.maintenance })), log: logger });
      // The router's registry carries the process's default metrics (createRouterMetrics).
      router = await startRouter(config, { logger: logger.child({ component: 'router' }), metrics: new Registry(), local: shards.map((shard, i) => ({ id: shardConfigs[i]!.shardId, localApi: shard.localApi })), ...(control ? { store: control } : {}), ...(jobs ? { jobs } : {}) });
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
      await jobs?.close();
      await timerJobs?.close();
      await Promise.all(shards.map((s) => s.close()));
      await control?.close();
    },
  });
}

await main();
