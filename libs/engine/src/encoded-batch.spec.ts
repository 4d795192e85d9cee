// Records encoded on one thread and put as raw bytes by the commit thread (encoded-batch.ts)
// read back identically through the environment's normal msgpack db, and the other way
// round, across new shared structures and reopens. Real LMDB files, a real commit thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { environmentOptions } from './environment.ts';
import { encodeBatch, putEncodedBatch } from './encoded-batch.ts';
import { startCommitThread } from './commit-writer.ts';
import type { Key } from './keys.ts';

const MAP = 64 * 1024 * 1024;
const openDb = (dir: string) => open<unknown, Key>(environmentOptions(dir, MAP));

/** Records of many shapes (each new shape is a new shared structure), keys of every part kind. */
function records(round: number, count: number): [Key, unknown][] {
  const puts: [Key, unknown][] = [];
  for (let i = 0; i < count; i++) {
    const shape = `f${round}_${i % 7}`;
    puts.push([['p', 'stream', `s-${round}-ü-${i}`, i + 1], { t: 'T', d: { i, text: 'x'.repeat(i * 37), [shape]: [round, i, null, true] }, [shape]: 1.5 * i, pos: BigInt(i) * 4294967296n + 7n }]);
    puts.push([['$global', round, i], [`p-${i}`, `s-${i}`, i, 1]]);
  }
  // One value larger than the first buffer, so the batch grows while it encodes.
  puts.push([['p', 'big', round], { blob: 'y'.repeat(40_000), n: round }]);
  return puts;
}

function assertReadBack(db: RootDatabase<unknown, Key>, puts: [Key, unknown][], what: string): void {
  for (const [key, value] of puts) assert.deepEqual(db.get(key), value, `${what}: ${JSON.stringify(key)}`);
}

test('a batch encoded with the db and put as raw bytes holds exactly the bytes the db itself writes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-encoded-batch-'));
  const other = mkdtempSync(join(tmpdir(), 'skein-encoded-batch-'));
  try {
    // The same records, written once through the db and once as an encoded batch into a
    // second environment, are byte-identical: keys and values.
    const puts = records(1, 40);
    const direct = openDb(dir);
    direct.transactionSync(() => {
      for (const [k, v] of puts) direct.putSync(k, v);
    });
    const viaBatch = openDb(other);
    const raw = open<unknown, Uint8Array>(environmentOptions(other, MAP));
    const batch = encodeBatch(viaBatch, puts);
    raw.transactionSync(() => putEncodedBatch(raw, batch));
    viaBatch.resetReadTxn();
    // Every record but the shared structures (their key is a symbol).
    const entries = (db: RootDatabase<unknown, Key>) => [...db.getKeys({})].filter((k) => Array.isArray(k)).map((k) => [k, db.getBinary(k)]);
    assert.equal(entries(direct).length, puts.length);
    assert.deepEqual(entries(viaBatch), entries(direct));
    assertReadBack(viaBatch, puts, 'encoded batch, same handle');
    await Promise.all([direct.close(), viaBatch.close(), raw.close()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});

test('records written through the commit thread and through the db read back identically, both ways, after reopens', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-encoded-batch-'));
  const writer = startCommitThread({ mapSizeBytes: MAP, testCommitDelayMs: 0 });
  const written: [Key, unknown][] = [];
  try {
    let db = openDb(dir);
    for (let round = 0; round < 6; round++) {
      const puts = records(round, 25);
      if (round % 2 === 0) {
        // Encoded here (new shapes save shared structures from this thread), written there.
        await writer.commit(dir, encodeBatch(db, puts));
        db.resetReadTxn();
      } else {
        db.transactionSync(() => {
          for (const [k, v] of puts) db.putSync(k, v);
        });
      }
      written.push(...puts);
      assertReadBack(db, written, `round ${round}, same handle`);
      if (round % 3 === 2) {
        // A fresh handle loads the structures from the file: nothing only one thread knew.
        await writer.release();
        await db.close();
        db = openDb(dir);
        assertReadBack(db, written, `round ${round}, reopened`);
      }
    }
    await writer.release();
    await db.close();
    const reopened = openDb(dir);
    assertReadBack(reopened, written, 'after the last reopen');
    await reopened.close();
  } finally {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a batch handed to the commit thread is copied through shared memory, one larger than the area moves through the port; both commit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-encoded-batch-'));
  const writer = startCommitThread({ mapSizeBytes: MAP, testCommitDelayMs: 0 });
  try {
    const db = openDb(dir);
    const small = records(0, 3);
    const batch = encodeBatch(db, small);
    const committed = writer.commit(dir, batch);
    assert.ok(batch.byteLength > 0, 'a batch that fits the shared area was transferred, not copied');
    await committed;
    // Over the 1 MiB area: its buffer is transferred (not cloned) instead.
    const large: [Key, unknown][] = [0, 1, 2].map((i) => [['p', 'large', i], { blob: String(i).repeat(500_000) }]);
    const big = encodeBatch(db, large);
    const bigCommitted = writer.commit(dir, big);
    assert.equal(big.byteLength, 0, 'a batch larger than the shared area was cloned, not transferred');
    await bigCommitted;
    // Then a small one again: the area was not disturbed by the port's request.
    const after = records(1, 3);
    await writer.commit(dir, encodeBatch(db, after));
    db.resetReadTxn();
    assertReadBack(db, [...small, ...large, ...after], 'both ways');
    await writer.release();
    await db.close();
  } finally {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
