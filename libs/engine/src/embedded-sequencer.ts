import { MAX_POSITION, SkeinError, type PositionRange, type Sequencer } from '@skein/protocol';
import type { RootDatabase } from 'lmdb';
import type { Key } from './keys.ts';

const COUNTER_KEY: Key = ['sequencer', 'counter'];

/**
 * A Sequencer for one process, its counter persisted in an LMDB database (the
 * engine's catalog). The counter is written without waiting for the disk: after a
 * crash it may come back lower, which is safe because the engine always passes its
 * highest committed position as the floor, and positions allocated but never
 * committed may be handed out again (they were never visible).
 */
export function createEmbeddedSequencer(db: RootDatabase<unknown, Key>): Sequencer {
  let counter = (db.get(COUNTER_KEY) as bigint | undefined) ?? 0n;
  return {
    async allocate(count: number, floor: bigint): Promise<PositionRange> {
      if (!Number.isSafeInteger(count) || count < 1) {
        throw new SkeinError('VALIDATION_FAILED', 'count must be a positive integer', { field: 'count' });
      }
      const base = floor > counter ? floor : counter;
      const last = base + BigInt(count);
      if (last > MAX_POSITION) throw new SkeinError('VALIDATION_FAILED', 'position range does not fit in 64 bits', { field: 'count' });
      counter = last;
      void db.put(COUNTER_KEY, last);
      return { first: base + 1n, last };
    },
    async current(): Promise<bigint> {
      return counter;
    },
    async close(): Promise<void> {
      await db.flushed;
    },
  };
}
