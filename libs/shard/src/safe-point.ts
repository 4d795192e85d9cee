import type { EventStore } from '@skein/engine';
import type { Sequencer } from '@skein/protocol';

/**
 * Where published safe points must stay: a value can be relied on after a restart only
 * once it is on disk (the sequencer's persisted high-water, `sequencer-state.ts`).
 */
export interface DurableBound {
  /** The highest counter value known to be on disk. */
  bound(): bigint;
  /** Resolves once every value observed so far is on disk. */
  flush(): Promise<void>;
}

export interface SafePointLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface SafePointDeps {
  /** With `onCommit`, each durable batch publishes what it makes safe as it is answered. */
  engine: Pick<EventStore, 'writerState'> & Partial<Pick<EventStore, 'onCommit'>>;
  sequencer: Pick<Sequencer, 'current'>;
  durable?: DurableBound;
  logger?: SafePointLogger;
}

export interface SafePointOptions {
  /**
   * Where the safe point starts. Only at process start, with nothing allocated, may
   * this be the persisted high-water: every later allocation is above it. Never more
   * than a counter value observed (so never the persisted bound, which has headroom
   * above the counter): the safe point is a promise for the shards that allocate from
   * that counter too, a shard that joins later included. Default 0n (the engine's
   * highest committed position is used in any case).
   */
  initial?: bigint;
  /** Refresh period of {@link SafePointTracker.start}. Default 50 ms. */
  intervalMs?: number;
}

/** The shard's stable watermark input (DESIGN.md, "Global order and the sequencer"). */
export interface SafePointTracker {
  /** The published safe point: this shard will never commit an event at a position ≤ it that it has not committed already. Never decreases. */
  current(): bigint;
  /** Recomputes it now (single-flight: concurrent callers share one attempt) and returns it. */
  refresh(): Promise<bigint>;
  /**
   * Resolves with the safe point once it is ≥ `atLeast`, or with whatever it is after
   * `timeoutMs` (the caller compares). Read-your-writes for cross-shard reads.
   */
  waitFor(atLeast: bigint, timeoutMs: number): Promise<bigint>;
  /**
   * Calls `listener` with the new value each time the published safe point grows: after a
   * commit, a counter read, or a high-water flush. Returns an unsubscribe function.
   */
  onAdvance(listener: (value: bigint) => void): () => void;
  /** Refreshes every `intervalMs` until {@link stop}. */
  start(): void;
  stop(): void;
  /** Counter reads that failed since start (Redis down). */
  readonly failedReads: number;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);

/**
 * Computes the safe point from the engine's writer state and fresh counter reads:
 *
 * - Always: the highest committed position. Every later allocation lies above it (the
 *   engine passes it as the floor and rejects ranges that do not), so it is safe even
 *   with an allocation in flight.
 * - Known uncommitted range [a, b]: a − 1.
 * - Allocation sent, reply pending: nothing more (the safe point does not advance past
 *   the committed position).
 * - Nothing pending when the read is sent: the counter C read fresh. The writer state is
 *   checked before sending and again when the answer arrives; C is used only if nothing
 *   was pending at send time and no allocation is pending on arrival (capped below a
 *   range that became known meanwhile). The second check makes the rule hold even if
 *   an allocation sent after the read were executed before it (another connection, a
 *   read delayed by a re-join): the engine allocates one batch at a time, so such an
 *   allocation is either committed, failed, known, or still pending on arrival.
 *
 * The published value never decreases and, when `durable` is given, never exceeds what
 * is on disk (or committed), so a restart can start from the persisted high-water.
 * Every input is a counter value read, an allocated or committed position, or `initial`
 * (a persisted high-water): the value is never above the counter, which every shard's
 * later allocations pass, those of a shard not yet in a reader's topology included.
 *
 * Lag (issue 9): a value above what is on disk waits for the high-water file's fsync, which
 * under a write load took 60 ms on average and up to 700 ms (measured on the bench's
 * `npm start` topology). That flush runs beside the refreshes, never inside one: until it
 * is done the value stays capped, and commits keep publishing their positions meanwhile
 * (with `onCommit`, as each batch is answered, not at the next refresh).
 */
export function createSafePointTracker(deps: SafePointDeps, options: SafePointOptions = {}): SafePointTracker {
  const { engine, sequencer, durable, logger } = deps;
  const intervalMs = options.intervalMs ?? 50;
  let published = max(options.initial ?? 0n, engine.writerState().highestCommitted);
  let inflight: Promise<bigint> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let failedReads = 0;
  const listeners = new Set<(value: bigint) => void>();
  /** A candidate that waits for the durable bound, and the flush under way for it. */
  let awaitingDisk = 0n;
  let flushing: Promise<void> | null = null;

  function publish(candidate: bigint, committed: bigint): void {
    const cap = durable ? max(durable.bound(), committed) : candidate;
    const value = candidate < cap ? candidate : cap;
    if (value <= published) return;
    published = value;
    // Called from the engine's commit listener: a listener's fault must not reach the engine.
    for (const l of listeners) {
      try {
        l(value);
      } catch (err) {
        logger?.warn({ err }, 'a safe-point listener failed');
      }
    }
  }

  /** What the writer state alone makes safe (the rules above without a counter read). */
  function fromWriterState(state: ReturnType<typeof engine.writerState>): void {
    let candidate = state.highestCommitted;
    if (state.lowestUncommitted !== null) candidate = max(candidate, state.lowestUncommitted - 1n);
    publish(candidate, state.highestCommitted);
  }

  /**
   * Publishes `candidate` (a safe point already, only not yet on disk) once the high-water
   * file holds it. One flush at a time; a candidate arriving meanwhile waits for the next.
   */
  function publishWhenDurable(candidate: bigint): void {
    if (!durable) return;
    if (candidate > awaitingDisk) awaitingDisk = candidate;
    flushing ??= (async () => {
      try {
        while (awaitingDisk > published) {
          const target = awaitingDisk;
          await durable.flush();
          publish(target, engine.writerState().highestCommitted);
          if (durable.bound() < target) break; // nothing more on disk than before: the next refresh retries
        }
      } catch (err) {
        logger?.warn({ err }, 'sequencer high-water could not be persisted; the safe point waits');
      } finally {
        flushing = null;
      }
    })();
  }

  const unsubscribeCommits = engine.onCommit?.(() => fromWriterState(engine.writerState()));

  async function attempt(): Promise<bigint> {
    const before = engine.writerState();
    if (before.allocating || before.lowestUncommitted !== null) {
      fromWriterState(before);
      return published;
    }
    let counter: bigint;
    try {
      counter = await sequencer.current();
    } catch (err) {
      failedReads++;
      logger?.debug({ err }, 'counter read for the safe point failed');
      publish(engine.writerState().highestCommitted, engine.writerState().highestCommitted);
      return published;
    }
    const after = engine.writerState();
    let candidate = after.highestCommitted;
    if (!after.allocating) {
      let fromCounter = counter;
      if (after.lowestUncommitted !== null && after.lowestUncommitted - 1n < fromCounter) fromCounter = after.lowestUncommitted - 1n;
      candidate = max(candidate, fromCounter);
    }
    publish(candidate, after.highestCommitted);
    if (durable && candidate > published) publishWhenDurable(candidate);
    return published;
  }

  function refresh(): Promise<bigint> {
    inflight ??= attempt().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  return {
    current: () => published,
    refresh,
    async waitFor(atLeast, timeoutMs) {
      if (published >= atLeast) return published;
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const value = await refresh();
        if (value >= atLeast) return value;
        const left = deadline - performance.now();
        if (left <= 0) return value;
        // Woken by a commit or a flush as it publishes; the short sleep reads the counter
        // again for an idle shard (whose safe point only a counter read moves).
        let wake!: () => void;
        const woken = new Promise<void>((r) => (wake = r));
        const off = () => listeners.delete(wake);
        listeners.add(wake);
        const timer = setTimeout(wake, Math.min(2, left));
        await woken;
        clearTimeout(timer);
        off();
        if (published >= atLeast) return published;
      }
    },
    onAdvance(listener) {
      const l = (value: bigint) => listener(value);
      listeners.add(l);
      return () => listeners.delete(l);
    },
    start() {
      if (timer) return;
      timer = setInterval(() => void refresh(), intervalMs);
      timer.unref();
      void refresh();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
      unsubscribeCommits?.();
    },
    get failedReads() {
      return failedReads;
    },
  };
}
