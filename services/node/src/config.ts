import { join } from 'node:path';
import { readSettings } from '@skein/http';
import { loadShardConfig, type ShardConfig } from '@skein/shard';

/** What a process started from services/node runs. */
export type Role = 'node' | 'router' | 'shard';

/** The node's own settings; the router's and each shard's are read by their libraries. */
export interface NodeConfig {
  /** `SKEIN_ROLE`, default `node`: the router and the shards of `SKEIN_NODE_SHARDS` in one process; `router` or `shard` alone for split deployments. */
  readonly role: Role;
  /** `SKEIN_NODE_SHARDS`: ids of the shards this node hosts, comma-separated (`shard-0,shard-1,shard-2`). Default none. */
  readonly shards: readonly string[];
  /** `SKEIN_NODE_DATA_DIR` (required with shards): each hosted shard keeps its data in `<dir>/<shard id>`. */
  readonly dataDir: string;
  /**
   * `SKEIN_NODE_SHARD_PORT`, default 0: the hosted shards serve their internal API (for other
   * routers and nodes, probes and Prometheus) on this port and the next ones, one each;
   * 0 = any free port per shard.
   */
  readonly shardPort: number;
  /** `SKEIN_NODE_ADVERTISE_HOST`, default `SKEIN_SHARD_HOST` (127.0.0.1 when that is 0.0.0.0): the host in the hosted shards' URLs in the topology. */
  readonly advertiseHost: string;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Reads and validates the node's settings; reports every violation at once (ConfigError). */
export function loadNodeConfig(env: NodeJS.ProcessEnv): NodeConfig {
  const read = readSettings('node', env);
  const role = read.string('SKEIN_ROLE', 'node');
  if (role !== 'node' && role !== 'router' && role !== 'shard') read.violation(`SKEIN_ROLE must be node, router or shard, got ${JSON.stringify(role)}`);
  const shards = read
    .string('SKEIN_NODE_SHARDS', '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const id of shards) if (!ID_RE.test(id)) read.violation(`SKEIN_NODE_SHARDS entries must match ${ID_RE.source}, got ${JSON.stringify(id)}`);
  if (new Set(shards).size !== shards.length) read.violation('SKEIN_NODE_SHARDS names a shard twice');
  const dataDir = read.string('SKEIN_NODE_DATA_DIR', '');
  if (role === 'node' && shards.length > 0 && !dataDir) read.violation('SKEIN_NODE_DATA_DIR is required when SKEIN_NODE_SHARDS is set');
  const shardHost = read.string('SKEIN_SHARD_HOST', '127.0.0.1');
  const config: NodeConfig = {
    role: role === 'router' || role === 'shard' ? role : 'node',
    shards,
    dataDir,
    shardPort: read.integer('SKEIN_NODE_SHARD_PORT', 0, 0, 65535),
    advertiseHost: read.string('SKEIN_NODE_ADVERTISE_HOST', shardHost === '0.0.0.0' || shardHost === '::' ? '127.0.0.1' : shardHost),
  };
  read.done();
  return Object.freeze(config);
}

/**
 * Each hosted shard's settings: the shard's own (SKEIN_SHARD_*), with its id, data dir and
 * port from the node's. A `SKEIN_SHARD_BACKUP_DIR` given to a node is the root of its
 * shards' backups, each in `<dir>/<shard id>`: a backup directory holds one store's backups
 * (the engine refuses a second store's), as a data directory does.
 */
export function hostedShardConfigs(node: NodeConfig, env: NodeJS.ProcessEnv): ShardConfig[] {
  const backupRoot = env.SKEIN_SHARD_BACKUP_DIR;
  return node.shards.map((id, i) =>
    loadShardConfig(
      {
        ...env,
        SKEIN_SHARD_ID: id,
        SKEIN_SHARD_DATA_DIR: join(node.dataDir, id),
        SKEIN_SHARD_PORT: String(node.shardPort === 0 ? 0 : node.shardPort + i),
        ...(backupRoot ? { SKEIN_SHARD_BACKUP_DIR: join(backupRoot, id) } : {}),
      },
      { redisOptional: true },
    ),
  );
}
