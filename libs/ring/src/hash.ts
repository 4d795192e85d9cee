// 64-bit hashing on two unsigned 32-bit halves (`hi`, `lo`), so that the per-request
// path allocates nothing: BigInt arithmetic would allocate on every operation.
// Results are written into a caller-owned Uint32Array `out` as out[0] = hi, out[1] = lo.
//
// These functions fix where every partition lives: changing any of them remaps
// partitions of a running cluster. ring.spec.ts pins their output.

const TWO_POW_32 = 4294967296;
/** FNV-1a 64 prime is 2^40 + 0x1b3, so x * prime = (x << 40) + x * 0x1b3. */
const FNV_PRIME_LOW = 0x1b3;
const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;
/** First byte of a UTF-8 sequence of 2, 3 or 4 bytes, by length. */
const UTF8_LEAD = [0, 0, 0xc0, 0xe0, 0xf0];

/**
 * FNV-1a 64 of the UTF-8 encoding of `text` (lone surrogates encoded as U+FFFD, as
 * TextEncoder does), written into `out`. FNV alone mixes short keys poorly: pass the
 * result through {@link fmix64} before using it as a score.
 */
export function fnv1a64(text: string, out: Uint32Array): void {
  let hi = FNV_OFFSET_HI;
  let lo = FNV_OFFSET_LO;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const next = i + 1 < length ? text.charCodeAt(i + 1) : 0;
      if (cp <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        cp = 0xfffd;
      }
    }
    const bytes = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (let j = bytes - 1; j >= 0; j--) {
      const byte = j !== bytes - 1 ? 0x80 | ((cp >>> (6 * j)) & 0x3f) : UTF8_LEAD[bytes]! | (cp >>> (6 * j));
      lo = (lo ^ byte) >>> 0;
      // lo * 0x1b3 < 2^41 is exact in a double; its bits above 32 carry into hi.
      const product = lo * FNV_PRIME_LOW;
      const low = product >>> 0;
      hi = (Math.imul(hi, FNV_PRIME_LOW) + (lo << 8) + (product - low) / TWO_POW_32) >>> 0;
      lo = low;
    }
  }
  out[0] = hi;
  out[1] = lo;
}

/** (ah:al * bh:bl) mod 2^64 into `out`, via 16-bit limbs so that no product loses bits. */
function mul64(ah: number, al: number, bh: number, bl: number, out: Uint32Array): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  out[1] = ((mid << 16) | (p00 & 0xffff)) >>> 0;
  out[0] = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(al, bh) + Math.imul(ah, bl)) >>> 0;
}

/**
 * MurmurHash3's 64-bit finalizer (fmix64) of hi:lo, written into `out`: a bijection in
 * which every input bit flips each output bit with probability close to 1/2.
 */
export function fmix64(hi: number, lo: number, out: Uint32Array): void {
  hi >>>= 0;
  lo = (lo ^ (hi >>> 1)) >>> 0; // k ^= k >>> 33
  mul64(hi, lo, 0xff51afd7, 0xed558ccd, out);
  hi = out[0]!;
  lo = (out[1]! ^ (hi >>> 1)) >>> 0;
  mul64(hi, lo, 0xc4ceb9fe, 0x1a85ec53, out);
  hi = out[0]!;
  out[1] = (out[1]! ^ (hi >>> 1)) >>> 0;
}
