import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlStoreContract, tempDir } from '@skein/testing';
import { openEmbeddedControlStore } from './embedded-control-store.ts';

// The control-store contract against the embedded store: real LMDB in a temp directory.
controlStoreContract('embedded', async () => {
  const dir = await tempDir('skein-control-store-');
  const store = openEmbeddedControlStore(dir.path);
  return {
    store,
    async close() {
      await store.close();
      await dir.remove();
    },
  };
});

test('embedded: every change and the sequencer counter are there after a reopen; a seed raises the counter and never lowers it', async () => {
  const dir = await tempDir('skein-control-store-');
  try {
    const first = openEmbeddedControlStore(dir.path);
    assert.equal(await first.lockRebuild('t', 10_000), true);
    assert.equal(await first.restore('t', 'm1', [], 'skein:control'), true);
    const created = await first.createTenant('m1', { tenant: 'acme', partitions: 2, retention: {}, createdAt: 'now', keyId: 'k1', digest: 'a'.repeat(64) });
    assert.ok(created.ok);
    const range = await first.sequencer.allocate(5, 0n);
    assert.deepEqual(range, { first: 1n, last: 5n });
    first.sequencer.seed(3n);
    assert.equal(await first.readCounter(), 5n, 'a lower seed changes nothing');
    await first.close();

    const second = openEmbeddedControlStore(dir.path);
    assert.equal(await second.readMarker(), 'm1');
    assert.equal((await second.readTenant('acme')).value?.partitions, 2);
    assert.equal((await second.readApiKey('a'.repeat(64))).value?.keyId, 'k1');
    assert.equal(await second.readCounter(), 5n);
    second.sequencer.seed(100n);
    assert.deepEqual(await second.sequencer.allocate(1, 0n), { first: 101n, last: 101n });
    assert.deepEqual(await second.sequencer.allocate(2, 200n), { first: 201n, last: 202n }, 'the floor wins over the counter');
    await second.close();
  } finally {
    await dir.remove();
  }
});
