import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { isSkeinError } from '@skein/protocol';
import { startRedis } from '@skein/testing';
import { createQuotaGate } from './quota.ts';
import { createRedisControlStore } from './redis-control-store.ts';

const outcome = (p: Promise<void>) => p.then(() => 'admitted', (err: unknown) => (isSkeinError(err) ? err.code : String(err)));

test('a quota admits appends in arrival order up to its events per second, in one round trip per tick, and recovers from Redis going away', async () => {
  const server = await startRedis();
  // Fail fast while Redis is away, as the router's client does.
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  redis.on('error', () => undefined);
  const refused: string[] = [];
  const gate = createQuotaGate({ store: createRedisControlStore({ redis }), onRefused: (tenant) => refused.push(tenant) });
  try {
    await new Promise((r) => redis.once('ready', r));

    // Script calls, from Redis's own command statistics.
    const scriptCalls = async () => {
      const info = await redis.info('commandstats');
      return [...info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    await gate.admit('warmup', 8, 1); // loads the script
    const before = await scriptCalls();
    // Start at the beginning of a one-second window of Redis's clock.
    const [, micros] = await redis.time();
    await new Promise((r) => setTimeout(r, 1000 - Number(micros) / 1000 + 20));
    // Same tick, in order: 3 + 4 fit 8; 2 does not; 1 still does; another tenant has its own budget.
    const results = await Promise.all([
      outcome(gate.admit('acme', 8, 3)),
      outcome(gate.admit('acme', 8, 4)),
      outcome(gate.admit('acme', 8, 2)),
      outcome(gate.admit('acme', 8, 1)),
      outcome(gate.admit('other', 8, 8)),
    ]);
    assert.deepEqual(results, ['admitted', 'admitted', 'RATE_LIMITED', 'admitted', 'admitted']);
    assert.equal((await scriptCalls()) - before, 2, 'one script call per tenant per tick');
    assert.deepEqual(refused, ['acme']);
    assert.equal(await outcome(gate.admit('acme', 8, 1)), 'RATE_LIMITED', 'the window is used up');
    await gate.admit('acme', 8, 9).then(
      () => assert.fail('an append larger than the quota was admitted'),
      (err: unknown) => assert.ok(isSkeinError(err, 'VALIDATION_FAILED') && err.details.field === 'events'),
    );
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await outcome(gate.admit('acme', 8, 8)), 'admitted', 'a new window, a new budget');

    await server.kill('SIGKILL');
    assert.equal(await outcome(gate.admit('acme', 8, 1)), 'UNAVAILABLE');
    await server.restart();
    const deadline = Date.now() + 5000;
    let after = 'UNAVAILABLE';
    while (after === 'UNAVAILABLE' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await outcome(gate.admit('acme', 8, 1));
    }
    assert.ok(after === 'admitted' || after === 'RATE_LIMITED', `answers again once Redis is back, no restart (got ${after})`);
  } finally {
    redis.disconnect();
    await server.stop();
  }
});
