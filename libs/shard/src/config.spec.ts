import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './config.ts';

test('loadConfig applies defaults and returns a frozen object', () => {
  const c = loadConfig({ SKEIN_SHARD_ID: 'a', SKEIN_SHARD_DATA_DIR: '/tmp/x', SKEIN_REDIS_URL: 'redis://127.0.0.1:6379', SKEIN_CLUSTER_SECRET: 'c'.repeat(32) });
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 0);
  assert.equal(c.safePointIntervalMs, 50);
  assert.equal(c.testAllocationDelayMs, 0);
  assert.ok(Object.isFrozen(c));
});

test('loadConfig reports every violation at once', () => {
  assert.throws(
    () => loadConfig({ SKEIN_SHARD_PORT: '70000', SKEIN_REDIS_URL: 'http://x', SKEIN_LOG_LEVEL: 'loud' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.violations.join('\n');
      for (const name of ['SKEIN_SHARD_ID', 'SKEIN_SHARD_DATA_DIR', 'SKEIN_SHARD_PORT', 'SKEIN_REDIS_URL', 'SKEIN_CLUSTER_SECRET', 'SKEIN_LOG_LEVEL']) assert.match(text, new RegExp(name));
      assert.equal(err.violations.length, 6);
      return true;
    },
  );
});

test('the body limit covers the largest router batch, and the pending-append bound covers the body limit', () => {
  const env = { SKEIN_SHARD_ID: 'a', SKEIN_SHARD_DATA_DIR: '/tmp/x', SKEIN_REDIS_URL: 'redis://127.0.0.1:6379', SKEIN_CLUSTER_SECRET: 'c'.repeat(32) };
  assert.equal(loadConfig(env).maxPendingBytes, 64 * 1024 * 1024);
  assert.throws(() => loadConfig({ ...env, SKEIN_SHARD_MAX_BODY_BYTES: String(8 * 1024 * 1024) }), /SKEIN_SHARD_MAX_BODY_BYTES/);
  assert.throws(() => loadConfig({ ...env, SKEIN_SHARD_MAX_PENDING_BYTES: String(16 * 1024 * 1024) }), /SKEIN_SHARD_MAX_PENDING_BYTES must be at least/);
});
