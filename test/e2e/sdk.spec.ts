// End to end through the client SDK and the `skein` CLI, against real processes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createClient, isSkeinError, type SkeinClient } from '@skein/client';
import { startCluster, type Cluster } from '@skein/testing';
import { tenantName } from './support.ts';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../libs/client/bin/skein.mjs', import.meta.url));

let cluster: Cluster;
let admin: SkeinClient;

before(async () => {
  cluster = await startCluster({ shards: 3, routers: 1 });
  admin = createClient({ url: cluster.url, apiKey: cluster.adminKey });
});
after(async () => {
  await cluster?.stop();
});

async function tenantClient(partitions = 1): Promise<{ tenant: string; client: SkeinClient }> {
  const tenant = tenantName('sdk');
  const created = await admin.admin.createTenant(tenant, { partitions });
  return { tenant, client: createClient({ url: cluster.url, apiKey: created.apiKey }) };
}

test('the SDK appends, reads, pages and gets typed errors by code', async () => {
  const { tenant, client } = await tenantClient();
  const r = await client.append(tenant, 'order-1', { expectedVersion: 'no_stream', events: [{ type: 'Placed', data: { n: 1 } }, { type: 'Paid', data: null }] });
  assert.equal(r.firstVersion, 1);
  assert.equal(typeof r.firstPosition, 'bigint');
  await assert.rejects(
    client.append(tenant, 'order-1', { expectedVersion: 0, events: [{ type: 'X', data: 1 }] }),
    (err: unknown) => isSkeinError(err, 'WRONG_EXPECTED_VERSION') && err.details.actual === 2 && err.details.expected === 0,
  );
  const dup = await client.append(tenant, 'order-1', { idempotencyKey: 'k-1', events: [{ type: 'C', data: 3 }] });
  const again = await client.append(tenant, 'order-1', { idempotencyKey: 'k-1', events: [{ type: 'C', data: 3 }] });
  assert.deepEqual(again, { ...dup, duplicate: true });
  const all = [];
  for await (const e of client.streamEvents(tenant, 'order-1', { pageSize: 1 })) all.push(e.version);
  assert.deepEqual(all, [1, 2, 3]);
  await assert.rejects(client.readStream(tenant, 'missing'), (err: unknown) => isSkeinError(err, 'STREAM_NOT_FOUND'));
  assert.equal(await client.latestSnapshot(tenant, 'order-1'), null);
  await client.putSnapshot(tenant, 'order-1', 3, { total: 3 });
  assert.deepEqual(await client.latestSnapshot(tenant, 'order-1'), { version: 3, data: { total: 3 } });
  await client.putStreamMetadata(tenant, 'order-1', { maxCount: 1 });
  assert.deepEqual((await client.readStream(tenant, 'order-1')).events.map((e) => e.version), [3]);
  await client.deleteStream(tenant, 'order-1', { mode: 'hard' });
  await assert.rejects(client.readStream(tenant, 'order-1'), (err: unknown) => isSkeinError(err, 'STREAM_DELETED'));
  const other = await tenantClient();
  await assert.rejects(other.client.readStream(tenant, 'x'), (err: unknown) => isSkeinError(err, 'FORBIDDEN'));
  await assert.rejects(admin.admin.createTenant(tenant), (err: unknown) => isSkeinError(err, 'TENANT_EXISTS'));
});

test('an SDK tenant subscription delivers every event once, in order, equal to the stored log', async () => {
  const { tenant, client } = await tenantClient(3);
  const sub = client.subscribeTenant(tenant, { fromPosition: 0 });
  const writes = Promise.all(Array.from({ length: 60 }, (_, i) => client.append(tenant, `order-${i % 7}`, { events: [{ type: 'A', data: i }] })));
  const got: bigint[] = [];
  for await (const e of sub) {
    got.push(e.position);
    if (got.length === 60) break;
  }
  await writes;
  const stored = [];
  for await (const e of client.tenantLogEvents(tenant)) stored.push(e.position);
  assert.deepEqual(got, stored);
  assert.equal(new Set(got).size, 60);
});

test('a subscription from the end delivers only what is appended after it starts, across partitions on all shards', async () => {
  const { tenant, client } = await tenantClient(6);
  const before = await Promise.all(Array.from({ length: 30 }, (_, i) => client.append(tenant, `early-${i}`, { events: [{ type: 'Early', data: i }] })));
  const sub = client.subscribeTenant(tenant, { fromPosition: 'end' });
  const got: string[] = [];
  const receiving = (async () => {
    for await (const e of sub) {
      got.push(e.type);
      if (e.type === 'Late') break;
    }
  })();
  // The subscription has started once it delivers a probe appended after it.
  let probe = 0;
  while (got.length === 0) {
    await client.append(tenant, `probe-${probe++}`, { events: [{ type: 'Probe', data: null }] });
    await new Promise((r) => setTimeout(r, 50));
  }
  await client.append(tenant, 'late', { events: [{ type: 'Late', data: null }] });
  await receiving;
  assert.equal(before.length, 30);
  assert.deepEqual(got.filter((t) => t !== 'Probe'), ['Late'], 'nothing acknowledged before the subscription started');
});

/** The first SSE block of a subscription that is not a comment, read over a raw connection, which is then closed. */
async function firstBlock(path: string, apiKey: string, lastEventId?: string): Promise<string> {
  const controller = new AbortController();
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
  // Bounded: a subscription that sends nothing but heartbeats fails here, not at the runner's timeout.
  const timer = setTimeout(() => controller.abort(new Error(`no block other than a comment within 10 s from ${path}`)), 10_000);
  const res = await fetch(`${cluster.url}${path}`, { headers, signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const chunk = await reader.read();
      assert.ok(!chunk.done, `the subscription ended before its first block: ${JSON.stringify(buffer)}`);
      buffer += decoder.decode(chunk.value, { stream: true });
      for (let i: number; (i = buffer.indexOf('\n\n')) >= 0; ) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (!block.startsWith(':')) return block;
      }
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

test('a subscription from the end first says where it began (an id without an event); a reconnect with it gets what was appended meanwhile', async () => {
  const tenant = tenantName('sdk-end');
  const { apiKey } = await admin.admin.createTenant(tenant, { partitions: 3 });
  const client = createClient({ url: cluster.url, apiKey });
  let last = 0n;
  for (let v = 0; v < 3; v++) last = (await client.append(tenant, 'order', { expectedVersion: v === 0 ? 'no_stream' : v, events: [{ type: 'A', data: v }] })).lastPosition;
  const streamPath = `/v1/tenants/${tenant}/streams/order/subscribe?from=end`;
  const logPath = `/v1/tenants/${tenant}/events/subscribe?fromPosition=end`;
  assert.equal(await firstBlock(streamPath, apiKey), 'id: 3');
  const logStart = await firstBlock(logPath, apiKey);
  assert.match(logStart, /^id: [0-9]+$/);
  const resumeAt = BigInt(logStart.slice(4));
  assert.ok(resumeAt >= last, `the log subscription began at ${resumeAt}, below the last append's position ${last}`);
  // Appended while no subscriber is connected: a reconnect from where `end` was gets it.
  const missed = await client.append(tenant, 'order', { expectedVersion: 3, events: [{ type: 'Missed', data: null }] });
  assert.match(await firstBlock(streamPath, apiKey, '3'), /^event: Missed\nid: 4\n/);
  assert.match(await firstBlock(logPath, apiKey, String(resumeAt)), new RegExp(`^event: Missed\\nid: ${missed.firstPosition}\\n`));
});

test('idle subscriptions cost the shards the same whether one or thirty are open', async () => {
  const { tenant, client } = await tenantClient(3);
  // Safe-point requests the shards have answered, from their request histograms.
  const safePointCalls = async () => {
    let n = 0;
    for (const s of cluster.shards) {
      const text = await fetch(`${s.url}/metrics`).then((r) => r.text());
      for (const line of text.split('\n')) if (line.startsWith('skein_shard_http_request_duration_seconds_count') && line.includes('safe-point')) n += Number(line.split(' ').pop());
    }
    return n;
  };
  const rate = async () => {
    await new Promise((r) => setTimeout(r, 500));
    const before = await safePointCalls();
    await new Promise((r) => setTimeout(r, 1000));
    return (await safePointCalls()) - before;
  };
  const open = (k: number) =>
    Array.from({ length: k }, () => {
      const sub = client.subscribeTenant(tenant, { fromPosition: 'end' });
      const done = (async () => {
        for await (const _e of sub);
      })().catch(() => undefined);
      return { sub, done };
    });
  const subs = open(1);
  const one = await rate();
  subs.push(...open(30));
  const thirty = await rate();
  for (const s of subs) s.sub.close();
  await Promise.all(subs.map((s) => s.done));
  assert.ok(one > 0, 'a waiting subscription keeps watching the safe points');
  assert.ok(thirty < one * 2 + 30, `thirty idle subscriptions made ${thirty} safe-point requests in a second, one made ${one}`);
});

test('a tenant subscription rides out a shard outage: it resumes with Last-Event-ID and ends up equal to the stored log', async () => {
  const { tenant, client } = await tenantClient(3);
  const info = await admin.admin.getTenant(tenant);
  const placement = info?.placement as Record<string, string>;
  const victim = cluster.shards.find((s) => s.name === placement[`${tenant}~0`])!;
  let reconnects = 0;
  const sub = client.subscribeTenant(tenant, { fromPosition: 0, reconnectDelayMs: 50, maxReconnectDelayMs: 200, onReconnect: () => void reconnects++ });
  const got: bigint[] = [];
  let stopAt = Infinity;
  const receiving = (async () => {
    for await (const e of sub) {
      got.push(e.position);
      if (got.length >= stopAt) break;
    }
  })();
  let acknowledged = 0;
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      try {
        await client.append(tenant, `order-${i % 12}`, { events: [{ type: 'A', data: i }] });
        acknowledged++;
      } catch (err) {
        assert.ok(isSkeinError(err, 'UNAVAILABLE'), String(err)); // the stopped shard's partition
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 400));
  await victim.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 800));
  await victim.restart();
  await new Promise((r) => setTimeout(r, 600));
  writing = false;
  await writer;
  const stored: bigint[] = [];
  for await (const e of client.tenantLogEvents(tenant)) stored.push(e.position);
  assert.ok(stored.length >= acknowledged && acknowledged > 20, `${acknowledged} acknowledged, ${stored.length} stored`);
  stopAt = stored.length;
  if (got.length < stopAt) await receiving;
  else sub.close();
  assert.deepEqual(got, stored, 'every stored event once, in position order, across the outage');
  assert.ok(reconnects >= 1, 'the outage ended the subscription and the client resumed it');
});

test('the skein CLI creates a tenant, appends, reads and shows the cluster, with --json and helpful errors', async () => {
  const env = { ...process.env, SKEIN_URL: cluster.url, SKEIN_API_KEY: cluster.adminKey };
  const tenant = tenantName('cli');
  const created = JSON.parse((await run(process.execPath, [CLI, '--json', 'tenant', 'create', tenant], { env })).stdout);
  assert.equal(created.tenant, tenant);
  const tenantEnv = { ...env, SKEIN_API_KEY: created.apiKey };
  const appended = JSON.parse((await run(process.execPath, [CLI, '--json', 'append', tenant, 'order-1', '{"type":"Placed","data":{"n":1}}'], { env: tenantEnv })).stdout);
  assert.equal(appended.firstVersion, 1);
  const read = (await run(process.execPath, [CLI, '--json', 'read', tenant, 'order-1'], { env: tenantEnv })).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(read.map((e) => [e.type, e.version]), [['Placed', 1]]);
  const status = JSON.parse((await run(process.execPath, [CLI, '--json', 'status'], { env })).stdout);
  assert.equal(status.shards.length, 3);
  await assert.rejects(run(process.execPath, [CLI, 'append', tenant, 'order-1', '--expected-version', '0', '{"type":"X","data":1}'], { env: tenantEnv }), (err: any) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /WRONG_EXPECTED_VERSION/);
    assert.doesNotMatch(err.stderr, /\n\s+at /, 'no stack trace');
    return true;
  });
});
