/**
 * How every environment of a store is opened, on any thread (the commit thread opens the
 * current bucket with the same options). Durability is not configurable: the engine
 * commits with synchronous transactions, which sync before returning. overlappingSync
 * stays on: it fixes the environment's meta-page layout (existing files were made with
 * it) and lets the catalog's async writes sync off-thread. Never noSync, never mapAsync.
 */
export function environmentOptions(path: string, mapSizeBytes: number) {
  return {
    path,
    mapSize: mapSizeBytes,
    encoding: 'msgpack' as const,
    keyEncoding: 'ordered-binary' as const,
    compression: false,
    overlappingSync: true,
    sharedStructuresKey: Symbol.for('skein.structures'),
  };
}
