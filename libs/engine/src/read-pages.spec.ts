import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, type EventStore } from './index.ts';

const MB_STRING = 'x'.repeat(1_000_000);
const COUNT = 24;

async function withLargeEvents(fn: (e: EventStore) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'skein-pages-'));
  const e = createEngine({ path: dir, storageReserveBytes: 1024 * 1024 });
  try {
    for (let i = 0; i < COUNT; i++) {
      const r = await e.append('acme', `big-${i % 3}`, { events: [{ type: 'Big', data: { i, blob: MB_STRING } }] });
      assert.equal(r.ok, true);
    }
    fn(e);
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a log read of 1 MB events with limit 1000 answers pages within the byte budget, and paging reaches every event once', () =>
  withLargeEvents((e) => {
    const seen: bigint[] = [];
    let from = 0n;
    let pages = 0;
    for (;;) {
      const page = e.readPartitionLog('acme', { fromPosition: from, limit: 1000 });
      if (page.events.length === 0) break;
      pages++;
      assert.ok(page.events.length <= 4, `a 4 MiB page holds at most 4 events of 1 MB, got ${page.events.length}`);
      for (const ev of page.events) seen.push(ev.position);
      from = page.next;
    }
    assert.deepEqual(seen, Array.from({ length: COUNT }, (_, i) => BigInt(i + 1)));
    assert.ok(pages >= COUNT / 4);
    const shard = e.readShardLog({ limit: 1000 });
    assert.ok(shard.events.length >= 1 && shard.events.length <= 4);
  }));

test('a stream read of 1 MB events pages forward and backward by bytes, with next pointing at the first event left out', () =>
  withLargeEvents((e) => {
    const forward: number[] = [];
    for (let from: number | null = 1; from !== null; ) {
      const page = e.readStream('acme', 'big-0', { from, limit: 1000, maxBytes: 2_500_000 });
      assert.equal(page.ok, true);
      if (!page.ok) return;
      assert.ok(page.events.length <= 2);
      forward.push(...page.events.map((x) => x.version));
      from = page.next;
    }
    assert.deepEqual(forward, Array.from({ length: COUNT / 3 }, (_, i) => i + 1));
    const backward: number[] = [];
    for (let from: number | null = COUNT / 3; from !== null; ) {
      const page = e.readStream('acme', 'big-0', { from, direction: 'backward', limit: 1000, maxBytes: 2_500_000 });
      if (!page.ok) return assert.fail('read failed');
      backward.push(...page.events.map((x) => x.version));
      from = page.next;
    }
    assert.deepEqual(backward, forward.slice().reverse());
  }));

test('a page holds one event even when that event alone passes the budget', () =>
  withLargeEvents((e) => {
    const page = e.readStream('acme', 'big-1', { limit: 1000, maxBytes: 10 });
    if (!page.ok) return assert.fail('read failed');
    assert.deepEqual(page.events.map((x) => x.version), [1]);
    assert.equal(page.next, 2);
    const log = e.readPartitionLog('acme', { fromPosition: 5n, maxBytes: 10 });
    assert.deepEqual(log.events.map((x) => x.position), [5n]);
    assert.equal(log.next, 6n);
  }));
