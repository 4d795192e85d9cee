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

test('pending-append bounds: defaults, and refused when an append of the largest size could never be admitted', () => {
  const c = loadConfig(base);
  assert.equal(c.maxPendingBytes, 64 * 1024 * 1024);
  assert.equal(c.maxPendingBytesPerShard, 32 * 1024 * 1024);
  assert.equal(c.slowSubscriberMs, 10_000);
  assert.throws(
    () => loadConfig({ ...base, SKEIN_ROUTER_MAX_BODY_BYTES: String(8 * 1024 * 1024), SKEIN_ROUTER_MAX_PENDING_BYTES: String(4 * 1024 * 1024), SKEIN_ROUTER_MAX_PENDING_BYTES_PER_SHARD: String(2 * 1024 * 1024) }),
    (err: unknown) => err instanceof ConfigError && err.violations.length === 2 && err.violations.every((v) => v.startsWith('SKEIN_ROUTER_MAX_PENDING_BYTES')),
  );
  // One append and its routing must fit one shard batch.
  assert.throws(() => loadConfig({ ...base, SKEIN_ROUTER_MAX_BODY_BYTES: String(16 * 1024 * 1024) }), /SKEIN_ROUTER_MAX_BODY_BYTES/);
});

test('the move pause test fail point: off by default, point:ms entries, an unknown point refused', () => {
  assert.deepEqual(loadConfig(base).movePauseBeforeMs, {});
  assert.deepEqual(loadConfig({ ...base, SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS: 'copy:600, flip:1000' }).movePauseBeforeMs, { copy: 600, flip: 1000 });
  assert.throws(
    () => loadConfig({ ...base, SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS: 'fence:600,tail:x' }),
    (err: unknown) => err instanceof ConfigError && err.violations.length === 2 && err.violations.every((v) => v.startsWith('SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS')),
  );
});
