/** What a tally expected when a gathering began (ReturnTally.mark). */
export interface TallyMark {
  readonly epoch: number;
  readonly expected: number;
}

/**
 * Writers answered and not back yet, counted over every store that shares the tally:
 * the shards of one node process (batcher.ts, "Gathering"). A service's writers each
 * write again once answered, but to whichever shard owns their next stream, so in a node
 * of three shards a shard that counted only its own writers back waited out its timer
 * on most gatherings (58-64% ended on the 2 ms timer at 32 writers). Counted over the
 * node, a gathering ends once every writer any of its shards answered is queued again
 * somewhere: on the timer in 12-14% of gatherings, 1.6 → 1.1 ms each, batches as large
 * (README, "Where the time goes").
 *
 * Invariants: `arrived` counts ops queued since the writers now expected began to be
 * expected, never more than `expected` once a new batch is answered (writers nobody
 * waited for, such as new ones, do not count for those of a later batch); a gathering
 * that gave up on the timer forgives the writers not back that it waited for, and no
 * others (they are not waited for again, so one writer that stopped costs one timer,
 * not one per batch; writers another store answered since that gathering began are
 * still waited for by that store's own gathering).
 */
export class ReturnTally {
  /** Counting restarts (from zero) each time everyone was back and a batch is answered. */
  #epoch = 0;
  #expected = 0;
  #arrived = 0;
  readonly #waiters = new Set<() => void>();

  /** A batch answered `n` writers that will come back on their own. */
  answered(n: number): void {
    if (this.#arrived >= this.#expected) {
      // Everyone is back: start counting afresh (and the counts stay small).
      this.#arrived = 0;
      this.#expected = 0;
      this.#epoch++;
    }
    this.#expected += n;
  }

  /** The writers expected now: what a gathering that begins now waits for (and may forgive). */
  mark(): TallyMark {
    return { epoch: this.#epoch, expected: this.#expected };
  }

  /** An op was queued in one of the stores. */
  arrived(): void {
    this.#arrived++;
    if (this.#arrived >= this.#expected) this.#wake();
  }

  /** Whether every writer answered is back. */
  get allBack(): boolean {
    return this.#arrived >= this.#expected;
  }

  /** Calls `done` once every writer answered is back (at once when they are); the returned function cancels. */
  whenAllBack(done: () => void): () => void {
    if (this.allBack) {
      done();
      return () => {};
    }
    this.#waiters.add(done);
    return () => this.#waiters.delete(done);
  }

  /** A gathering that began at `mark` stopped waiting: the writers it waited for that are not back are not waited for again. */
  forgive(mark: TallyMark): void {
    // Another epoch: everyone it waited for was back since.
    if (mark.epoch !== this.#epoch || this.#arrived >= mark.expected) return;
    this.#arrived = mark.expected;
    if (this.allBack) this.#wake();
  }

  #wake(): void {
    if (this.#waiters.size === 0) return;
    const waiting = [...this.#waiters];
    this.#waiters.clear();
    for (const done of waiting) done();
  }
}
