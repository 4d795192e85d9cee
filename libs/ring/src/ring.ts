import { fmix64, fnv1a64 } from './hash.ts';

/** Maps partition ids onto shard names. Immutable: build a new ring when shards change. */
export interface Ring {
  /** The shard names, sorted by UTF-16 code units whatever order they were given in. */
  readonly shards: readonly string[];
  /** The shard that owns `key`. Allocates nothing. */
  shardFor(key: string): string;
  /**
   * The first `n` distinct shards for `key`, most preferred first; `shardFor(key)` is
   * always first. Returns every shard when `n` exceeds their number.
   * Throws RangeError when `n` is not an integer ≥ 0.
   */
  preference(key: string, n: number): string[];
}

/** Options of {@link createRing}. */
export interface RingOptions {
  /**
   * Relative capacity of shards, as positive integers; a shard of weight 2 receives
   * twice the keys of a shard of weight 1. Shards not named here weigh 1. Default: all 1.
   * Changing one shard's weight only moves keys to or from that shard.
   */
  weights?: Readonly<Record<string, number>>;
}

const TWO_POW_20 = 1048576;
const TWO_POW_21 = 2097152;
const TWO_POW_52 = 4503599627370496;
/** Separates shard seeds from key hashes, so that a key equal to a shard name is not special. */
const SEED_HI = 0x9e3779b9;
const SEED_LO = 0x7f4a7c15;

/**
 * A ring that places keys by rendezvous (highest random weight) hashing: for each key,
 * every shard draws a score from a 64-bit hash of (shard, key) and the highest score
 * wins, ties going to the lower name. Adding a shard moves only the keys it wins;
 * removing one moves only its keys. Results depend on the set of names, not their order.
 *
 * Throws Error when `shards` is empty, holds an empty or non-string name or a duplicate,
 * or when `options.weights` names an unknown shard or holds a weight that is not a
 * positive integer.
 */
export function createRing(shards: readonly string[], options: RingOptions = {}): Ring {
  if (!Array.isArray(shards) || shards.length === 0) {
    throw new Error('createRing: the shard list is empty; a ring needs at least one shard');
  }
  for (const name of shards) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new Error(`createRing: shard names must be non-empty strings, got ${JSON.stringify(name)}`);
    }
  }
  const names = Object.freeze([...shards].sort());
  for (let i = 1; i < names.length; i++) {
    if (names[i] === names[i - 1]) throw new Error(`createRing: duplicate shard name ${JSON.stringify(names[i])}`);
  }

  const count = names.length;
  const weights = new Float64Array(count).fill(1);
  let weighted = false;
  for (const [name, weight] of Object.entries(options.weights ?? {})) {
    const index = names.indexOf(name);
    if (index < 0) throw new Error(`createRing: options.weights names ${JSON.stringify(name)}, which is not in the shard list`);
    if (!Number.isSafeInteger(weight) || weight < 1) {
      throw new Error(`createRing: options.weights[${JSON.stringify(name)}] must be a positive integer, got ${String(weight)}`);
    }
    weights[index] = weight;
    if (weight !== 1) weighted = true;
  }

  const scratch = new Uint32Array(2);
  const seeds = new Uint32Array(2 * count);
  for (let i = 0; i < count; i++) {
    fnv1a64(names[i]!, scratch);
    fmix64(scratch[0]! ^ SEED_HI, scratch[1]! ^ SEED_LO, scratch);
    seeds[2 * i] = scratch[0]!;
    seeds[2 * i + 1] = scratch[1]!;
  }

  // The key's hash, set by hashKey() and read by score(): keeps both allocation-free.
  let keyHi = 0;
  let keyLo = 0;
  const hashKey = (key: string): void => {
    fnv1a64(key, scratch);
    fmix64(scratch[0]!, scratch[1]!, scratch);
    keyHi = scratch[0]!;
    keyLo = scratch[1]!;
  };
  const score = (i: number): number => {
    fmix64(keyHi ^ seeds[2 * i]!, keyLo ^ seeds[2 * i + 1]!, scratch);
    if (!weighted) return scratch[0]! * TWO_POW_21 + (scratch[1]! >>> 11);
    // Weighted rendezvous: u uniform in (0, 1) from 52 bits; -w / ln(u) is the largest
    // with probability w / Σw. With equal weights it orders shards as the branch above.
    const u = (scratch[0]! * TWO_POW_20 + (scratch[1]! >>> 12) + 0.5) / TWO_POW_52;
    return -weights[i]! / Math.log(u);
  };

  return Object.freeze({
    shards: names,
    shardFor(key: string): string {
      hashKey(key);
      let best = 0;
      let bestScore = score(0);
      for (let i = 1; i < count; i++) {
        const s = score(i);
        if (s > bestScore) {
          best = i;
          bestScore = s;
        }
      }
      return names[best]!;
    },
    preference(key: string, n: number): string[] {
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`preference: n must be an integer ≥ 0, got ${String(n)}`);
      hashKey(key);
      const scores = new Float64Array(count);
      for (let i = 0; i < count; i++) scores[i] = score(i);
      const order = Array.from({ length: count }, (_, i) => i);
      // Names are sorted, so the lower index is the lower name: the same tie-break as shardFor.
      order.sort((a, b) => scores[b]! - scores[a]! || a - b);
      return order.slice(0, Math.min(n, count)).map((i) => names[i]!);
    },
  });
}
