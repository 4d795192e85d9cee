import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isSkeinError } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { createRedisSequencer, type RedisSequencer, type RedisSequencerOptions } from './index.ts';

let server: RedisServer;
const open: RedisSequencer[] = [];

before(async () => {
  server = await startRedis({ appendonly: true });
});
after(async () => {
  await Promise.all(open.map((s) => s.close()));
  await server.stop();
});

function sequencer(memberId: string, options: Partial<RedisSequencerOptions> = {}): RedisSequencer {
  const s = createRedisSequencer({ url: server.url, memberId, keyPrefix: `test:${randomUUID()}:`, ...options });
  open.push(s);
  return s;
}

/** Resolves with how long `promise` took to reject with UNAVAILABLE. */
async function unavailableWithin(promise: Promise<unknown>): Promise<number> {
  const started = performance.now();
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isSkeinError(err, 'UNAVAILABLE'), `expected UNAVAILABLE, got ${String(err)}`);
    assert.equal(err.details.retryAfter, 1);
    return true;
  });
  return performance.now() - started;
}

/** Retries `fn` until it resolves; fails after `ms`. */
async function eventually<T>(fn: () => Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

test('with Redis killed, allocate rejects with UNAVAILABLE in well under a second', async () => {
  const trips: boolean[] = [];
  const s = sequencer('s1', { observe: { roundTrip: (_seconds, ok) => trips.push(ok) } });
  const before = await s.allocate(5, 0n);
  const started = performance.now();
  const inFlight = Array.from({ length: 50 }, () => s.allocate(1, 0n).then((r) => r, (err: unknown) => err));
  await server.kill();
  try {
    // Sent before the kill: each either got its answer or fails UNAVAILABLE, promptly.
    for (const outcome of await Promise.all(inFlight)) {
      if (outcome instanceof Error) assert.ok(isSkeinError(outcome, 'UNAVAILABLE'), String(outcome));
    }
    assert.ok(performance.now() - started < 1000);
    const sentAfter = Array.from({ length: 20 }, () => unavailableWithin(s.allocate(1, 0n)));
    for (const ms of await Promise.all(sentAfter)) assert.ok(ms < 1000, `took ${ms} ms`);
    const later = await unavailableWithin(s.allocate(1, 0n));
    assert.ok(later < 1000, `took ${later} ms`);
    await unavailableWithin(s.current());
    assert.ok(trips.includes(false), 'failed round trips reach the observer');
  } finally {
    await server.restart();
  }
  // The same client comes back by itself, with the same epoch (the AOF kept the marker).
  const after = await eventually(() => s.allocate(1, 0n));
  assert.ok(after.first > before.last);
});

test('with Redis hung (SIGSTOP), allocate rejects with UNAVAILABLE after the command timeout', async () => {
  const s = sequencer('s1', { commandTimeoutMs: 200 });
  const before = await s.allocate(1, 0n);
  await server.kill('SIGSTOP');
  try {
    const ms = await unavailableWithin(s.allocate(1, 0n));
    assert.ok(ms >= 150 && ms < 1000, `took ${ms} ms`);
  } finally {
    await server.kill('SIGCONT');
  }
  // The timed-out allocation may have run when Redis resumed: a gap, never a reuse.
  const after = await eventually(() => s.allocate(1, 0n));
  assert.ok(after.first > before.last);
});

test('a sequencer created while Redis is down fails fast, then works once Redis is up, with no new client', async () => {
  await server.kill();
  let s: RedisSequencer;
  try {
    s = sequencer('s1');
    const ms = await unavailableWithin(s.allocate(1, 0n));
    assert.ok(ms < 1000, `took ${ms} ms`);
  } finally {
    await server.restart();
  }
  assert.deepEqual(await eventually(() => s.allocate(1, 0n)), { first: 1n, last: 1n });
});
