// One contract for every ControlStore (@skein/protocol control-store.ts): the Redis one
// (libs/router/src/redis-control-store.spec.ts, a real redis-server) and the embedded one
// (libs/shard/src/embedded-control-store.spec.ts, real LMDB) run these same tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ControlRecord, ControlStore } from '@skein/protocol';

/** A fresh, empty store (no marker) and how to dispose of it. */
export interface ContractStore {
  store: ControlStore;
  close(): Promise<void>;
}

const CONTROL_CHANNEL = 'skein:control';
const REVOKED_CHANNEL = 'skein:apikeys:revoked';
const TOPOLOGY_CHANNEL = 'skein:topology';

const digestOf = (c: string) => c.repeat(64).slice(0, 64);

/** Seeds a fresh store as the rebuild does, with `records`; returns the new marker. */
async function seed(store: ControlStore, records: readonly ControlRecord[] = []): Promise<string> {
  const token = `t-${Math.random()}`;
  assert.equal(await store.lockRebuild(token, 10_000), true);
  const marker = `m-${Math.random()}`;
  assert.equal(await store.restore(token, marker, records, CONTROL_CHANNEL), true);
  return marker;
}

function messages(store: ControlStore, channel: string): Promise<string[]> & { list: string[] } {
  const list: string[] = [];
  const ready = store.subscribe(channel, (m) => list.push(m)).then(() => list);
  return Object.assign(ready, { list });
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  const until = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > until) assert.fail(`${what} did not happen within 3 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Registers the contract's tests for the store `open` makes (`name` goes into each test's name). */
export function controlStoreContract(name: string, open: () => Promise<ContractStore>): void {
  const withStore = (title: string, body: (store: ControlStore) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const { store, close } = await open();
      try {
        await body(store);
      } finally {
        await close();
      }
    });

  withStore('a fresh store holds no marker and refuses every marker-checked change until seeded', async (store) => {
    await store.ping();
    assert.equal(await store.readMarker(), null);
    assert.deepEqual(await store.readTenant('acme'), { value: null, marker: null });
    const refused = await store.createTenant('none', { tenant: 'acme', partitions: 1, retention: {}, createdAt: 'now', keyId: 'k1', digest: digestOf('a') });
    assert.deepEqual(refused, { ok: false, reason: 'stale' });
    assert.deepEqual(await store.ensureShards('none', [{ id: 'a', url: 'http://a' }], TOPOLOGY_CHANNEL), { ok: false, reason: 'stale' });
    assert.equal(await store.readTopology(), null);
    assert.equal(await store.readCounter(), 0n);
    const marker = await seed(store);
    assert.equal(await store.readMarker(), marker);
    assert.deepEqual(await store.createTenant('other', { tenant: 'acme', partitions: 1, retention: {}, createdAt: 'now', keyId: 'k1', digest: digestOf('a') }), { ok: false, reason: 'stale' });
  });

  withStore('a tenant is created once with its first key; versions grow; keys are found by digest with the marker', async (store) => {
    const marker = await seed(store);
    const created = await store.createTenant(marker, { tenant: 'acme', partitions: 4, retention: { maxAge: 60 }, quota: { eventsPerSecond: 10 }, createdAt: '2024-01-01T00:00:00.000Z', keyId: 'k1', digest: digestOf('a') });
    assert.ok(created.ok);
    assert.ok(created.keyVersion > created.tenantVersion && created.tenantVersion >= 1);
    assert.deepEqual(await store.readTenant('acme'), {
      value: { partitions: 4, retention: { maxAge: 60 }, quota: { eventsPerSecond: 10 }, createdAt: '2024-01-01T00:00:00.000Z', version: created.tenantVersion },
      marker,
    });
    assert.deepEqual(await store.readApiKey(digestOf('a')), { value: { tenant: 'acme', keyId: 'k1', version: created.keyVersion }, marker });
    assert.deepEqual(await store.readApiKey(digestOf('b')), { value: null, marker });
    assert.deepEqual(await store.createTenant(marker, { tenant: 'acme', partitions: 1, retention: {}, createdAt: 'x', keyId: 'k9', digest: digestOf('9') }), { ok: false, reason: 'exists' });
    assert.deepEqual(await store.readApiKey(digestOf('9')), { value: null, marker }, 'a refused creation writes nothing');

    assert.deepEqual(await store.mintKey(marker, { tenant: 'nobody', keyId: 'k2', digest: digestOf('c') }), { ok: false, reason: 'no-tenant' });
    const minted = await store.mintKey(marker, { tenant: 'acme', keyId: 'k2', digest: digestOf('c') });
    assert.ok(minted.ok && minted.version > created.keyVersion);
    assert.deepEqual((await store.readApiKey(digestOf('c'))).value, { tenant: 'acme', keyId: 'k2', version: minted.version });
    assert.deepEqual(await store.readKey('acme', 'k2'), { digest: digestOf('c'), revoking: null });
  });

  withStore('a revoked key stops being found at once, is announced, and its tombstone waits until the revocation is finished', async (store) => {
    const marker = await seed(store);
    const revoked = messages(store, REVOKED_CHANNEL);
    await revoked;
    const created = await store.createTenant(marker, { tenant: 'acme', partitions: 1, retention: {}, createdAt: 'now', keyId: 'k1', digest: digestOf('a') });
    assert.ok(created.ok);
    const input = { tenant: 'acme', keyId: 'k1', recordKey: `apikey/${digestOf('a')}`, channel: REVOKED_CHANNEL };
    assert.deepEqual(await store.revokeKey(marker, { ...input, digest: digestOf('b') }), { ok: false, reason: 'changed' });
    assert.deepEqual(await store.revokeKey('other', { ...input, digest: digestOf('a') }), { ok: false, reason: 'stale' });
    const done = await store.revokeKey(marker, { ...input, digest: digestOf('a') });
    assert.ok(done.ok);
    assert.equal(done.tombstone.key, `apikey/${digestOf('a')}`);
    assert.equal(done.tombstone.deleted, true);
    assert.ok(done.tombstone.version > created.keyVersion);
    assert.deepEqual(await store.readApiKey(digestOf('a')), { value: null, marker });
    assert.deepEqual(await store.readKey('acme', 'k1'), { digest: null, revoking: done.tombstone });
    assert.deepEqual(await store.revokeKey(marker, { ...input, digest: digestOf('a') }), { ok: false, reason: 'changed' }, 'twice is not revoked again');
    await eventually('the revocation announcement', () => revoked.list.includes(digestOf('a')));
    await store.finishRevocation('acme', 'k1');
    assert.deepEqual(await store.readKey('acme', 'k1'), { digest: null, revoking: null });
  });

  withStore('the topology lists shards once (a new one bumps the epoch and is announced), and places a group within ±1 of even without moving placed partitions', async (store) => {
    const marker = await seed(store);
    const announced = messages(store, TOPOLOGY_CHANNEL);
    await announced;
    const first = await store.ensureShards(marker, [{ id: 'a', url: 'http://a' }, { id: 'b', url: 'http://b' }], TOPOLOGY_CHANNEL);
    assert.ok(first.ok && first.changed);
    assert.deepEqual(JSON.parse(first.topology), { epoch: 1, shards: [{ id: 'a', url: 'http://a' }, { id: 'b', url: 'http://b' }], placements: {}, version: 1 });
    assert.deepEqual(await store.ensureShards(marker, [{ id: 'a', url: 'http://a' }], TOPOLOGY_CHANNEL), { ok: true, changed: false, topology: first.topology });
    const moved = await store.ensureShards(marker, [{ id: 'a', url: 'http://a2' }], TOPOLOGY_CHANNEL);
    assert.ok(moved.ok && moved.changed);
    assert.equal(JSON.parse(moved.topology).epoch, 1, 'a new URL keeps the epoch');
    await eventually('the epoch announcement', () => announced.list.includes('1'));

    const group = ['p0', 'p1', 'p2', 'p3', 'p4'].map((p) => ({ p, prefs: ['a', 'b'] }));
    assert.deepEqual(await store.placePartitions(marker, 7, group), { ok: false, reason: 'epoch-changed', topology: moved.topology });
    const placed = await store.placePartitions(marker, 1, group);
    assert.ok(placed.ok && placed.changed);
    const placements = JSON.parse(placed.topology).placements as Record<string, string>;
    // 5 over 2 shards: 3 + 2, the first preference while it has room.
    assert.deepEqual(placements, { p0: 'a', p1: 'a', p2: 'a', p3: 'b', p4: 'b' });
    assert.deepEqual(await store.placePartitions(marker, 1, group), { ok: true, changed: false, topology: placed.topology });
    assert.equal(await store.readTopology(), placed.topology);

    const grown = await store.ensureShards(marker, [{ id: 'c', url: 'http://c' }], TOPOLOGY_CHANNEL);
    assert.ok(grown.ok && grown.changed);
    const after = JSON.parse(grown.topology);
    assert.equal(after.epoch, 2);
    assert.deepEqual(after.placements, placements, 'adding a shard moves nothing');
    assert.ok(after.version > JSON.parse(placed.topology).version);
    await eventually('the new epoch announcement', () => announced.list.includes('2'));
    // The least loaded shard (c) takes the remainder of a new group.
    const next = await store.placePartitions(marker, 2, ['q0', 'q1', 'q2', 'q3'].map((p) => ({ p, prefs: ['a', 'b', 'c'] })));
    assert.ok(next.ok);
    const counts: Record<string, number> = {};
    for (const [p, s] of Object.entries(JSON.parse(next.topology).placements as Record<string, string>)) if (p.startsWith('q')) counts[s] = (counts[s] ?? 0) + 1;
    assert.deepEqual(counts, { a: 1, b: 1, c: 2 });
  });

  withStore('with every shard draining nothing is placed; without a topology placing is refused', async (store) => {
    const topology = { epoch: 3, shards: [{ id: 'a', url: 'http://a', state: 'draining' }], placements: {} };
    const marker = await seed(store, [{ key: 'topology', version: 5, value: topology }]);
    const refused = await store.placePartitions(marker, 3, [{ p: 'p0', prefs: ['a'] }]);
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.reason, 'all-draining');
    const other = await open();
    try {
      const m = await seed(other.store);
      assert.deepEqual(await other.store.placePartitions(m, 1, [{ p: 'p0', prefs: ['a'] }]), { ok: false, reason: 'no-topology' });
    } finally {
      await other.close();
    }
  });

  withStore('a rebuild takes the lock once, restores live records only, never lowers the version counter, and runs only while no marker exists', async (store) => {
    const rebuilt = messages(store, CONTROL_CHANNEL);
    await rebuilt;
    assert.equal(await store.lockRebuild('one', 10_000), true);
    assert.equal(await store.lockRebuild('two', 10_000), false, 'held');
    await store.unlockRebuild('two');
    assert.equal(await store.lockRebuild('two', 10_000), false, 'a stranger cannot release it');
    assert.equal(await store.restore('two', 'm2', [], CONTROL_CHANNEL), false, 'nor restore under it');
    const records: ControlRecord[] = [
      { key: 'tenant/acme', version: 40, value: { partitions: 2, retention: {}, createdAt: 'then' } },
      { key: `apikey/${digestOf('a')}`, version: 41, value: { tenant: 'acme', keyId: 'k1' } },
      { key: `apikey/${digestOf('b')}`, version: 42, deleted: true },
      { key: 'topology', version: 43, value: { epoch: 2, shards: [{ id: 'a', url: 'http://a' }], placements: { 'acme.0': 'a' } } },
    ];
    assert.equal(await store.restore('one', 'm1', records, CONTROL_CHANNEL), true);
    assert.equal(await store.readMarker(), 'm1');
    await eventually('the rebuild announcement', () => rebuilt.list.includes('rebuilt'));
    assert.deepEqual(await store.readTenant('acme'), { value: { partitions: 2, retention: {}, createdAt: 'then', version: 40 }, marker: 'm1' });
    assert.deepEqual((await store.readApiKey(digestOf('a'))).value, { tenant: 'acme', keyId: 'k1', version: 41 });
    assert.equal((await store.readApiKey(digestOf('b'))).value, null, 'a tombstone restores nothing');
    assert.deepEqual(await store.readKey('acme', 'k1'), { digest: digestOf('a'), revoking: null });
    assert.deepEqual(JSON.parse((await store.readTopology())!), { epoch: 2, shards: [{ id: 'a', url: 'http://a' }], placements: { 'acme.0': 'a' }, version: 43 });
    const minted = await store.mintKey('m1', { tenant: 'acme', keyId: 'k2', digest: digestOf('c') });
    assert.ok(minted.ok && minted.version > 43, 'versions continue above every restored one');
    assert.equal(await store.lockRebuild('three', 10_000), true, 'the rebuild released the lock');
    assert.equal(await store.restore('three', 'm3', [], CONTROL_CHANNEL), false, 'a marker exists: nothing is written');
    assert.equal(await store.readMarker(), 'm1');
  });

  withStore('a quota admits appends in order while the window has room; refused ones count for nothing; tenants are apart', async (store) => {
    // Start early in a window so that the calls below share it.
    const probe = await store.admitEvents('probe', 1, [1]);
    if (probe.msLeft < 700) await new Promise((r) => setTimeout(r, probe.msLeft + 20));
    const first = await store.admitEvents('acme', 8, [3, 4, 2, 1]);
    assert.deepEqual(first.admitted, [true, true, false, true]);
    assert.ok(first.msLeft > 0 && first.msLeft <= 1000);
    assert.deepEqual((await store.admitEvents('acme', 8, [1])).admitted, [false], 'the window is used up');
    assert.deepEqual((await store.admitEvents('other', 8, [8])).admitted, [true]);
  });

  withStore('announcements reach every subscriber of their channel only', async (store) => {
    const a = messages(store, 'skein:test:a');
    const b = messages(store, 'skein:test:b');
    await Promise.all([a, b]);
    await store.publish('skein:test:a', 'hello');
    await eventually('delivery', () => a.list.length === 1);
    assert.deepEqual(a.list, ['hello']);
    assert.deepEqual(b.list, []);
  });
}
