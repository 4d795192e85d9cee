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
  engine: Pick<EventStore, 'writerState'>;
  sequencer: Pick<Sequencer, 'current'>;
  durable?: DurableBound;
  logger?: SafePointLogger;
}

export interface SafePointOptions {
  /**
   * Where the safe point starts. Only at process start, with nothing allocated, may
   * this be the persisted high-water: every later allocation is above it. Default 0n
   * (the engine's highest committed position is used in any case).
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
  /** Refreshes every `intervalMs` until {@link stop}. */
  start(): void;
  stop(): void;
  /** Counter reads that failed since start (Redis down). */
  readonly failedReads: number;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
 */
export function createSafePointTracker(deps: SafePointDeps, options: SafePointOptions = {}): SafePointTracker {
  const { engine, sequencer, durable, logger } = deps;
  const intervalMs = options.intervalMs ?? 50;
  let published = max(options.initial ?? 0n, engine.writerState().highestCommitted);
  let inflight: Promise<bigint> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let failedReads = 0;

  function publish(candidate: bigint, committed: bigint): void {
    const cap = durable ? max(durable.bound(), committed) : candidate;
    const value = candidate < cap ? candidate : cap;
    if (value > published) published = value;
  }

  async function attempt(): Promise<bigint> {
    const before = engine.writerState();
    if (before.allocating || before.lowestUncommitted !== null) {
      let candidate = before.highestCommitted;
      if (before.lowestUncommitted !== null) candidate = max(candidate, before.lowestUncommitted - 1n);
      publish(candidate, before.highestCommitted);
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
    if (durable && candidate > max(durable.bound(), after.highestCommitted)) {
      try {
        await durable.flush();
      } catch (err) {
        logger?.warn({ err }, 'sequencer high-water could not be persisted; the safe point waits');
      }
    }
    publish(candidate, after.highestCommitted);
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
        await sleep(Math.min(2, left));
      }
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
    },
    get failedReads() {
      return failedReads;
    },
  };
}
