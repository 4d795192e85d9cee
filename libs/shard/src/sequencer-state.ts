import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** What the shard keeps of the sequencer across restarts (see `@skein/sequencer`, "Never twice"). */
export interface PersistedSequencerState {
  /** The highest counter value this shard observed. */
  highWater: bigint;
  /** Every sequencer member id this shard learned, itself included. */
  members: string[];
}

export interface SequencerStateFile {
  /** The state read at open (zero and no members when the file did not exist). */
  readonly initial: PersistedSequencerState;
  /** The highest high-water known to be on disk. */
  persistedHighWater(): bigint;
  /** Records a new high-water (from the sequencer's `onObserved`); written in the background. */
  observe(value: bigint): void;
  /** Records newly learned members (from the sequencer's `onMembers`); written in the background. */
  addMembers(ids: string[]): void;
  /** Resolves once everything recorded so far is on disk. */
  flush(): Promise<void>;
}

export interface SequencerStateLogger {
  error(obj: object, msg?: string): void;
}

/**
 * The sequencer's high-water and known members, in `<dataDir>/sequencer-state.json`.
 * High-water updates are written on flush() (or within a second in the background),
 * members at once; writes are coalesced (at most one in flight), each one atomic and durable: a temp
 * file is written and fsynced, renamed over the old one, and the directory fsynced.
 * Callers that must not rely on a value before it is durable compare it with
 * {@link SequencerStateFile.persistedHighWater} (the safe point does).
 */
/** How long a newly observed high-water may stay only in memory when nobody asks for it to be durable. */
const BACKGROUND_WRITE_MS = 1000;

export function openSequencerStateFile(dataDir: string, logger?: SequencerStateLogger): SequencerStateFile {
  const path = join(dataDir, 'sequencer-state.json');
  mkdirSync(dirname(path), { recursive: true });
  const initial = readState(path);
  let highWater = initial.highWater;
  let persisted = initial.highWater;
  const members = new Set(initial.members);
  let dirty = false;
  let writing: Promise<void> | null = null;
  let idleTimer: NodeJS.Timeout | null = null;

  async function writeOnce(): Promise<void> {
    dirty = false;
    const hw = highWater;
    const text = JSON.stringify({ highWater: hw.toString(), members: [...members].sort() });
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
    if (hw > persisted) persisted = hw;
  }

  function schedule(): void {
    dirty = true;
    writing ??= (async () => {
      try {
        while (dirty) await writeOnce();
      } catch (err) {
        // The next observation retries; the safe point stays capped at what is on disk.
        logger?.error({ err, path }, 'sequencer state could not be persisted');
      } finally {
        writing = null;
      }
    })();
  }

  return {
    initial,
    persistedHighWater: () => persisted,
    observe(value) {
      if (value <= highWater) return;
      highWater = value;
      // Not written at once: every allocation observes a new value, and a write costs two
      // fsyncs. Whoever must rely on a value being durable calls flush() first (the safe
      // point does before it publishes anything above the persisted value); otherwise
      // the state is written in the background at most once per interval.
      dirty = true;
      idleTimer ??= setTimeout(() => {
        idleTimer = null;
        if (dirty) schedule();
      }, BACKGROUND_WRITE_MS);
      idleTimer.unref();
    },
    addMembers(ids) {
      let fresh = false;
      for (const id of ids) {
        if (!members.has(id)) {
          members.add(id);
          fresh = true;
        }
      }
      if (fresh) schedule();
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
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { highWater: 0n, members: [] };
    throw err;
  }
  const parsed = JSON.parse(text) as { highWater?: unknown; members?: unknown };
  if (typeof parsed.highWater !== 'string' || !/^\d+$/.test(parsed.highWater) || !Array.isArray(parsed.members)) {
    throw new Error(`${path} is not a valid sequencer state file`);
  }
  return { highWater: BigInt(parsed.highWater), members: parsed.members.filter((m): m is string => typeof m === 'string') };
}
