// Subscriptions on a node process (router and shards in one process, as `npm start` runs
// them) are woken by the shards' commits, not by polling: with every poll period set to a
// minute, an appended event still reaches a tenant-log and a stream subscriber at once.
// (Polling was the cause of issue 9's subscription lag, p99 2.4 s under the bench's load.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, type SkeinClient, type SkeinEvent, type Subscription } from '@skein/client';
import { startCluster, type Cluster } from '@skein/testing';
import { tenantName } from './support.ts';

/** The router's and the shards' poll periods: far longer than any wait below. */
const POLL_MS = 60_000;
/** How long a delivery may take here: a fraction of one poll period, however slow the machine. */
const WITHIN_MS = POLL_MS / 4;

let cluster: Cluster;
let admin: SkeinClient;

before(async () => {
  cluster = await startCluster({
    topology: 'node',
    shards: 3,
    routerEnv: { SKEIN_ROUTER_POLL_MS: String(POLL_MS) },
    shardEnv: { SKEIN_SHARD_SAFE_POINT_INTERVAL_MS: String(POLL_MS) },
  });
  admin = createClient({ url: cluster.url, apiKey: cluster.adminKey });
});
after(async () => {
  await cluster?.stop();
});

/** The next event of `sub` of type `type`, or a failure after WITHIN_MS. */
async function nextOfType(sub: Subscription, type: string): Promise<SkeinEvent> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${type} event within ${WITHIN_MS} ms (poll periods ${POLL_MS} ms)`)), WITHIN_MS);
  });
  try {
    return await Promise.race([
      (async () => {
        for (;;) {
          const r = await sub.next();
          if (r.done) throw new Error('the subscription ended');
          if (r.value.type === type) return r.value;
        }
      })(),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test('a caught-up tenant-log subscriber on a node process gets each append without waiting for a poll period', async () => {
  const tenant = tenantName('wake');
  const { apiKey } = await admin.admin.createTenant(tenant, { partitions: 6 });
  const client = createClient({ url: cluster.url, apiKey });
  const sub = client.subscribeTenant(tenant, { fromPosition: 0 });
  try {
    // Several rounds, on streams of different partitions (hence shards): each append is
    // delivered while the subscription waits on the watermark hub, caught up.
    for (let i = 0; i < 6; i++) {
      const appended = await client.append(tenant, `order-${i}`, { events: [{ type: `E${i}`, data: i }] });
      const got = await nextOfType(sub, `E${i}`);
      assert.equal(got.position, appended.firstPosition);
    }
  } finally {
    await sub.close();
  }
});

test('a caught-up stream subscriber on a node process gets each append without waiting for a poll period', async () => {
  const tenant = tenantName('wake');
  const { apiKey } = await admin.admin.createTenant(tenant, { partitions: 3 });
  const client = createClient({ url: cluster.url, apiKey });
  await client.append(tenant, 'order', { events: [{ type: 'E0', data: 0 }] });
  const sub = client.subscribeStream(tenant, 'order', { from: 1 });
  try {
    assert.equal((await nextOfType(sub, 'E0')).version, 1);
    for (let i = 1; i < 4; i++) {
      await client.append(tenant, 'order', { events: [{ type: `E${i}`, data: i }] });
      assert.equal((await nextOfType(sub, `E${i}`)).version, i + 1);
    }
  } finally {
    await sub.close();
  }
});
