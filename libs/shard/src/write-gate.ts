import { SkeinError } from '@skein/protocol';
import type { EventStore } from '@skein/engine';
import type { Ownership } from './ownership.ts';

/**
 * The shard's side of a partition fence (DESIGN.md, "Moving a partition"). Every write
 * is admitted under the fence generation this shard knows, and refused (NOT_OWNER) when
 * its partition is fenced or not owned. The sequencer is given the oldest generation a
 * pending write was admitted under (`generation`), so once a fence is in Redis no
 * position is allocated for a write that passed the ownership check before the shard
 * knew of it: such a batch is refused NOT_OWNER, nothing written, and the router
 * re-routes it. `settled(g)` is the fence handshake: once it resolves, no write admitted
 * before the shard knew generation `g` can still commit.
 */
export interface WriteGate {
  /** The engine with its writes gated (reads go straight through). */
  readonly store: EventStore;
  /** The oldest fence generation a pending write was admitted under; the known one when none is pending. */
  generation(): number;
  /** Resolves once no write admitted under a generation below `g` is pending. */
  settled(g: number): Promise<void>;
}

export function createWriteGate(engine: EventStore, ownership: Ownership): WriteGate {
  /** Pending writes by the generation they were admitted under. */
  const pending = new Map<number, number>();
  let waiters: { g: number; resolve: () => void }[] = [];

  function oldest(): number | undefined {
    let min: number | undefined;
    for (const g of pending.keys()) if (min === undefined || g < min) min = g;
    return min;
  }

  function release(g: number): void {
    const n = pending.get(g)! - 1;
    if (n === 0) pending.delete(g);
    else pending.set(g, n);
    if (waiters.length === 0) return;
    const min = oldest();
    waiters = waiters.filter((w) => {
      if (min !== undefined && min < w.g) return true;
      w.resolve();
      return false;
    });
  }

  function admit<T>(partition: string, write: () => Promise<T>): Promise<T> {
    if (ownership.isFenced(partition)) {
      return Promise.reject(new SkeinError('NOT_OWNER', `partition ${partition} is fenced for a move; retry after the flip`, { epoch: ownership.epoch }));
    }
    const refused = ownership.check(partition, undefined);
    if (refused) return Promise.reject(refused);
    const g = ownership.fenceGeneration;
    pending.set(g, (pending.get(g) ?? 0) + 1);
    let result: Promise<T>;
    try {
      result = write();
    } catch (err) {
      release(g);
      throw err;
    }
    return result.finally(() => release(g));
  }

  const store: EventStore = {
    ...engine,
    append: (p, s, request) => admit(p, () => engine.append(p, s, request)),
    appendParsed: (p, s, append) => admit(p, () => engine.appendParsed(p, s, append)),
    deleteStream: (p, s, options) => admit(p, () => engine.deleteStream(p, s, options)),
    setMetadata: (p, s, metadata) => admit(p, () => engine.setMetadata(p, s, metadata)),
    putSnapshot: (p, s, version, data) => admit(p, () => engine.putSnapshot(p, s, version, data)),
  };

  return {
    store,
    generation: () => oldest() ?? ownership.fenceGeneration,
    settled(g) {
      const min = oldest();
      if (min === undefined || min >= g) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ g, resolve }));
    },
  };
}
