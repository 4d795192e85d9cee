import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './config.ts';

const base = { SKEIN_REDIS_URL: 'redis://127.0.0.1:6379', SKEIN_ADMIN_KEY: 'k'.repeat(32), SKEIN_CLUSTER_SECRET: 'c'.repeat(32) };

test('reads defaults and shard lists, and freezes the result', () => {
  const c = loadConfig({ ...base, SKEIN_ROUTER_SHARDS: 'a=http://127.0.0.1:1/, b=http://127.0.0.1:2' });
  assert.equal(c.port, 8080);
  assert.equal(c.maxBodyBytes, 4 * 1024 * 1024);
  assert.deepEqual(c.shards, [{ id: 'a', url: 'http://127.0.0.1:1' }, { id: 'b', url: 'http://127.0.0.1:2' }]);
  assert.equal(c.clusterSecret, 'c'.repeat(32));
  assert.deepEqual(c.redisOptions, {});
  assert.ok(Object.isFrozen(c));
});

test('reports every violation at once', () => {
  assert.throws(
    () => loadConfig({ SKEIN_ADMIN_KEY: 'short', SKEIN_ROUTER_PORT: 'x', SKEIN_ROUTER_SHARDS: 'nourl' }),
    (err: unknown) => err instanceof ConfigError && err.violations.length === 5 && err.violations.some((v) => v.startsWith('SKEIN_CLUSTER_SECRET')),
  );
});
