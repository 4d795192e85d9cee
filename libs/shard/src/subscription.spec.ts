import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { createEngine, type EventStore } from '@skein/engine';
import { startRedis, tempDir, type RedisServer, type TempDir } from '@skein/testing';
import { json, secretHeader, startTestShard, type TestShard } from './testing/test-shard.ts';
import { startSubscription, type SubscriptionSink } from './subscription.ts';

let dir: TempDir;
let engine: EventStore;
before(async () => {
  dir = await tempDir('skein-sub-spec-');
  engine = createEngine({ path: dir.path });
});
after(async () => {
  await engine?.close();
  await dir?.remove();
});

/** A sink that records message ids; `full` makes every write report a full buffer. */
function recorder(options: { full?: boolean } = {}) {
  const ids: string[] = [];
  const sink: SubscriptionSink = {
    write(chunk) {
      const m = /^id: (.*)$/m.exec(chunk);
      if (m) ids.push(m[1]!);
      return !options.full;
    },
    waitDrain: (ms) => new Promise((r) => setTimeout(() => r(false), ms)),
  };
  return { ids, sink };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a stream subscription delivers catch-up then live events with no gap and no duplicate while appends race it', async () => {
  const ev = { type: 'T', data: 1 };
  for (let i = 0; i < 150; i++) await engine.append('subs', 'race-1', { events: [ev] });
  const writers = (async () => {
    for (let i = 0; i < 150; i++) await Promise.all([engine.append('subs', 'race-1', { events: [ev, ev] }), engine.append('subs', 'other-1', { events: [ev] })]);
  })();
  const { ids, sink } = recorder();
  const sub = startSubscription(engine, { kind: 'stream', partition: 'subs', streamId: 'race-1', from: 1 }, sink, { pageSize: 7 });
  await writers;
  await until(() => ids.length >= 450);
  sub.close();
  assert.equal(await sub.done, 'closed');
  assert.deepEqual(ids, Array.from({ length: 450 }, (_, i) => String(i + 1)));
});

test('partition and shard log subscriptions deliver every position once, in order, from the start point', async () => {
  const first = await engine.append('logsub', 'a-1', { events: [{ type: 'T', data: 0 }] });
  assert.ok(first.ok);
  const part = recorder();
  const shard = recorder();
  const p = startSubscription(engine, { kind: 'partition', partition: 'logsub', fromPosition: first.firstPosition }, part.sink, { pageSize: 5 });
  const s = startSubscription(engine, { kind: 'shard', fromPosition: first.firstPosition, types: ['Kept'] }, shard.sink, { pageSize: 5 });
  const expected: string[] = [String(first.firstPosition)];
  const kept: string[] = [];
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const r = await engine.append('logsub', `a-${i % 3}`, { events: [{ type: i % 2 ? 'Kept' : 'Other', data: i }] });
      assert.ok(r.ok);
      expected.push(String(r.firstPosition));
      if (i % 2) kept.push(String(r.firstPosition));
    }),
  );
  const byPos = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : 1);
  await until(() => part.ids.length >= expected.length && shard.ids.length >= kept.length);
  p.close();
  s.close();
  assert.deepEqual(part.ids, expected.sort(byPos));
  assert.deepEqual(shard.ids, kept.sort(byPos));
});

test('a consumer that stops reading is disconnected after slowMs', async () => {
  await engine.append('slow', 'slow-1', { events: [{ type: 'T', data: 1 }] });
  const slow = recorder({ full: true });
  const sub = startSubscription(engine, { kind: 'stream', partition: 'slow', streamId: 'slow-1', from: 1 }, slow.sink, { slowMs: 30 });
  assert.equal(await sub.done, 'slow');

});

let redis: RedisServer;
let t: TestShard;
before(async () => {
  redis = await startRedis();
  t = await startTestShard({ redisUrl: redis.url, env: { SKEIN_SHARD_HEARTBEAT_MS: '50' } });
  await t.shard.app.listen({ port: 0, host: '127.0.0.1' });
});
after(async () => {
  await t?.close();
  await redis?.stop();
});

test('the SSE endpoint streams event/id/data messages with heartbeats, resumes after Last-Event-ID, and refuses a hard-deleted stream with 410', async () => {
  const base = `http://127.0.0.1:${(t.shard.app.server.address() as { port: number }).port}/internal/v1`;
  const append = (data: number) =>
    t.shard.app.inject({ method: 'POST', url: '/internal/v1/partitions/acme/streams/sse-1/events', headers: { ...json, ...secretHeader }, payload: { events: [{ type: 'Happened', data }] } });
  await append(1);
  await append(2);
  const ac = new AbortController();
  const res = await request(`${base}/subscribe?partition=acme&streamId=sse-1`, { headers: { ...secretHeader, 'last-event-id': '1' }, signal: ac.signal });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /text\/event-stream/);
  let text = '';
  const reading = (async () => {
    try {
      for await (const chunk of res.body) text += chunk.toString();
    } catch {
      /* aborted */
    }
  })();
  await append(3);
  await until(() => /id: 3/.test(text) && /: heartbeat/.test(text));
  ac.abort();
  await reading;
  assert.doesNotMatch(text, /id: 1\n/);
  assert.match(text, /event: Happened\nid: 2\ndata: \{[^\n]*"version":2[^\n]*\}\n\n/);
  assert.match(text, /id: 3\n/);

  await t.shard.app.inject({ method: 'DELETE', url: '/internal/v1/partitions/acme/streams/sse-1?mode=hard', headers: secretHeader });
  const gone = await request(`${base}/subscribe?partition=acme&streamId=sse-1`, { headers: secretHeader });
  assert.equal(gone.statusCode, 410);
  assert.equal(((await gone.body.json()) as { code: string }).code, 'STREAM_DELETED');
});
