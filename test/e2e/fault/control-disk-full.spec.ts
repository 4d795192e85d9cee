import assert from 'node:assert/strict';
import { rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSkeinError, type ControlRecord } from '@skein/protocol';
import { openControlRecordStore, openEmbeddedControlStore } from '@skein/shard';
import { fillDisk, mountSmallDisk } from '@skein/testing';

// Issue 8 for the control environments: on a full disk a write to the embedded control
// store or the shard's control records failed inside LMDB's commit, and lmdb-js rejected
// a promise nobody held, so the process exited on the unhandled rejection. Now the write
// is refused with 503 UNAVAILABLE before LMDB sees it, and taken once space returns.

function assertRefusedForSpace(err: unknown): true {
  assert.ok(isSkeinError(err, 'UNAVAILABLE'), `503 UNAVAILABLE, not ${String(err)}`);
  assert.equal(err.status, 503);
  assert.equal(err.details['storage'], 'ENOSPC');
  assert.equal(err.details['retryAfter'], 1);
  return true;
}

test('on a full disk the embedded control store and the control records refuse writes with 503 UNAVAILABLE (storage ENOSPC), change nothing, hand out no position twice, and take writes again once space returns', async (t) => {
  const fs = mountSmallDisk('tmpfs', 8);
  if (typeof fs === 'string') return t.skip(fs);
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  const store = openEmbeddedControlStore(join(fs.dir, 'control'));
  const records = openControlRecordStore(join(fs.dir, 'shard-1'));
  let filler: string | undefined;
  try {
    assert.equal(await store.lockRebuild('t', 10_000), true);
    assert.equal(await store.restore('t', 'm1', [], 'control'), true);
    const shards = await store.ensureShards('m1', [{ id: 'shard-1', url: 'http://127.0.0.1:1' }], 'topology');
    assert.equal(shards.ok, true);
    const before = await store.sequencer.allocate(10, 0n);
    assert.equal(before.last, 10n);
    assert.equal(await records.apply([{ key: 'tenant/a', version: 1, value: { partitions: 1 } }]), 1);

    filler = fillDisk(fs.dir);
    // Written until the headroom the guard allocated before the disk filled is used up.
    const big = 'x'.repeat(64 * 1024);
    let refusedAt = -1;
    for (let i = 0; i < 1000 && refusedAt < 0; i++) {
      const tenant = { tenant: `t${i}`, partitions: 1, retention: {}, createdAt: big, keyId: `k${i}`, digest: String(i).padStart(64, '0') };
      await store.createTenant('m1', tenant).then(
        (r) => assert.equal(r.ok, true),
        (err: unknown) => (refusedAt = i, assertRefusedForSpace(err)),
      );
    }
    assert.ok(refusedAt > 0, 'a tenant was refused for space');
    assert.equal((await store.readTenant(`t${refusedAt}`)).value, null, 'the refused tenant was not written');

    const counter = await store.sequencer.current();
    await assert.rejects(store.sequencer.allocate(5, 0n), assertRefusedForSpace);
    assert.equal(await store.sequencer.current(), counter, 'a refused allocation does not move the counter');

    let recordRefused = false;
    for (let i = 0; i < 1000 && !recordRefused; i++) {
      const record: ControlRecord = { key: `tenant/r${i}`, version: 1, value: { createdAt: big } };
      await records.apply([record]).then(
        () => undefined,
        (err: unknown) => (recordRefused = assertRefusedForSpace(err)),
      );
    }
    assert.ok(recordRefused, 'a control record was refused for space');

    unlinkSync(filler);
    filler = undefined;
    const after = await store.sequencer.allocate(5, 0n);
    assert.equal(after.first, counter + 1n, 'numbering continues after the last range handed out');
    const created = await store.createTenant('m1', { tenant: 'after', partitions: 1, retention: {}, createdAt: 'now', keyId: 'ka', digest: 'f'.repeat(64) });
    assert.equal(created.ok, true);
    assert.equal(await records.apply([{ key: 'tenant/after', version: 1, value: { partitions: 1 } }]), 1);
    assert.deepEqual(unhandled, [], 'no rejection went unhandled');
  } finally {
    process.off('unhandledRejection', onUnhandled);
    if (filler) rmSync(filler, { force: true });
    await records.close();
    await store.close();
    fs.unmount();
  }
});
