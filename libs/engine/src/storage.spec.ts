import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isSkeinError, type RecordedEvent } from '@skein/protocol';
import { fillDisk, mountSmallDisk, runQuietly } from '@skein/testing';
import { createEngine, storageCodeOf, type AppendOutcome, type EventStore } from './index.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Ack {
  streamId: string;
  version: number;
  position: bigint;
}

/**
 * 16 writers, each appending single events to its own stream with the exact expected
 * version, recording every acknowledgement; a refused append is retried at the same
 * version (it must have written nothing).
 */
function startWriters(engine: EventStore, partition: string) {
  const acks: Ack[] = [];
  const refused: unknown[] = [];
  let stopping = false;
  const writers = Array.from({ length: 16 }, async (_, w) => {
    const streamId = `w-${w}`;
    let version = 0;
    while (!stopping) {
      let outcome: AppendOutcome;
      try {
        outcome = await engine.append(partition, streamId, { expectedVersion: version, events: [{ type: 'E', data: { w, n: version + 1, pad: 'p'.repeat(2000) } }] });
      } catch (err) {
        refused.push(err);
        await sleep(20);
        continue;
      }
      if (!outcome.ok) assert.fail(`writer ${w}: ${outcome.code}`);
      acks.push({ streamId, version: outcome.firstVersion, position: outcome.firstPosition });
      version = outcome.lastVersion;
    }
  });
  return {
    acks,
    refused,
    async stop() {
      stopping = true;
      await Promise.all(writers);
    },
  };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what} within ${ms} ms`);
    await sleep(20);
  }
}

/** Every acknowledged event reads back at its version and position, once; versions have no gaps. */
function assertAllReadBack(engine: EventStore, partition: string, acks: Ack[]): void {
  const byStream = new Map<string, Ack[]>();
  for (const a of acks) byStream.set(a.streamId, [...(byStream.get(a.streamId) ?? []), a]);
  for (const [streamId, list] of byStream) {
    const read = engine.readStream(partition, streamId, { limit: 1000 });
    if (!read.ok) assert.fail(`${streamId}: ${read.code}`);
    const events: RecordedEvent[] = read.events;
    assert.deepEqual(
      events.map((e) => e.version),
      events.map((_, i) => i + 1),
      `${streamId}: versions without gaps or repeats`,
    );
    for (const a of list) {
      assert.equal(events[a.version - 1]?.position, a.position, `${streamId}@${a.version} reads back at its acknowledged position`);
    }
  }
  const positions = new Set(acks.map((a) => a.position));
  assert.equal(positions.size, acks.length, 'no position acknowledged twice');
}

/** The fault scenario on `fs`: `inject()` breaks the disk under load, `clear()` mends it. */
async function faultAndRecover(dir: string, inject: (dataDir: string) => void, clear: () => void, expectedCodes: string[], commitThread: boolean) {
  const dataDir = join(dir, 'store');
  let engine = createEngine({ path: dataDir, storageReserveBytes: 2 * 1024 * 1024, storageProbeIntervalMs: 100, commitThread });
  try {
    const load = startWriters(engine, 'p1');
    await until('16 writers acknowledged events', () => load.acks.length >= 200, 30_000);
    inject(dataDir);
    await until('the store reports a storage fault', () => engine.storageFault() !== null, 30_000);
    const fault = engine.storageFault()!;
    assert.ok(expectedCodes.includes(fault.code), `fault code ${fault.code}`);
    // Caught by the engine's own write, before LMDB met the failing disk (storage.ts).
    assert.match(fault.reason, /before the commit/);
    const acked = load.acks.length;
    await sleep(500);
    // While faulted, appends are refused with UNAVAILABLE, Retry-After and the storage code.
    assert.equal(load.acks.length, acked, 'nothing acknowledged while faulted');
    const refusal = load.refused.at(-1);
    assert.ok(isSkeinError(refusal, 'UNAVAILABLE'), String(refusal));
    assert.equal(refusal.details['retryAfter'], 1);
    assert.ok(expectedCodes.includes(String(refusal.details['storage'])));
    clear();
    await until('the store recovers by itself', () => engine.storageFault() === null, 15_000);
    await until('appends are acknowledged again', () => load.acks.length >= acked + 50, 30_000);
    await load.stop();
    assertAllReadBack(engine, 'p1', load.acks);
    // And they were durable: a reopened store has every one of them.
    await engine.close();
    engine = createEngine({ path: dataDir });
    assertAllReadBack(engine, 'p1', load.acks);
  } finally {
    await engine.close();
  }
}

for (const commitThread of [false, true]) {
  const how = commitThread ? 'committing on a thread (as in a node process)' : 'committing on the main thread';

  test(`${how}: a full disk fails appends with UNAVAILABLE, acknowledges nothing it did not write, and recovers when space is freed`, async (t) => {
    const fs = mountSmallDisk('tmpfs', 24);
    if (typeof fs === 'string') return t.skip(fs);
    let filler = '';
    try {
      await faultAndRecover(
        fs.dir,
        () => (filler = fillDisk(fs.dir)),
        () => unlinkSync(filler),
        ['ENOSPC'],
        commitThread,
      );
    } finally {
      fs.unmount();
    }
  });

  test(`${how}: an immutable data file (chattr +i) fails appends with UNAVAILABLE and recovers when the flag is cleared`, async (t) => {
    const fs = mountSmallDisk('ext4', 64);
    if (typeof fs === 'string') return t.skip(fs);
    let locked = '';
    try {
      await faultAndRecover(
        fs.dir,
        (dataDir) => {
          locked = join(dataDir, execFileSync('ls', [dataDir]).toString().split('\n').find((n) => n.startsWith('bucket-'))!, 'data.mdb');
          execFileSync('chattr', ['+i', locked]);
        },
        () => execFileSync('chattr', ['-i', locked]),
        ['EPERM'],
        commitThread,
      );
    } finally {
      if (locked) runQuietly('chattr', ['-i', locked]);
      fs.unmount();
    }
  });
}

test('storage errors are named by their errno or LMDB code, wherever they come from', () => {
  // lmdb-js: the code as a number; Node's fs: the name, and -errno.
  assert.equal(storageCodeOf(Object.assign(new Error('No space left on device'), { code: 28 })), 'ENOSPC');
  assert.equal(storageCodeOf(Object.assign(new Error('MDB_MAP_FULL'), { code: -30792 })), 'MDB_MAP_FULL');
  assert.equal(storageCodeOf(Object.assign(new Error('write'), { code: 'EROFS', errno: -30 })), 'EROFS');
  assert.equal(storageCodeOf(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 5 }) })), 'EIO');
  assert.equal(storageCodeOf(new Error('no code')), 'UNKNOWN');
});
