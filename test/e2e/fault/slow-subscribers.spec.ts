import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged, type LoadReport } from './load.ts';

// Issue 8, item 6 (subscribers): 50 SSE clients that never read were never disconnected,
// and appends ran five times slower while they were there. A subscription whose socket
// stays backed up past SKEIN_ROUTER_SLOW_SUBSCRIBER_MS (default 10 s) is now closed by
// the server and counted; while backed up, it reads nothing more.

const SUBSCRIBERS = 50;
/**
 * Longer than the default here: the first subscribers back up seconds before the last
 * (catching up 50 times over takes the router 12 to 15 s on 2 cores), and every one must
 * still be connected while appends are measured.
 */
const SLOW_SUBSCRIBER_MS = 30_000;
const WINDOW_MS = 5000;

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ shards: 2, routerEnv: { SKEIN_ROUTER_SLOW_SUBSCRIBER_MS: String(SLOW_SUBSCRIBER_MS) } });
});
after(async () => {
  await cluster?.stop();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${cluster.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** 16 writers for a fixed window: acknowledged appends per second. */
async function appendRate(tenant: string, prefix: string): Promise<{ perSecond: number; report: LoadReport }> {
  const load = startWriters({ url: cluster.url, key: cluster.adminKey, tenant, writers: 16, streamPrefix: prefix });
  const started = Date.now();
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const report = await load.stop();
  return { perSecond: report.acks.length / ((Date.now() - started) / 1000), report };
}

/** An SSE subscription over a raw socket that never reads a byte of the answer. */
function stalledSubscriber(path: string, key: string): Socket {
  const { hostname, port } = new URL(cluster.url);
  const socket = connect({ host: hostname, port: Number(port) });
  socket.pause();
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${key}\r\naccept: text/event-stream\r\n\r\n`);
  return socket;
}

test('50 subscribers that never read are disconnected by the server, and appends do not slow down meanwhile', async () => {
  const tenant = tenantName('slow');
  const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: 4 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  // About 10 MB in the tenant log: more than a socket's buffers hold, so a subscriber
  // catching up from the start backs up at once.
  const prefill = startWriters({ url: cluster.url, key: cluster.adminKey, tenant, writers: 16, eventBytes: 2000, streamPrefix: 'fill' });
  while (prefill.acks.length < 5000) await new Promise((r) => setTimeout(r, 100));
  const filled = await prefill.stop();

  const without = await appendRate(tenant, 'a');

  const cutBefore = await metric('skein_router_slow_subscribers_disconnected_total');
  const opened = Date.now();
  const subscribers = Array.from({ length: SUBSCRIBERS }, () => stalledSubscriber(`/v1/tenants/${tenant}/events/subscribe?fromPosition=0`, cluster.adminKey));
  // Until every one has backed up: the router stops reading for them (events read stop growing).
  let read = await metric('skein_router_events_read_total');
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await metric('skein_router_events_read_total');
    if (now === read && now > 0) break;
    read = now;
  }
  const backedUpAfterMs = Date.now() - opened;
  assert.equal(await metric('skein_router_subscriptions{kind="tenant"}'), SUBSCRIBERS, 'the subscribers are connected while appends are measured');

  const withThem = await appendRate(tenant, 'b');
  const connectedThroughout = await metric('skein_router_subscriptions{kind="tenant"}');

  let cut = (await metric('skein_router_slow_subscribers_disconnected_total')) - cutBefore;
  // Each was backed up by backedUpAfterMs; the server closes it one grace period later
  // (its watchdog looks once a second).
  const bound = backedUpAfterMs + SLOW_SUBSCRIBER_MS + 5000;
  while (cut < SUBSCRIBERS && Date.now() - opened < bound + 5000) {
    await new Promise((r) => setTimeout(r, 250));
    cut = (await metric('skein_router_slow_subscribers_disconnected_total')) - cutBefore;
  }
  const cutAfterMs = Date.now() - opened;
  // The reference brackets the measured window (before the subscribers came and after they
  // were cut), so a machine whose speed drifts during the test does not decide the ratio.
  const afterThem = await appendRate(tenant, 'c');
  const reference = (without.perSecond + afterThem.perSecond) / 2;
  console.log(
    `slow subscribers: appends/s before ${without.perSecond.toFixed(0)}, with ${SUBSCRIBERS} stalled subscribers ${withThem.perSecond.toFixed(0)}, after ${afterThem.perSecond.toFixed(0)} ` +
      `(ratio ${(withThem.perSecond / reference).toFixed(2)}); backed up after ${backedUpAfterMs} ms; all ${cut} disconnected ${cutAfterMs} ms after subscribing`,
  );
  // Issue 8 saw appends five times slower (a ratio of 0.2). The bound sits well above that and
  // below what a shared 2-core machine does to a 5 s throughput window on its own (ratios of
  // 0.46 to 2.04 were seen at load average 7 to 9; 0.83 to 0.97 on a quiet machine).
  assert.ok(withThem.perSecond >= 0.5 * reference, `appends/s fell from ${reference.toFixed(0)} (before and after) to ${withThem.perSecond.toFixed(0)} with stalled subscribers`);
  assert.equal(connectedThroughout, SUBSCRIBERS, 'subscribers were cut before their grace period ended');
  assert.equal(cut, SUBSCRIBERS, `only ${cut} of ${SUBSCRIBERS} stalled subscribers were disconnected`);
  assert.ok(cutAfterMs <= bound, `the last subscriber was disconnected ${cutAfterMs} ms after subscribing (bound ${bound} ms)`);
  assert.equal(await metric('skein_router_subscriptions{kind="tenant"}'), 0);

  // Reading now, each client gets what its socket held, then the end the server sent.
  const ends = await Promise.all(
    subscribers.map(
      (s) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 10_000);
          s.once('close', () => {
            clearTimeout(timer);
            resolve(true);
          });
          s.on('data', () => {});
          s.resume();
        }),
    ),
  );
  assert.equal(ends.filter(Boolean).length, SUBSCRIBERS, 'a disconnected subscriber socket did not end');

  await verifyAcknowledged(
    { url: cluster.url, key: cluster.adminKey, tenant },
    { ...withThem.report, acks: [...filled.acks, ...without.report.acks, ...withThem.report.acks, ...afterThem.report.acks] },
  );
});
