export { freePort } from './ports.ts';
export { tempDir } from './temp-dir.ts';
export type { TempDir } from './temp-dir.ts';
export { startRedis } from './redis-server.ts';
export type { RedisServer, StartRedisOptions } from './redis-server.ts';
export { startShardProcess } from './shard-process.ts';
export type { ShardProcess, StartShardOptions } from './shard-process.ts';
