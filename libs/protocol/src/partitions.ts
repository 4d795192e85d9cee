/**
 * Partitions (DESIGN.md, "Partitions"): a tenant is one partition whose id is the
 * tenant id, or, created with `partitions: N > 1`, partitions `{tenant}~0 … {tenant}~N-1`.
 * A stream belongs to `hash(streamId) mod N`, stable forever for that tenant: the hash
 * (FNV-1a, 32 bits, over the UTF-8 bytes) must never change.
 */
export function partitionOf(tenant: string, partitions: number, streamId: string): string {
  if (partitions <= 1) return tenant;
  return `${tenant}~${fnv1a32(streamId) % partitions}`;
}

/** Every partition id of a tenant, in order. */
export function partitionsOf(tenant: string, partitions: number): string[] {
  if (partitions <= 1) return [tenant];
  return Array.from({ length: partitions }, (_, i) => `${tenant}~${i}`);
}

/** Most partitions one tenant may have. */
export const MAX_PARTITIONS = 256;

function fnv1a32(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
