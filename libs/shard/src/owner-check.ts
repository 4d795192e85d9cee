// The ownership check every call for a partition makes, over HTTP or in-process.
import { SkeinError } from '@skein/protocol';
import type { Ownership } from './ownership.ts';

/**
 * Whether a refusal may come from a placement this shard has not read yet: placements of
 * new partitions are recorded without a new epoch, so a caller at the shard's own epoch
 * may know one the shard does not. The shard re-reads the topology once before refusing.
 */
export const mayBeNewPlacement = (ownership: Ownership, err: SkeinError, epoch: number | undefined) => err.code === 'NOT_OWNER' && (epoch === undefined || epoch === ownership.epoch);

/**
 * Throws NOT_OWNER (421, with the current epoch) unless this shard serves `partition`
 * (or, with none, is at least at) the caller's epoch. A caller ahead of the shard, or at
 * its epoch for a partition it does not know as its own, makes it re-read the topology first.
 */
export async function checkOwner(ownership: Ownership, partition: string | undefined, epoch: number | undefined): Promise<void> {
  if (epoch !== undefined && epoch > ownership.epoch) await ownership.refresh();
  let err = ownership.check(partition, epoch);
  if (err && partition !== undefined && mayBeNewPlacement(ownership, err, epoch)) {
    await ownership.refresh();
    err = ownership.check(partition, epoch);
  }
  if (err) throw err;
}

/**
 * For a read of the whole shard log: checks like `checkOwner` without a partition, then
 * returns which partitions the page may hold (undefined: all). A caller with an epoch is
 * answered only at exactly that epoch (a shard still behind after re-reading the topology
 * refuses with 503), so every page of one merged read (global-read.ts) is filtered by the
 * same topology: no partition then shows on two shards, or on none.
 */
export async function ownedLogFilter(ownership: Ownership, epoch: number | undefined): Promise<((partition: string) => boolean) | undefined> {
  await checkOwner(ownership, undefined, epoch);
  if (epoch !== undefined && ownership.epoch !== epoch) {
    throw new SkeinError('UNAVAILABLE', `the shard is at topology epoch ${ownership.epoch}, behind the caller's ${epoch}`, { retryAfter: 1 });
  }
  return ownership.ownedFilter();
}
