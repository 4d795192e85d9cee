import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, readSettings } from './settings.ts';

test('settings fall back to defaults, and every violation is reported at once', () => {
  const ok = readSettings('demo', { SKEIN_PORT: ' 8081 ', SKEIN_REDIS_URL: 'redis://127.0.0.1:6379' });
  assert.equal(ok.integer('SKEIN_PORT', 8080, 0, 65535), 8081);
  assert.equal(ok.integer('SKEIN_UNSET', 7, 0), 7);
  assert.equal(ok.string('SKEIN_HOST', '127.0.0.1'), '127.0.0.1');
  assert.equal(ok.redisUrl('SKEIN_REDIS_URL'), 'redis://127.0.0.1:6379');
  assert.equal(ok.logLevel(), 'info');
  ok.done();

  const bad = readSettings('demo', { SKEIN_PORT: '70000', SKEIN_TIMEOUT: '-1', SKEIN_REDIS_URL: 'http://x', SKEIN_LOG_LEVEL: 'loud' });
  bad.integer('SKEIN_PORT', 8080, 0, 65535);
  bad.integer('SKEIN_TIMEOUT', 10, 1);
  bad.redisUrl('SKEIN_REDIS_URL');
  bad.required('SKEIN_ID');
  bad.logLevel();
  bad.violation('SKEIN_OTHER is wrong');
  assert.throws(
    () => bad.done(),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^invalid demo configuration:/);
      assert.deepEqual(
        err.violations.map((v) => v.split(' ')[0]),
        ['SKEIN_PORT', 'SKEIN_TIMEOUT', 'SKEIN_REDIS_URL', 'SKEIN_ID', 'SKEIN_LOG_LEVEL', 'SKEIN_OTHER'],
      );
      return true;
    },
  );
});
