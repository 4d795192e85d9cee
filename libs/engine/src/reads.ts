import { MAX_VERSION, GLOBAL, globalKey, logKey, positionOfKey, snapshotKey, streamKey, type Key } from './keys.ts';
import { categoryOf, parseLimit, type LoggedEvent, type RecordedEvent } from '@skein/protocol';
import type { Bucket } from './buckets.ts';
import { Deleted, type EventRecord } from './records.ts';
import { exists, isDeleted, isEventRecord, type StoreAccess } from './store-access.ts';
import type { LogPage, ReadLogOptions, ReadStreamOptions, ReadStreamOutcome, SkippedRecord } from './types.ts';

/**
 * Reads of committed state: stream pages, partition and shard log pages, the latest
 * snapshot. They see only what is durable (heads are cached once a batch is answered)
 * and skip, with a report, any stored record that does not decode. Arguments are
 * validated by the caller (the public entry, engine.ts).
 */

/** Partition log entry: one append's stream, first version and event count. */
export type LogEntry = [streamId: string, firstVersion: number, count: number];
/** Shard log entry: the same, with the partition. */
export type GlobalEntry = [partition: string, streamId: string, firstVersion: number, count: number];

/**
 * What an event weighs in a read page: its measured size (or, for records written before
 * sizes were kept, a measurement now) plus its envelope (id, stream, type, position, …).
 */
function pageBytesOf(streamId: string, r: EventRecord): number {
  const measured = r.n ?? Buffer.byteLength(r.type) + jsonBytes(r.data) + jsonBytes(r.metadata);
  return measured + streamId.length + 160;
}

function jsonBytes(value: unknown): number {
  const text = value === undefined ? undefined : JSON.stringify(value);
  return text === undefined ? 0 : Buffer.byteLength(text);
}

/** A read outcome with the records it skipped, when there were any (no allocation otherwise). */
function withSkipped<T extends object>(outcome: T, skipped: SkippedRecord[]): T & { skipped?: SkippedRecord[] } {
  return skipped.length === 0 ? outcome : { ...outcome, skipped };
}

export function readStream(access: StoreAccess, p: string, s: string, opts: ReadStreamOptions = {}): ReadStreamOutcome {
  const limit = parseLimit(opts.limit);
  const maxBytes = opts.maxBytes ?? access.cfg.readPageBytes;
  let bytes = 0;
  /** Set when the page stopped before an event because of its byte budget. */
  let full = false;
  const head = access.loadHead(p, s);
  if (isDeleted(head, Deleted.Hard)) return { ok: false, code: 'STREAM_DELETED' };
  if (!exists(head)) return { ok: false, code: 'STREAM_NOT_FOUND' };
  const meta = access.getMetadata(p, s);
  let lowest = head.start ?? 1;
  if (meta?.truncateBefore !== undefined) lowest = Math.max(lowest, meta.truncateBefore);
  if (meta?.maxCount !== undefined) lowest = Math.max(lowest, head.v - meta.maxCount + 1);
  const cutoff = meta?.maxAge !== undefined ? access.clock() - meta.maxAge * 1000 : -Infinity;
  const events: RecordedEvent[] = [];
  const skipped: SkippedRecord[] = [];
  const onUndecodable = (key: Key, err: unknown) => access.noteUndecodable({ partition: p, streamId: s, version: key[3] as number }, err, skipped);
  const backward = opts.direction === 'backward';

  /** Adds the range's events, in its order, until the page is full. */
  const collect = (buckets: readonly Bucket[], range: { start: Key; end: Key; reverse?: boolean }): void => {
    for (const b of buckets) {
      for (const { key, value } of access.decodedRange(b.db, range, onUndecodable)) {
        if (!isEventRecord(value)) {
          onUndecodable(key, new Error('not an event record'));
          continue;
        }
        if (value.ts < cutoff) continue;
        bytes += pageBytesOf(s, value);
        if (bytes > maxBytes && events.length > 0) {
          full = true;
          return;
        }
        events.push(toRecorded(s, key[3] as number, value));
        if (events.length === limit) return;
      }
    }
  };

  if (!backward) {
    const from = Math.max(opts.from ?? 1, lowest);
    collect(access.streamBuckets(head), { start: streamKey(p, s, from), end: streamKey(p, s, head.v + 1) });
    const last = events[events.length - 1]?.version;
    return withSkipped({ ok: true, events, version: head.v, next: (full || events.length === limit) && last! < head.v ? last! + 1 : null }, skipped);
  }

  const from = Math.min(opts.from ?? head.v, head.v);
  if (from >= lowest) collect(access.streamBuckets(head).slice().reverse(), { start: streamKey(p, s, from), end: streamKey(p, s, lowest - 1), reverse: true });
  const last = events[events.length - 1]?.version;
  return withSkipped({ ok: true, events, version: head.v, next: (full || events.length === limit) && last! > lowest ? last! - 1 : null }, skipped);
}

function toRecorded(streamId: string, version: number, r: EventRecord): RecordedEvent {
  return { id: r.id, type: r.type, data: r.data, metadata: r.metadata, streamId, version, position: r.pos, timestamp: r.ts };
}

export function readLog(access: StoreAccess, partition: string | undefined, opts: ReadLogOptions): LogPage {
  const limit = parseLimit(opts.limit);
  const maxBytes = opts.maxBytes ?? access.cfg.readPageBytes;
  let bytes = 0;
  let truncated = false;
  const from = opts.fromPosition ?? 0n;
  const to = opts.toPosition;
  const events: LoggedEvent[] = [];
  if (to !== undefined && to < from) return { events, next: from };
  const keyOf = partition === undefined ? globalKey : (pos: bigint) => logKey(partition, pos);
  const lowest: Key = partition === undefined ? [GLOBAL] : [partition, 'log'];
  const end: Key = to !== undefined ? keyOf(to + 1n) : partition === undefined ? [GLOBAL, Infinity] : [partition, 'log', Infinity];
  const types = opts.types && opts.types.length > 0 ? new Set(opts.types) : undefined;
  const skipped: SkippedRecord[] = [];
  const include = opts.includePartition;
  // The highest position of an entry left out by `include`: every position up to it was
  // examined (an event within the range either was taken or failed a filter).
  let passed = -1n;
  outer: for (const b of access.buckets.fromPosition(from)) {
    // An entry covers one append's consecutive positions; start at the one holding `from`.
    let start = keyOf(from);
    for (const key of b.db.getKeys({ start, end: lowest, reverse: true, limit: 1 })) start = key as Key;
    const onBadEntry = (key: Key, err: unknown) => access.log.error({ err, partition, position: positionOfKey(key) }, 'log entry cannot be decoded; skipped');
    for (const { key, value } of access.decodedRange(b.db, { start, end }, onBadEntry)) {
      const first = positionOfKey(key);
      let p: string, s: string, v0: number, count: number;
      if (partition === undefined) [p, s, v0, count] = value as GlobalEntry;
      else {
        p = partition;
        [s, v0, count] = value as LogEntry;
      }
      if (include !== undefined && !include(p)) {
        const lastOfEntry = first + BigInt(count) - 1n;
        passed = to !== undefined && to < lastOfEntry ? to : lastOfEntry;
        continue;
      }
      if (opts.category !== undefined && categoryOf(s) !== opts.category) continue;
      const skip = from > first ? Number(from - first) : 0;
      if (skip >= count) continue;
      // The append's events are consecutive versions of one stream at consecutive
      // positions: one get for a single event, one range read for several.
      if (count === 1) {
        if (to !== undefined && first > to) break outer;
        const r = access.getRecord(b, p, s, v0, skipped, first);
        if (!r || (types && !types.has(r.type))) continue;
        bytes += pageBytesOf(s, r);
        if (bytes > maxBytes && events.length > 0) {
          truncated = true;
          break outer;
        }
        events.push(toLogged(p, s, v0, r));
        if (events.length === limit) break outer;
        continue;
      }
      const onUndecodable = (k: Key, err: unknown) => {
        const version = k[3] as number;
        access.noteUndecodable({ partition: p, streamId: s, version, position: first + BigInt(version - v0) }, err, skipped);
      };
      for (const { key: k, value: r } of access.decodedRange(b.db, { start: streamKey(p, s, v0 + skip), end: streamKey(p, s, v0 + count) }, onUndecodable)) {
        const version = k[3] as number;
        const position = first + BigInt(version - v0);
        if (to !== undefined && position > to) break outer;
        if (!isEventRecord(r)) {
          onUndecodable(k, new Error('not an event record'));
          continue;
        }
        if (types && !types.has(r.type)) continue;
        bytes += pageBytesOf(s, r);
        if (bytes > maxBytes && events.length > 0) {
          truncated = true;
          break outer;
        }
        events.push(toLogged(p, s, version, r));
        if (events.length === limit) break outer;
      }
    }
  }
  const last = events[events.length - 1];
  let next = last ? last.position + 1n : from;
  if (passed >= next) next = passed + 1n;
  const page: LogPage = { events, next };
  if (skipped.length > 0) page.skipped = skipped;
  if (truncated) page.truncated = true;
  return page;
}

function toLogged(p: string, s: string, version: number, r: EventRecord): LoggedEvent {
  return { id: r.id, type: r.type, data: r.data, metadata: r.metadata, streamId: s, version, position: r.pos, timestamp: r.ts, partition: p };
}

/** The stream's newest snapshot, or null. */
export function latestSnapshot(access: StoreAccess, partition: string, streamId: string): { version: number; data: unknown } | null {
  const { buckets } = access;
  const at = buckets.indexed ? access.loadHead(partition, streamId).sb : undefined;
  const candidates = !buckets.indexed ? buckets.newestFirst() : at === undefined ? [] : [buckets.byId(at) ?? buckets.newestFirst()].flat();
  for (const b of candidates) {
    for (const { key, value } of b.db.getRange({
      start: snapshotKey(partition, streamId, MAX_VERSION),
      end: snapshotKey(partition, streamId, 0),
      reverse: true,
      limit: 1,
    })) {
      return { version: (key as Key)[3] as number, data: value };
    }
  }
  return null;
}
