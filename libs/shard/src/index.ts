// The shard as a library: its engine, safe point, ownership and internal HTTP API.
export { createShardApp, INTERNAL_PREFIX } from './app.ts';
export { defaultShardAppOptions, type RouteContext, type ShardAppDeps, type ShardAppOptions } from './context.ts';
export { loadConfig as loadShardConfig, type ShardConfig } from './config.ts';
export { createShard, type Shard, type ShardDeps } from './shard.ts';
export { ReturnTally } from '@skein/engine';
export { openEmbeddedControlStore, type EmbeddedControlStore, type EmbeddedSequencer } from './embedded-control-store.ts';
export { openControlRecordStore, type ControlRecordStore } from './control-records.ts';
export { createLocalShardApi, type ShardCore } from './local-api.ts';
export { createLocalJobQueues, defaultLocalJobQueuesOptions, type LocalJobQueuesDeps, type LocalJobQueuesOptions, type LocalJobShard } from './jobs/local-job-queues.ts';
