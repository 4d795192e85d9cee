import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { hostedShardConfigs, loadNodeConfig } from './config.ts';

const SECRET = 'node-config-cluster-secret-0123456789abcdef';

test('a node gives each hosted shard its own data directory and, from one SKEIN_SHARD_BACKUP_DIR, its own backup directory', () => {
  const env = { SKEIN_NODE_SHARDS: 'shard-0,shard-1', SKEIN_NODE_DATA_DIR: '/data/skein', SKEIN_CLUSTER_SECRET: SECRET, SKEIN_SHARD_BACKUP_DIR: '/backups/skein' };
  const configs = hostedShardConfigs(loadNodeConfig(env), env);
  assert.deepEqual(
    configs.map((c) => [c.shardId, c.dataDir, c.backupDir]),
    [
      ['shard-0', join('/data/skein', 'shard-0'), join('/backups/skein', 'shard-0')],
      ['shard-1', join('/data/skein', 'shard-1'), join('/backups/skein', 'shard-1')],
    ],
  );
});

test('without SKEIN_SHARD_BACKUP_DIR each hosted shard backs up under its own data directory; a relative root is resolved', () => {
  const env = { SKEIN_NODE_SHARDS: 'shard-0,shard-1', SKEIN_NODE_DATA_DIR: '/data/skein', SKEIN_CLUSTER_SECRET: SECRET };
  assert.deepEqual(
    hostedShardConfigs(loadNodeConfig(env), env).map((c) => c.backupDir),
    [join('/data/skein', 'shard-0', 'backups'), join('/data/skein', 'shard-1', 'backups')],
  );
  const relative = { ...env, SKEIN_SHARD_BACKUP_DIR: 'backups' };
  assert.deepEqual(
    hostedShardConfigs(loadNodeConfig(relative), relative).map((c) => c.backupDir),
    [resolve('backups', 'shard-0'), resolve('backups', 'shard-1')],
  );
});
