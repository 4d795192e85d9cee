/**
 * A Bloom filter of strings: "maybe" or "certainly not". A closed bucket keeps one of the
 * streams whose head it holds (buckets.ts), so a head lookup opens only the buckets that
 * may hold it. 10 bits and 7 probes per entry: about 1% false positives.
 */
export class BloomFilter {
  private constructor(
    readonly bits: Uint8Array,
    readonly probes: number,
  ) {}

  static of(values: Iterable<string>, count: number): BloomFilter {
    const bytes = Math.max(8, Math.ceil((count * 10) / 8));
    const filter = new BloomFilter(new Uint8Array(bytes), 7);
    for (const v of values) filter.add(hashOf(v));
    return filter;
  }

  /** A filter as stored (`bits` and `probes` of one made by `of`). */
  static from(stored: { bits: Uint8Array; probes: number }): BloomFilter {
    return new BloomFilter(new Uint8Array(stored.bits), stored.probes);
  }

  private add([h1, h2]: Hash): void {
    const m = this.bits.length * 8;
    for (let i = 0; i < this.probes; i++) {
      const bit = (h1 + i * h2) % m;
      this.bits[bit >>> 3]! |= 1 << (bit & 7);
    }
  }

  mayHold([h1, h2]: Hash): boolean {
    const m = this.bits.length * 8;
    for (let i = 0; i < this.probes; i++) {
      const bit = (h1 + i * h2) % m;
      if ((this.bits[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit hashes of a string (FNV-1a with two offsets), for double hashing. */
export type Hash = readonly [number, number];

export function hashOf(value: string): Hash {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a >>> 0, (b | 1) >>> 0];
}
