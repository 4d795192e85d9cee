/**
 * The key layout of a shard's LMDB environments (DESIGN.md, "Storage layout").
 *
 * Keys are lmdb-js ordered-binary tuples, so lexical order equals numeric order.
 * Every partition key starts with the partition id, so a partition is one contiguous
 * range. Global positions are unsigned 64-bit integers; ordered-binary would turn a
 * bigint into a double, so a position is stored as two numbers, its high and low
 * 32 bits, which sort exactly.
 *
 * ```
 * [p, 'stream', streamId, version]      -> EventRecord
 * [p, 'head', streamId]                 -> HeadRecord  written when more than its version changes (DESIGN.md)
 * [p, 'log', posHi, posLo]              -> [streamId, firstVersion, count]      partition log
 * ['$global', posHi, posLo]             -> [p, streamId, firstVersion, count]   shard log
 * [p, 'idem', streamId, idempotencyKey] -> IdempotencyRecord                  keys are per stream (API.md)
 * [p, 'idem', idempotencyKey]           -> IdempotencyRecord                  legacy, per partition: read only
 * [p, 'snapshot', streamId, version]    -> snapshot data
 * [p, 'meta', streamId]                 -> StreamMetadata
 * ```
 * `$` can start no partition id, so the shard log never mixes with a partition.
 *
 * Log entries are per append, not per event: the events of one append have
 * consecutive positions and versions, so `[first position] -> (stream, first
 * version, count)` says everything, and a 10-event append writes 2 log entries
 * instead of 20 (the hot path's biggest cost is the number of puts). A log read
 * starting inside an entry seeks back to the entry that holds its position.
 */
export type Key = (string | number)[];

const TWO_32 = 0x1_0000_0000n;

/** The [hi, lo] pair of a position. */
export function splitPosition(position: bigint): [number, number] {
  return [Number(position / TWO_32), Number(position % TWO_32)];
}

export function joinPosition(hi: number, lo: number): bigint {
  return hi === 0 ? BigInt(lo) : BigInt(hi) * TWO_32 + BigInt(lo);
}

export const GLOBAL = '$global';

export const streamKey = (p: string, s: string, version: number): Key => [p, 'stream', s, version];
export const headKey = (p: string, s: string): Key => [p, 'head', s];
export const metaKey = (p: string, s: string): Key => [p, 'meta', s];
export const idemKey = (p: string, s: string, key: string): Key => [p, 'idem', s, key];
/**
 * Where stores written before keys were scoped to the stream kept them. Read as a fallback
 * only, and honoured only for the stream its record names, so a retry within the window
 * that began before the upgrade is still recognised; nothing writes it any more.
 */
export const legacyIdemKey = (p: string, key: string): Key => [p, 'idem', key];
export const snapshotKey = (p: string, s: string, version: number): Key => [p, 'snapshot', s, version];

export function logKey(p: string, position: bigint): Key {
  const [hi, lo] = splitPosition(position);
  return logKeyOf(p, hi, lo);
}

export function globalKey(position: bigint): Key {
  const [hi, lo] = splitPosition(position);
  return globalKeyOf(hi, lo);
}

/** logKey and globalKey from a position already split (an append's two entries share one split). */
export const logKeyOf = (p: string, hi: number, lo: number): Key => [p, 'log', hi, lo];
export const globalKeyOf = (hi: number, lo: number): Key => [GLOBAL, hi, lo];

/** Position of a log key ([p,'log',hi,lo]) or shard-log key (['$global',hi,lo]). */
export function positionOfKey(key: Key): bigint {
  const n = key.length;
  return joinPosition(key[n - 2] as number, key[n - 1] as number);
}

/** Upper bound for versions in a range end (versions are safe integers). */
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;
