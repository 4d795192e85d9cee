/** A contiguous range of global positions, both ends included. */
export interface PositionRange {
  first: bigint;
  last: bigint;
}

/**
 * Allocates global positions. Positions are unique across everything that shares one
 * sequencer, increase with each allocation, and may have gaps (an allocation whose
 * batch failed is never reused).
 *
 * Implementations: the embedded one in `@skein/engine` (counter persisted in LMDB) and
 * the Redis one in `@skein/sequencer` (one Lua script, one round trip per batch).
 */
export interface Sequencer {
  /**
   * Allocates `count` (≥ 1) contiguous positions. Every position returned is greater
   * than `floor` and than any position handed out before. The caller passes as floor
   * the highest position it has seen (committed or read), so a counter that lost its
   * state can never go back below it.
   * @throws SkeinError UNAVAILABLE when the counter cannot be reached; nothing was allocated then.
   * @throws SkeinError VALIDATION_FAILED when count is not a positive integer or the range would not fit in 64 bits.
   */
  allocate(count: number, floor: bigint): Promise<PositionRange>;
  /**
   * The highest position handed out so far (0n when none). Any later allocation is
   * above the value returned, which is what makes a fresh read a safe point for a
   * shard with nothing in flight.
   */
  current(): Promise<bigint>;
  close(): Promise<void>;
}
