import assert from 'node:assert/strict';
import { rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { partitionOf } from '@skein/protocol';
import { fillDisk, mountSmallDisk, startCluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged, type Ack, type Load } from './load.ts';

// Issue 8, item 2: with a shard's data directory full, the shard answered 503 for a
// moment, kept /readyz at 200, then aborted with glibc heap corruption. Now a storage
// fault makes the shard refuse writes with 503 + Retry-After and turn not-ready, it
// stays up, and it takes writes again by itself once space is freed.

const PARTITIONS = 12;
const FAULTED = 'shard-1';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > ms) assert.fail(`${what} within ${ms} ms`);
    await sleep(100);
  }
  return Date.now() - started;
}

async function readyz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('a shard whose disk fills refuses writes with 503 and turns not-ready, stays up, and recovers by itself when space is freed; nothing acknowledged is lost', async (t) => {
  const fs = mountSmallDisk('tmpfs', 48);
  if (typeof fs === 'string') return t.skip(fs);
  const cluster = await startCluster({
    shards: 3,
    shardDataDirs: { [FAULTED]: join(fs.dir, FAULTED) },
    shardEnv: { SKEIN_SHARD_STORAGE_RESERVE_BYTES: String(2 * 1024 * 1024), SKEIN_SHARD_STORAGE_PROBE_INTERVAL_MS: '200' },
  });
  let filler: string | undefined;
  let load: Load | undefined;
  try {
    const tenant = tenantName('disk');
    const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: PARTITIONS } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const info = await call(cluster.url, 'GET', '/v1/admin/cluster', { key: cluster.adminKey });
    const owners = new Map<string, string>();
    for (const s of info.body.shards as { id: string; partitions: string[] }[]) for (const p of s.partitions) owners.set(p, s.id);
    assert.ok(new Set([...owners.entries()].filter(([p]) => p.startsWith(`${tenant}~`)).map(([, s]) => s)).size >= 2, 'partitions span shards');
    const shard = cluster.shards.find((s) => s.name === FAULTED)!;
    const onFaulted = (a: Ack) => owners.get(partitionOf(tenant, PARTITIONS, a.streamId)) === FAULTED;

    load = startWriters({ url: cluster.url, key: cluster.adminKey, tenant, writers: 16, eventBytes: 2000 });
    const acks = () => load!.acks;
    await until('writers acknowledged on every shard', () => acks().filter(onFaulted).length >= 100 && acks().filter((a) => !onFaulted(a)).length >= 100, 60_000);

    filler = fillDisk(fs.dir);
    const notReadyMs = await until('the faulted shard turns not-ready', async () => (await readyz(shard.url)).status === 503, 30_000);
    const notReady = await readyz(shard.url);
    assert.equal(notReady.body['check'], 'storage', JSON.stringify(notReady.body));
    assert.equal(notReady.body['storage'], 'ENOSPC');

    // Let answers of batches committed before the fault arrive, then watch a while.
    await sleep(1000);
    const faultedBefore = acks().filter(onFaulted).length;
    const statusesBefore = { ...load.statuses };
    const append = (streamId: string) =>
      fetch(`${cluster.url}/v1/tenants/${tenant}/streams/${streamId}/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ events: [{ type: 'Probe', data: {} }] }),
      });
    // The other shards take appends: a writer of the load waits on its stream of the
    // faulted shard (it retries until acknowledged), so fresh streams show it.
    let othersDuring = 0;
    const watchUntil = Date.now() + 3000;
    for (let i = 0; Date.now() < watchUntil; i++) {
      const streamId = `other-${i}`;
      if (owners.get(partitionOf(tenant, PARTITIONS, streamId)) === FAULTED) continue;
      const res = await append(streamId);
      assert.equal(res.status, 201, `an append to ${streamId} on another shard: ${res.status} ${await res.text()}`);
      othersDuring++;
    }
    assert.ok(othersDuring >= 20, `the other shards kept acknowledging (${othersDuring} in 3 s)`);
    assert.equal(acks().filter(onFaulted).length, faultedBefore, 'nothing acknowledged on the faulted shard while its disk is full');
    assert.ok((load.statuses['503'] ?? 0) > (statusesBefore['503'] ?? 0), 'the faulted shard answered 503');
    assert.ok(shard.pid !== undefined, 'the faulted shard process is alive');

    // A direct append to one of its partitions: 503 UNAVAILABLE with Retry-After.
    let streamId = 'probe-0';
    for (let i = 1; owners.get(partitionOf(tenant, PARTITIONS, streamId)) !== FAULTED; i++) streamId = `probe-${i}`;
    const refused = await append(streamId);
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after'), 'Retry-After on the refusal');
    assert.equal(((await refused.json()) as { code: string }).code, 'UNAVAILABLE');

    unlinkSync(filler);
    filler = undefined;
    const readyMs = await until('the shard is ready again by itself', async () => (await readyz(shard.url)).status === 200, 20_000);
    const resumedMs = await until('appends to its partitions are acknowledged again', () => acks().filter(onFaulted).length > faultedBefore + 50, 30_000);
    const report = await load.stop();
    load = undefined;
    assert.ok(shard.pid !== undefined, 'the shard process is still alive');
    const metrics = await (await fetch(`${shard.url}/metrics`)).text();
    assert.match(metrics, /skein_shard_storage_faults_total\{[^}]*code="ENOSPC"[^}]*\} [1-9]/);
    assert.match(metrics, /skein_shard_storage_faulted\{[^}]*\} 0/);
    const verified = await verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant }, report);
    console.log(
      `disk full: not ready after ${notReadyMs} ms; ${othersDuring} acknowledged by the other shards in 3 s of fault; ` +
        `ready ${readyMs} ms after freeing, appends resumed after ${readyMs + resumedMs} ms; answers ${JSON.stringify(report.statuses)}; ` +
        `${verified.events} events in ${verified.streams} streams verified`,
    );
  } finally {
    await load?.stop();
    if (filler) rmSync(filler, { force: true });
    await cluster.stop();
    fs.unmount();
  }
});
