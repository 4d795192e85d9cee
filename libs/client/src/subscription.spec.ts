import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { isSkeinError } from '@skein/protocol';
import { createClient } from './client.ts';
import type { ReconnectInfo } from './subscription.ts';
import type { SkeinEvent } from './types.ts';
import { problem, sseHead, sseMessage, startFakeApi, wireEvent } from './testing/fake-api.ts';
import type { FakeApi, FakeHandler } from './testing/fake-api.ts';

const servers: FakeApi[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function setup(handlers: FakeHandler | FakeHandler[]) {
  const api = await startFakeApi(handlers);
  servers.push(api);
  return { api, client: createClient({ url: api.url, apiKey: 'k'.repeat(40) }) };
}

async function take(iterator: AsyncIterator<SkeinEvent>, n: number): Promise<SkeinEvent[]> {
  const out: SkeinEvent[] = [];
  while (out.length < n) {
    const r = await iterator.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** Resolves when the server sees the client go away. */
function closed(res: import('node:http').ServerResponse): Promise<void> {
  return new Promise((resolve) => res.once('close', () => resolve()));
}

test('yields stream events in order, across heartbeats and multi-line data, as SkeinEvents', async () => {
  const { api, client } = await setup((_req, res) => {
    sseHead(res);
    res.write(sseMessage(1, wireEvent(1, '9007199254740993')));
    res.write(': heartbeat\n\n');
    const pretty = JSON.stringify(wireEvent(2, '9007199254740994', { data: { lines: 'a\nb' } }), null, 2);
    res.write(`event: Happened\nid: 2\n${pretty.split('\n').map((l) => `data: ${l}`).join('\n')}\n\n`);
  });
  const sub = client.subscribeStream('acme', 'order-1', { from: 'end' });
  const events = await take(sub, 2);
  await sub.close();
  assert.deepEqual(events.map((e) => [e.version, e.position]), [[1, 9007199254740993n], [2, 9007199254740994n]]);
  assert.deepEqual(events[1]!.data, { lines: 'a\nb' });
  assert.equal(sub.lastEventId, '2');
  const req = api.requests[0]!;
  assert.equal(req.url, '/v1/tenants/acme/streams/order-1/subscribe?from=end');
  assert.equal(req.headers.accept, 'text/event-stream');
  assert.equal(req.headers['last-event-id'], undefined);
});

test('reconnects with the Last-Event-ID of the last event received and delivers no event twice', async () => {
  const { api, client } = await setup([
    async (_req, res) => {
      sseHead(res);
      res.write(sseMessage(1, wireEvent(1, 10)) + sseMessage(2, wireEvent(2, 11)));
      // Half a message, then the connection breaks.
      res.write('event: Happened\nid: 3\ndata: {"id":');
      await delay(30);
      res.socket?.destroy();
    },
    (_req, res) => {
      sseHead(res);
      // A replay from before the resume point must not reach the consumer again.
      res.write(sseMessage(2, wireEvent(2, 11)) + sseMessage(3, wireEvent(3, 12)) + sseMessage(4, wireEvent(4, 13)));
    },
  ]);
  const reconnects: ReconnectInfo[] = [];
  const sub = client.subscribeStream('acme', 'order-1', { from: 1, reconnectDelayMs: 10, onReconnect: (i) => reconnects.push(i) });
  const events = await take(sub, 4);
  await sub.close();
  assert.deepEqual(events.map((e) => e.version), [1, 2, 3, 4]);
  assert.equal(api.requests.length, 2);
  assert.equal(api.requests[0]!.headers['last-event-id'], undefined);
  assert.equal(api.requests[1]!.headers['last-event-id'], '2');
  assert.equal(api.requests[1]!.query.get('from'), '1');
  assert.equal(reconnects.length, 1);
  assert.equal(reconnects[0]!.lastEventId, '2');
  assert.ok(isSkeinError(reconnects[0]!.error, 'UNAVAILABLE'));
});

test('a subscription started at the end that breaks before any event resumes after the position the server resolved, not at a later end', async () => {
  const { api, client } = await setup([
    (_req, res) => {
      sseHead(res);
      // The server's resolved start (an id with no event), then the connection ends.
      res.write(': connected\n\n');
      res.end('id: 9007199254740992\n\n');
    },
    (_req, res) => {
      sseHead(res);
      res.write(sseMessage('9007199254740993', wireEvent(1, '9007199254740993')));
    },
  ]);
  const sub = client.subscribeCluster({ fromPosition: 'end', reconnectDelayMs: 10 });
  const events = await take(sub, 1);
  await sub.close();
  assert.deepEqual(events.map((e) => e.position), [9007199254740993n]);
  assert.equal(api.requests.length, 2);
  assert.equal(api.requests[0]!.headers['last-event-id'], undefined);
  assert.equal(api.requests[1]!.headers['last-event-id'], '9007199254740992');
});

test('a tenant subscription resumes after the last position, with its filters', async () => {
  const { api, client } = await setup([
    (_req, res) => {
      sseHead(res);
      res.end(sseMessage('9007199254740993', wireEvent(1, '9007199254740993')));
    },
    (_req, res) => {
      sseHead(res);
      res.write(sseMessage('9007199254740995', wireEvent(2, '9007199254740995')));
    },
  ]);
  const sub = client.subscribeTenant('acme', { fromPosition: 9007199254740990n, category: 'order', types: ['A', 'B'], reconnectDelayMs: 10 });
  const events = await take(sub, 2);
  await sub.close();
  assert.deepEqual(events.map((e) => e.position), [9007199254740993n, 9007199254740995n]);
  const first = api.requests[0]!;
  assert.equal(first.path, '/v1/tenants/acme/events/subscribe');
  assert.equal(first.query.get('fromPosition'), '9007199254740990');
  assert.equal(first.query.get('category'), 'order');
  assert.equal(first.query.get('types'), 'A,B');
  assert.equal(api.requests[1]!.headers['last-event-id'], '9007199254740993');
});

test('ends with the error when the stream is deleted, without reconnecting', async () => {
  const { api, client } = await setup(problem(410, 'STREAM_DELETED'));
  const sub = client.subscribeStream('acme', 'order-1', { reconnectDelayMs: 10 });
  await assert.rejects(sub.next(), (e) => isSkeinError(e, 'STREAM_DELETED'));
  assert.equal(api.requests.length, 1);
  assert.deepEqual(await sub.next(), { done: true, value: undefined });
});

test('reconnects after a 503, waiting for its Retry-After, and gives up after maxReconnects', async () => {
  const { api, client } = await setup(problem(503, 'UNAVAILABLE', {}, { 'retry-after': '0.1' }));
  const delays: number[] = [];
  const sub = client.subscribeCluster({ maxReconnects: 2, onReconnect: (i) => delays.push(i.delayMs) });
  await assert.rejects(sub.next(), (e) => isSkeinError(e, 'UNAVAILABLE'));
  assert.equal(api.requests.length, 3);
  assert.equal(api.requests[0]!.path, '/v1/events/subscribe');
  assert.deepEqual(delays, [100, 100]);
});

test('reconnects when nothing arrives within the idle timeout, heartbeats included', async () => {
  const { api, client } = await setup([
    (_req, res) => {
      sseHead(res); // then silence
    },
    (_req, res) => {
      sseHead(res);
      res.write(sseMessage(1, wireEvent(1, 5)));
    },
  ]);
  const sub = client.subscribeStream('acme', 'order-1', { idleTimeoutMs: 150, reconnectDelayMs: 10 });
  const [event] = await take(sub, 1);
  await sub.close();
  assert.equal(event!.version, 1);
  assert.equal(api.requests.length, 2);
});

test('close() ends a pending next() quietly and closes the connection', async () => {
  let gone: Promise<void> | undefined;
  const { client } = await setup((_req, res) => {
    sseHead(res);
    gone = closed(res);
  });
  const sub = client.subscribeStream('acme', 'order-1');
  const pending = sub.next();
  await delay(50);
  await sub.close();
  assert.deepEqual(await pending, { done: true, value: undefined });
  await gone;
  assert.deepEqual(await sub.next(), { done: true, value: undefined });
});

test('breaking out of for-await closes the connection', async () => {
  let gone: Promise<void> | undefined;
  const { client } = await setup((_req, res) => {
    sseHead(res);
    gone = closed(res);
    res.write(sseMessage(1, wireEvent(1, 5)) + sseMessage(2, wireEvent(2, 6)));
  });
  const seen: number[] = [];
  for await (const e of client.subscribeStream('acme', 'order-1')) {
    seen.push(e.version);
    break;
  }
  assert.deepEqual(seen, [1]);
  await gone;
});

test('aborting the signal rejects a pending next() with the reason, also while waiting to reconnect', async () => {
  const { client } = await setup((_req, res) => sseHead(res));
  const controller = new AbortController();
  const sub = client.subscribeStream('acme', 'order-1', { signal: controller.signal });
  const pending = sub.next();
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(pending, (e: Error) => e.name === 'AbortError');

  const down = await setup(problem(503, 'UNAVAILABLE', {}, { 'retry-after': '5' }));
  const controller2 = new AbortController();
  const sub2 = down.client.subscribeTenant('acme', { signal: controller2.signal });
  const pending2 = sub2.next();
  setTimeout(() => controller2.abort(), 100);
  const started = performance.now();
  await assert.rejects(pending2, (e: Error) => e.name === 'AbortError');
  assert.ok(performance.now() - started < 2000);
});
