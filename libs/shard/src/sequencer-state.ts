import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** What the shard keeps of the sequencer across restarts (see `@skein/sequencer`, "Never twice"). */
export interface PersistedSequencerState {
  /** The highest counter value this shard observed. */
  highWater: bigint;
  /**
   * The highest value this shard's safe point may have been published up to: at least
   * `highWater` (written with headroom above it, see RESERVE_MIN). After a restart the
   * shard allocates above it, so nothing it published before is ever committed under.
   */
  bound: bigint;
  /** Every sequencer member id this shard learned, itself included, removed ones excluded. */
  members: string[];
  /**
   * Member ids tombstoned as removed from the cluster (`@skein/sequencer`, "Removed
   * members"). Written in the same write as a high-water at or above every position
   * they were handed out (the sequencer reports that high-water first).
   */
  removed: string[];
}

export interface SequencerStateFile {
  /** The state read at open (zero and no members when the file did not exist). */
  readonly initial: PersistedSequencerState;
  /** The highest value on disk that safe points may be published up to (the persisted `bound`). */
  persistedBound(): bigint;
  /** Records a new high-water (from the sequencer's `onObserved`); written in the background. */
  observe(value: bigint): void;
  /** Records newly learned members (from the sequencer's `onMembers`); written in the background. Removed ids are skipped. */
  addMembers(ids: string[]): void;
  /**
   * Records tombstones (from the sequencer's `onRemoved`): the ids leave the members and
   * join the removed ids; written at once, with the high-water observed so far.
   */
  removeMembers(ids: string[]): void;
  /** Resolves once everything recorded so far is on disk. */
  flush(): Promise<void>;
}

export interface SequencerStateLogger {
  error(obj: object, msg?: string): void;
}

/**
 * The sequencer's high-water, the safe-point bound and known members, in
 * `<dataDir>/sequencer-state.json`. High-water updates are written on flush() (or within
 * a second in the background), members at once; writes are coalesced (at most one in
 * flight), each one atomic and durable: a temp file is written and fsynced, renamed over
 * the old one, and the directory fsynced. Callers that must not rely on a value before
 * it is durable compare it with {@link SequencerStateFile.persistedBound} (the safe point
 * does).
 *
 * Each write records the bound with headroom above the high-water, so the safe point,
 * which every shard refreshes 20 times a second from a counter the whole cluster
 * advances, finds its candidate under the bound already on disk and does not wait for a
 * write of its own. Measured (issue 9, `npm start`, three shards in one process): with
 * the bound equal to the high-water, every refresh under load wrote the file (60 writes
 * and 120 fsyncs a second), a quarter of the node process's busy main thread at one
 * client; with the headroom, about one background write a second per shard.
 */
/** How long a newly observed high-water may stay only in memory when nobody asks for it to be durable. */
const BACKGROUND_WRITE_MS = 1000;
/**
 * The least headroom of the bound over the high-water. It grows to twice what the
 * high-water advanced since the write before (about a second's worth under load), so
 * the background writes keep the bound ahead. A restart skips at most this many
 * positions (they are never handed out); positions are unique and ordered, not dense.
 */
const RESERVE_MIN = 16_384n;
const RESERVE_MAX = 1n << 20n;

export function openSequencerStateFile(dataDir: string, logger?: SequencerStateLogger): SequencerStateFile {
  const path = join(dataDir, 'sequencer-state.json');
  mkdirSync(dirname(path), { recursive: true });
  const initial = readState(path);
  let highWater = initial.highWater;
  let persisted = initial.bound;
  /** The high-water of the last write (the reserve follows how fast it grows). */
  let writtenHighWater = initial.highWater;
  const removed = new Set(initial.removed);
  const members = new Set(initial.members.filter((id) => !removed.has(id)));
  let dirty = false;
  let writing: Promise<void> | null = null;
  let idleTimer: NodeJS.Timeout | null = null;

  async function writeOnce(): Promise<void> {
    dirty = false;
    const hw = highWater;
    let reserve = 2n * (hw - writtenHighWater);
    reserve = reserve < RESERVE_MIN ? RESERVE_MIN : reserve > RESERVE_MAX ? RESERVE_MAX : reserve;
    // Never below a bound already on disk: a safe point may have been published up to it.
    const bound = hw + reserve > persisted ? hw + reserve : persisted;
    // One atomic write holds both: a tombstone is never on disk beside a high-water below its bound.
    const text = JSON.stringify({ highWater: hw.toString(), bound: bound.toString(), members: [...members].sort(), removed: [...removed].sort() });
    const tmp = `${path}.tmp`;
    const file = await open(tmp, 'w');
    try {
      await file.writeFile(text);
      await file.datasync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    writtenHighWater = hw;
    if (bound > persisted) persisted = bound;
  }

  /** Members learned or tombstoned since the write under way began: they are written at once, not within the interval. */
  let membersDirty = false;

  function schedule(): void {
    writing ??= (async () => {
      try {
        // One write, again only for new members. A high-water observed meanwhile waits for
        // the background interval: under load every allocation observes one, and looping
        // while one was pending wrote the file back to back (two fsyncs each) for as long
        // as the load lasted.
        do {
          membersDirty = false;
          await writeOnce();
        } while (membersDirty);
      } catch (err) {
        // Retried in the background; the safe point stays capped at what is on disk.
        logger?.error({ err, path }, 'sequencer state could not be persisted');
      } finally {
        writing = null;
        if (dirty) background();
      }
    })();
  }

  /** Writes what was recorded within BACKGROUND_WRITE_MS, unless something writes it sooner. */
  function background(): void {
    idleTimer ??= setTimeout(() => {
      idleTimer = null;
      if (dirty) schedule();
    }, BACKGROUND_WRITE_MS);
    idleTimer.unref();
  }

  return {
    initial,
    persistedBound: () => persisted,
    observe(value) {
      if (value <= highWater) return;
      highWater = value;
      // Not written at once: every allocation observes a new value, and a write costs two
      // fsyncs. Whoever must rely on a value being durable calls flush() first (the safe
      // point does before it publishes anything above the persisted bound); otherwise
      // the state is written in the background at most once per interval.
      dirty = true;
      background();
    },
    addMembers(ids) {
      let fresh = false;
      for (const id of ids) {
        if (!members.has(id) && !removed.has(id)) {
          members.add(id);
          fresh = true;
        }
      }
      if (!fresh) return;
      dirty = true;
      membersDirty = true;
      schedule();
    },
    removeMembers(ids) {
      let fresh = false;
      for (const id of ids) {
        members.delete(id);
        if (!removed.has(id)) {
          removed.add(id);
          fresh = true;
        }
      }
      if (!fresh) return;
      // Written at once like new members (a write under way began before the tombstone: it goes again).
      dirty = true;
      membersDirty = true;
      schedule();
    },
    async flush() {
      while (writing) await writing;
      if (dirty) {
        schedule();
        await writing;
      }
    },
  };
}

function readState(path: string): PersistedSequencerState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { highWater: 0n, bound: 0n, members: [], removed: [] };
    throw err;
  }
  const parsed = JSON.parse(text) as { highWater?: unknown; bound?: unknown; members?: unknown; removed?: unknown };
  const decimal = (v: unknown): v is string => typeof v === 'string' && /^\d+$/.test(v);
  if (!decimal(parsed.highWater) || (parsed.bound !== undefined && !decimal(parsed.bound)) || !Array.isArray(parsed.members) || (parsed.removed !== undefined && !Array.isArray(parsed.removed))) {
    throw new Error(`${path} is not a valid sequencer state file`);
  }
  const highWater = BigInt(parsed.highWater);
  // A file written before the bound existed: its safe points were capped at the high-water.
  const bound = decimal(parsed.bound) && BigInt(parsed.bound) > highWater ? BigInt(parsed.bound) : highWater;
  const strings = (list: unknown[]) => list.filter((m): m is string => typeof m === 'string');
  // A file written before tombstones existed has none.
  return { highWater, bound, members: strings(parsed.members), removed: Array.isArray(parsed.removed) ? strings(parsed.removed) : [] };
}
