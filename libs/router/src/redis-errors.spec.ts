import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis } from '@skein/testing';
import { fromRedisFailure } from './redis-errors.ts';

const failureOf = (p: Promise<unknown>) => p.then(() => assert.fail('expected a failure'), (err: unknown) => err);

test('every way the router’s Redis client fails for want of Redis becomes UNAVAILABLE with retryAfter; a bad command stays unclassified (INTERNAL)', async () => {
  const server = await startRedis();
  // As the router configures its client: fail fast, reconnect in the background.
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 300, retryStrategy: () => 50 });
  redis.on('error', () => undefined);
  try {
    await new Promise((r) => redis.once('ready', r));

    await redis.set('a-string', 'x');
    const wrongType = await failureOf(redis.hgetall('a-string'));
    assert.equal(fromRedisFailure(wrongType), null, 'WRONGTYPE is a bug, not an outage');

    // Hung server: the command times out.
    await server.kill('SIGSTOP');
    const timedOut = await failureOf(redis.get('k'));
    await server.kill('SIGCONT');
    assert.equal(fromRedisFailure(timedOut)?.code, 'UNAVAILABLE', String(timedOut));

    // Killed with a command in flight, then down: the connection closes, then nothing can be sent.
    await server.kill('SIGSTOP');
    const inFlight = failureOf(redis.multi().hgetall('h').get('m').exec());
    await server.kill('SIGKILL');
    const closed = await inFlight;
    assert.equal(fromRedisFailure(closed)?.code, 'UNAVAILABLE', String(closed));
    while (redis.status === 'ready') await new Promise((r) => setTimeout(r, 10));
    const offline = await failureOf(redis.get('k'));
    const e = fromRedisFailure(offline);
    assert.equal(e?.code, 'UNAVAILABLE', String(offline));
    assert.equal(e?.details.retryAfter, 1);
    assert.equal(e?.cause, offline);
  } finally {
    redis.disconnect();
    await server.stop();
  }
});
