import type { AppendResult, SkeinEvent } from '../types.ts';

/** JSON that can hold bigints (as decimal strings, their wire form). */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}

/** One readable line per event: `order-1@3 OrderPlaced pos=102490 2026-…Z {"total":3}`. */
export function formatEvent(e: SkeinEvent): string {
  const where = e.tenant === undefined ? `${e.streamId}@${e.version}` : `${e.tenant}/${e.streamId}@${e.version}`;
  return `${where} ${e.type} pos=${e.position} ${e.timestamp} ${toJson(e.data)}`;
}

export function formatAppend(r: AppendResult): string {
  const versions = r.firstVersion === r.lastVersion ? `${r.firstVersion}` : `${r.firstVersion}..${r.lastVersion}`;
  const positions = r.firstPosition === r.lastPosition ? `${r.firstPosition}` : `${r.firstPosition}..${r.lastPosition}`;
  return `${r.duplicate ? 'duplicate, already appended' : 'appended'} ${r.streamId}@${versions} (position ${positions})`;
}

/** Nested `key: value` lines for objects of unknown shape (cluster status, tenant info). */
export function formatTree(value: unknown, indent = ''): string[] {
  if (value === null || typeof value !== 'object') return [`${indent}${toJson(value)}`];
  const lines: string[] = [];
  const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v]) : Object.entries(value);
  for (const [k, v] of entries) {
    if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
      lines.push(`${indent}${k}:`);
      lines.push(...formatTree(v, indent + '  '));
    } else {
      lines.push(`${indent}${k}: ${typeof v === 'string' ? v : toJson(v)}`);
    }
  }
  return lines;
}
