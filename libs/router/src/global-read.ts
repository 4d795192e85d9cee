import { SkeinError, isSkeinError } from '@skein/protocol';
import type { ControlStore, LoggedWireEvent, LogPageWire, ReadLogQuery } from '@skein/protocol';
import type { Shards } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

export type { LoggedWireEvent };

export interface GlobalReadOptions {
  /** The tenant's partitions; undefined reads every shard's whole log. */
  partitions?: readonly string[];
  fromPosition: bigint;
  limit: number;
  category?: string;
  types?: string;
  /**
   * Read-your-writes (the default): the read first takes the counter and waits (bounded)
   * for the shards' safe points to reach it. A subscription passes false: it reads up to
   * the safe points as they are and waits for more on the watermark hub, so a page is
   * not held back until every shard has committed past a counter that moves on with
   * every append (under load, a batch cycle of the slowest shard per page).
   */
  readYourWrites?: boolean;
}

/** A page in global order. */
export interface GlobalPage {
  events: LoggedWireEvent[];
  /** The fromPosition of the next page. */
  next: bigint;
  watermark: bigint;
  involved: string[];
  /** The page holds every event from fromPosition up to the watermark (none was left out by a limit or a byte budget). */
  complete: boolean;
}

/**
 * Most bytes of events in one merged page, shared among the pages it is merged from (each
 * holds one event at least): a page of large events stays far within what one response
 * (one JavaScript string) can hold.
 */
const PAGE_BYTES = 4 * 1024 * 1024;

/**
 * How many events a merged page of `limit` asks of each of its `sources`: twice its share
 * (at least one, at most the page). Asking each for the whole page read `sources` times
 * what a page holds and dropped the rest (a tenant log of 6 partitions read and converted
 * 6,000 events for a page of 1,000, ~37 ms a page where a stream page took ~7). With
 * events spread over the sources the merged page is still full; where one source holds
 * most of them, its share bounds the page (a shorter page, never a skipped or reordered
 * event: readGlobalAt's bound).
 */
export function sourceLimit(limit: number, sources: number): number {
  return Math.min(limit, Math.max(1, Math.ceil((2 * limit) / Math.max(1, sources))));
}

/** How long a read waits for shards to reach the position it must include. */
const READ_YOUR_WRITES_WAIT_MS = 1000;

/**
 * Reads in global order over several partitions or shards (DESIGN.md, "Global order"):
 * each shard's log up to the stable watermark (the minimum safe point of the shards
 * involved), merged by position. Nothing at or below the watermark can still commit,
 * so a reader paging with `next` never misses or reorders an event.
 */
export async function readGlobal(
  deps: { shards: Shards; topology: RouterTopology; store: ControlStore },
  options: GlobalReadOptions,
): Promise<GlobalPage> {
  // A partition move flips ownership with a new epoch: a read routed by an older view is
  // read again, whole, by the new one (safe points included), so the watermark always
  // covers the shards that own the partitions read.
  for (let attempt = 0; ; attempt++) {
    try {
      return await readGlobalAt(deps, options);
    } catch (err) {
      if (!isSkeinError(err, 'NOT_OWNER') || attempt >= 4) throw err;
      await deps.topology.refresh();
    }
  }
}

const EPOCH_IN_TOPOLOGY = /"epoch":(\d+)/;

/**
 * Throws NOT_OWNER (the read starts over at the new view) unless the stored topology is
 * still at `epoch`, read after every safe point and page of the read. The stored epoch only
 * grows and shards and router only learn epochs from it, so equal now means every safe
 * point and page was answered at exactly `epoch` (a shard answers a whole-log read only at
 * the caller's epoch, and the router's epoch only grows from the view's).
 *
 * Invariant this gives a reader paging with `next` across a flip (epoch + 1): each page is
 * merged from the pages of one topology, where every partition's events are served by its
 * one owner (a shard's whole log holds only the partitions it owns, ownedLogFilter). A move
 * fences the partition and copies all of its events, at their positions, to the target
 * before the flip, and the source drops them only after it, so at either epoch the events
 * at or below a watermark are the same set, each at one position. Pages resume at
 * `next` = last emitted position + 1 and hold only positions ≤ the watermark, so no
 * position is emitted twice and none at or below the watermark is skipped.
 */
async function sameEpoch(store: ControlStore, epoch: number): Promise<void> {
  const stored = await store.readTopology();
  const epochNow = stored === null ? null : Number(EPOCH_IN_TOPOLOGY.exec(stored)?.[1]);
  if (epochNow !== null && epochNow !== epoch) {
    throw new SkeinError('NOT_OWNER', 'the topology changed during the read', { epoch: epochNow });
  }
}

async function readGlobalAt(
  deps: { shards: Shards; topology: RouterTopology; store: ControlStore },
  options: GlobalReadOptions,
): Promise<GlobalPage> {
  const { shards, topology, store } = deps;
  const view = await topology.current();
  const involved = options.partitions
    ? [...new Set(options.partitions.map((p) => view.ownerOf(p)).filter((s): s is string => s !== null))]
    : view.topology.shards.map((s) => s.id);
  // Read-your-writes: wait (briefly, bounded) until the watermark covers every position
  // allocated before this read began, so anything acknowledged before it is included.
  const wait = options.readYourWrites === false ? undefined : { atLeast: await store.readCounter(), waitMs: READ_YOUR_WRITES_WAIT_MS };
  const safePoints = await Promise.all(involved.map(async (shardId) => (await shards.get(shardId).safePoint(wait)).safePoint));
  const watermark = safePoints.reduce((min, p) => (p < min ? p : min), safePoints[0] ?? 0n);
  const { fromPosition: from, limit } = options;
  if (involved.length === 0 || watermark < from) {
    // Nothing to emit and nothing skipped: a subscription only learns where to wait (a
    // stale view's watermark wakes it early at worst), so it spares Redis the epoch read.
    // A read-your-writes answer may be used as a start (`fromPosition=end`): checked.
    if (options.readYourWrites !== false) await sameEpoch(store, view.topology.epoch);
    return { events: [], next: from, watermark, involved, complete: true };
  }

  const types = options.types?.split(',').filter((t) => t.length > 0);
  const reads: Array<(query: ReadLogQuery) => Promise<LogPageWire>> = options.partitions
    ? options.partitions.map((p) => (q) => shards.get(view.ownerOf(p)!).readLog({ ...q, partition: p }))
    : involved.map((s) => (q) => shards.get(s).readLog(q));
  const perSource = sourceLimit(limit, reads.length);
  const maxBytes = Math.max(64 * 1024, Math.floor(PAGE_BYTES / Math.max(1, reads.length)));
  const filters = { ...(options.category ? { category: options.category } : {}), ...(types && types.length > 0 ? { types } : {}) };
  const sources: Source[] = reads.map((read) => ({ read, next: from, state: 'more' }));
  const fetched: Array<{ e: LoggedWireEvent; pos: bigint }> = [];
  const readMore = async (source: Source): Promise<void> => {
    const page = await source.read({ fromPosition: source.next, toPosition: watermark, limit: perSource, maxBytes, ...filters });
    for (const e of page.events) fetched.push({ e, pos: BigInt(e.position) });
    // A page that stopped at its limit, or its shard's byte budget, covers its source only up
    // to `next - 1` (every position below was sent or left out by a filter); one that did
    // not stop early covers it up to the watermark.
    source.next = page.next;
    source.state = page.truncated === true ? 'bytes' : page.events.length >= perSource ? 'more' : 'done';
  };
  /** The highest position every source has covered: the merged page stops there, so no source's later event comes before one it has not sent yet. */
  const coveredUpTo = () => sources.reduce((min, s) => (s.state !== 'done' && s.next - 1n < min ? s.next - 1n : min), watermark);
  await Promise.all(sources.map(readMore));
  // A source that stopped at its share while the others had less holds the page back (one
  // partition holding most of a tenant's events): it alone is read again, at most twice,
  // unless a byte budget stopped any source (the page is as large as it may be).
  for (let refill = 0; refill < 2; refill++) {
    const bound = coveredUpTo();
    if (fetched.filter((k) => k.pos <= bound).length >= limit || sources.some((s) => s.state === 'bytes')) break;
    const laggard = sources.find((s) => s.state === 'more' && s.next - 1n === bound);
    if (!laggard) break;
    await readMore(laggard);
  }
  await sameEpoch(store, view.topology.epoch);
  const bound = coveredUpTo();
  const covered = fetched.filter((k) => k.pos <= bound);
  covered.sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0));
  const events = covered.slice(0, limit).map((k) => k.e);
  const last = covered[Math.min(limit, covered.length) - 1];
  const complete = bound === watermark && covered.length <= limit;
  return { events, next: last ? last.pos + 1n : from, watermark, involved, complete };
}

/** One log a merged page reads from, and how far it has read. */
interface Source {
  read(query: ReadLogQuery): Promise<LogPageWire>;
  /** Where its next page starts. */
  next: bigint;
  /** done: read up to the watermark; more: stopped at its share; bytes: stopped at its byte budget. */
  state: 'done' | 'more' | 'bytes';
}
