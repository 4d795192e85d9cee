import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('a cluster secret shorter than the minimum, or with spaces, is a violation that never quotes the value', () => {
  const good = 's'.repeat(32);
  const ok = readSettings('demo', { SKEIN_CLUSTER_SECRET: good });
  assert.equal(ok.secret('SKEIN_CLUSTER_SECRET', 32), good);
  ok.done();
  for (const value of [undefined, 'short-secret', `${'s'.repeat(32)} with spaces`]) {
    const bad = readSettings('demo', { SKEIN_CLUSTER_SECRET: value });
    bad.secret('SKEIN_CLUSTER_SECRET', 32);
    assert.throws(
      () => bad.done(),
      (err: unknown) => err instanceof ConfigError && /SKEIN_CLUSTER_SECRET is required: at least 32/.test(err.message) && (value === undefined || !err.message.includes(value)),
    );
  }
});

test('Redis settings: credentials stay in the URL, TLS files are read for rediss:// only, and a bad URL is reported without its password', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skein-settings-'));
  try {
    const ca = join(dir, 'ca.pem');
    await writeFile(ca, '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n');
    const plain = readSettings('demo', { SKEIN_REDIS_URL: 'redis://skein:p%40ss@10.0.0.5:6380/0' });
    assert.deepEqual(plain.redis(), { url: 'redis://skein:p%40ss@10.0.0.5:6380/0', options: {} });
    plain.done();

    const tls = readSettings('demo', { SKEIN_REDIS_URL: 'rediss://redis.internal:6380', SKEIN_REDIS_TLS_CA_FILE: ca });
    assert.deepEqual(tls.redis().options, { tls: { ca: await readFile(ca, 'utf8') } });
    tls.done();

    const wrong = readSettings('demo', { SKEIN_REDIS_URL: 'redis://h:6379', SKEIN_REDIS_TLS_CA_FILE: join(dir, 'missing.pem'), SKEIN_REDIS_TLS_CERT_FILE: ca });
    wrong.redis();
    assert.throws(
      () => wrong.done(),
      (err: unknown) =>
        err instanceof ConfigError &&
        /SKEIN_REDIS_TLS_CA_FILE must name a readable PEM file.*ENOENT/.test(err.message) &&
        /SKEIN_REDIS_TLS_\* settings need a rediss:\/\//.test(err.message),
    );
    const halfPair = readSettings('demo', { SKEIN_REDIS_URL: 'rediss://h:6379', SKEIN_REDIS_TLS_CERT_FILE: ca });
    halfPair.redis();
    assert.throws(() => halfPair.done(), /SKEIN_REDIS_TLS_CERT_FILE and SKEIN_REDIS_TLS_KEY_FILE go together/);

    const leaky = readSettings('demo', { SKEIN_REDIS_URL: 'http://admin:hunter2@h:6379' });
    leaky.redis();
    assert.throws(
      () => leaky.done(),
      (err: unknown) => err instanceof ConfigError && err.message.includes('http://***@h:6379') && !err.message.includes('hunter2'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
