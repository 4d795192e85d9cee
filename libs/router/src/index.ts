// The router as a library: the public API's app and what a process needs to wire it.
export { createRouterApp } from './app.ts';
export type { RouteContext, RouterDeps, RouterOptions } from './context.ts';
export { loadConfig as loadRouterConfig, type RouterConfig } from './config.ts';
export { createShardPeers } from './control-peers.ts';
export { createControlPlane, type ControlPlane } from './control-plane.ts';
export { createRegistry, type Registry } from './registry.ts';
export { createRedisControlStore } from './redis-control-store.ts';
export { CONTROL } from './control-keys.ts';
export { createShardClient, type ShardClientDeps, type Shards } from './shard-client.ts';
export { createRouterTopology, type RouterTopology } from './topology.ts';
export { startRouter, type LocalShard, type RunningRouter } from './start.ts';
export { createClusterAdmin } from './moves/cluster-admin.ts';
export { planMoves, type MoveRecord, type MoveState, type MovePlan, type MoveCoordinator } from './moves/coordinator.ts';
export { createBullJobQueues, type JobQueues, type EnqueuedJob } from './jobs.ts';
