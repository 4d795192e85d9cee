import { asBinary, type RootDatabase } from 'lmdb';
import type { Key } from './keys.ts';

/**
 * A batch's puts as one buffer, encoded on the thread that decides them and written by
 * the commit thread: `[u32 count] ([u32 keyLength] key [u32 valueLength] value)*`,
 * little-endian, each key in lmdb-js's ordered-binary form and each value in the msgpack
 * form the environment's own db writes (its shared structures included). One buffer of
 * bytes reaches the commit thread as a copy into its shared request area, or, when
 * larger than that, moved in a transfer list (it owns its ArrayBuffer), never as
 * structured-cloned put objects (measured: cloning the put objects was 10.7% of the node
 * main thread, README "Where the time goes").
 *
 * Why the bytes are the db's own: the encoder is the one that db decodes with, so a
 * record naming a shared structure names one that encoder saved (it saves a new
 * structure in a transaction of its own on the encoding thread, before the batch that
 * uses it is committed), and the commit thread, which only puts raw bytes, never saves
 * or changes the structures. Every msgpack write of an environment therefore goes
 * through one encoder: the engine's, on its thread.
 */
export type EncodedBatch = Uint8Array<ArrayBuffer>;

/** What lmdb-js's db instance has and its typings leave out: its value encoder and key writer. */
interface DbEncoders {
  encoder: { encode(value: unknown): Uint8Array };
  writeKey(key: Key, target: Uint8Array, position: number): number;
}

function encodersOf(db: RootDatabase<unknown, Key>): DbEncoders {
  const { encoder, writeKey } = db as RootDatabase<unknown, Key> & Partial<DbEncoders>;
  // A different lmdb-js would fail here, loudly, rather than write other bytes.
  if (typeof encoder?.encode !== 'function' || typeof writeKey !== 'function') throw new Error('this lmdb-js exposes no db.encoder / db.writeKey');
  return { encoder, writeKey };
}

/** An upper bound of a key's ordered-binary length: 3 bytes per UTF-16 unit, 10 per number, separators. */
function keyBound(key: Key): number {
  let n = 0;
  for (const part of key) n += typeof part === 'string' ? 3 * part.length + 2 : 10;
  return n;
}

/** Encodes `puts` with `db`'s own key and value encoding (see EncodedBatch). */
export function encodeBatch(db: RootDatabase<unknown, Key>, puts: readonly (readonly [Key, unknown])[]): EncodedBatch {
  const { encoder, writeKey } = encodersOf(db);
  let target = Buffer.allocUnsafeSlow(16 * 1024);
  let view = new DataView(target.buffer);
  let at = 4;
  for (const [key, value] of puts) {
    const encoded = encoder.encode(value);
    const needed = at + 8 + keyBound(key) + encoded.length;
    if (needed > target.length) {
      // A multiple of 8: ordered-binary's writeKey views the buffer in whole 32-bit words.
      const grown = Buffer.allocUnsafeSlow(Math.max(2 * target.length, (needed + 7) & ~7));
      target.copy(grown, 0, 0, at);
      target = grown;
      view = new DataView(target.buffer);
    }
    const keyEnd = writeKey(key, target, at + 4);
    view.setUint32(at, keyEnd - at - 4, true);
    view.setUint32(keyEnd, encoded.length, true);
    target.set(encoded, keyEnd + 4);
    at = keyEnd + 4 + encoded.length;
  }
  view.setUint32(0, puts.length, true);
  return target.subarray(0, at);
}

/**
 * Puts every record of an encoded batch into `db` (inside the caller's transaction):
 * keys as the raw ordered-binary bytes they are, values as the raw msgpack bytes they are.
 */
export function putEncodedBatch(db: RootDatabase<unknown, Uint8Array>, batch: EncodedBatch): void {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const count = view.getUint32(0, true);
  let at = 4;
  for (let i = 0; i < count; i++) {
    const keyLength = view.getUint32(at, true);
    const key = batch.subarray(at + 4, at + 4 + keyLength);
    at += 4 + keyLength;
    const valueLength = view.getUint32(at, true);
    const value = batch.subarray(at + 4, at + 4 + valueLength);
    at += 4 + valueLength;
    db.putSync(key, asBinary(value));
  }
  if (at !== batch.byteLength) throw new Error(`an encoded batch of ${batch.byteLength} bytes ended at ${at}`);
}
