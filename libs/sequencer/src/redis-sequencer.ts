/**
 * The Redis implementation of {@link Sequencer}: one counter shared by every shard of
 * the cluster, advanced by one Lua script per batch (`scripts/allocate-4.lua`).
 *
 * ## Never twice, never below a published safe point
 *
 * Redis may restart empty (a lost volume, a FLUSHALL) while shards keep running. The
 * counter must then never go back below a position already handed out, nor below a
 * safe point a shard has published. This holds as follows.
 *
 * 1. Within one epoch the counter only grows: allocate raises it to the caller's floor
 *    and then INCRBYs; nothing else lowers it, and no key has a TTL. Every position a
 *    member receives, and every counter value it reads, is at most the counter.
 * 2. Each member keeps its *high-water*: the highest counter value it ever observed
 *    (allocated `last`, `current()`, the counter at join). The owner persists it
 *    (`onObserved`) and passes it back as `initialHighWater` after a restart. A shard
 *    publishes a safe point only from a value it observed, so every position handed
 *    out and every safe point published is ≤ the high-water of some member; or, after
 *    its own restart, from a persisted bound above its high-water, and then it
 *    allocates with a floor at or above every safe point it published (the shard's
 *    `sequencer-state.ts`), so no counter below that bound puts its writes under it.
 * 3. The epoch is a random `marker` key written when the counter is seeded. Every
 *    allocate and current passes the marker its caller last saw, and runs only if it
 *    matches, so a Redis that lost the marker refuses all allocation. A counter found
 *    below the caller's high-water (writes lost, marker kept) deletes the marker too.
 * 4. A member with no valid marker runs `scripts/reseed-5.lua`. With the cluster still
 *    seeded and the counter ≥ its high-water, it joins: it adopts the marker. Otherwise
 *    it reports its high-water (or its `reseedFloor`, when higher) into the `reseed` hash and adds every member id it knows
 *    to `members`. Only when every id in `members` has reported does the script set the
 *    counter to the highest report (or the counter, if higher) and write a new marker.
 *    `members` is thus the union of every reporter's known members: every member known
 *    to any reporter must report its own high-water before anyone allocates again.
 * 5. So after a re-seed the counter is ≥ the high-water of every member that ever
 *    allocated or read, given the assumptions below; every later position is above it,
 *    hence above every position handed out and every safe point published before.
 *
 * ## Removed members
 *
 * A shard removed from the cluster stops being a member, so a re-seed does not wait for
 * it (it may never run again). Invariant: **an id leaves the wait of a re-seed only
 * through a tombstone, and a tombstone of X stands only beside a high-water that is at
 * or above every position X was ever handed out.** A re-seed that does not wait for X
 * therefore still sets the counter at or above X's positions: the tombstone came with
 * its reporter's report (one script call), or, in the removed set of a Redis that kept
 * its counter, was written while that counter was already above them. Why the bound
 * exists:
 * - A shard is removed only once it owns no partition (the router's membership script,
 *   atomic in Redis). Each partition it owned left it through a move whose fence raised
 *   its fence generation in Redis before the flip; an allocation checks that generation
 *   atomically and refuses every batch admitted before the fence, and after the fence
 *   the shard admits no write for the partition (fenced, then not owned). So every
 *   allocation the removed shard ever made precedes, in Redis order, the removal.
 * - The removal reads the counter in the same script, in a seeded epoch (the marker is
 *   present, so the counter is ≥ every allocation of the epoch, and the re-seed that
 *   began the epoch waited for the removed shard or for a tombstone of an earlier one):
 *   that value `c` is ≥ every position the removed shard was handed out. It is kept in
 *   the topology (`removed`, a control record every shard holds, so it survives a wipe
 *   of Redis through the control plane's rebuild). The script also takes the id out of
 *   `members` and puts it in `removed`, which no script adds back to `members`.
 * - A member tombstones X through {@link RedisSequencer.removeMembers} with that `c`:
 *   it first raises its own high-water to `c` (reported to `onObserved`), then drops X
 *   and reports the tombstone (`onRemoved`). The owner writes both in one atomic state
 *   write, so a persisted tombstone never stands beside a lower persisted high-water.
 *   Every re-seed call passes the member's tombstones with its report.
 * - A member also learns a removal from Redis: a join adds every id the member knows
 *   except those in the removed set and answers every member with the counter, so a
 *   known id missing from the answer is tombstoned with that counter. An id enters the
 *   removed set only while the counter (the removal), or a report the next seed counts
 *   (a tombstone passed with it), is already at or above every position it was handed
 *   out, and a counter read under a valid marker is at or above both.
 * - The removed shard's committed events are not lost to the argument either: the moves
 *   copied them with their positions to shards that stay, and those positions are ≤ `c`.
 *   Ranges it was handed out but never committed are held by nobody (a gap).
 * - Ids are retired: a removed id is never added again (the membership script refuses
 *   it), so a tombstone never hides a later incarnation.
 * Until a member learns of a removal it still knows X and adds it back in a re-seed;
 * another reporter's tombstone takes it out again (the removed set wins).
 *
 * Assumptions.
 * - Every member that ever allocated or read is known to some member that reports:
 *   itself (its own id is always reported) or another. Members learn each other
 *   through `members` on their next call after a join and persist them (`onMembers`,
 *   restored as `knownMembers`). A member that joined and allocated, and then went
 *   down before any other member learned of it, is missed by a re-seed that runs
 *   without it. Passing the full shard list of the topology as `knownMembers` closes
 *   that window.
 * - The owner persists the high-water (or passes an `initialHighWater` at least as
 *   high as every position it committed and every safe point it published) before it
 *   relies on a value. A range received but neither committed nor published may be
 *   handed out again after its owner crashed before persisting: nothing holds it.
 * - A member that knows no other member can seed a wiped Redis on its own: Redis
 *   cannot tell a brand-new cluster from a wiped one. A shard added to a running
 *   cluster must therefore be given the current shard list as `knownMembers`.
 * - Member ids are stable per shard and unique in the cluster.
 * - Lost writes are detected only when the counter falls below the caller's own
 *   high-water. An AOF that lost its last second (`appendfsync everysec` and an OS
 *   crash; a killed redis-server loses nothing) could hand a few positions out twice
 *   before detection: run the sequencer's Redis with `appendfsync always` where that
 *   matters. A wipe of the whole dataset is always detected (the marker is gone).
 *
 * Trade-off, plainly: after a wipe no position is allocated until every known member
 * has called in. A member that is down blocks allocation for the whole cluster until it
 * returns, or until it is removed from the cluster (drained first: "Removed members").
 * Availability is given up for the uniqueness of positions.
 *
 * Failure: when Redis cannot be reached every call fails within `commandTimeoutMs` with
 * UNAVAILABLE (`retryAfter` 1 s). The client keeps reconnecting in the background, so
 * calls succeed again once Redis is back, with no restart.
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { SkeinError, validationError, type PositionRange, type Sequencer } from '@skein/protocol';
import { RETRY_AFTER_SECONDS, SCRIPT_CODES, toSkeinError, type ScriptCode, type ScriptFailure } from './errors.ts';
import { defineScripts } from './scripts.ts';

/** The largest value the Redis counter can hold (INCRBY is signed 64-bit). */
export const MAX_COUNTER = (1n << 63n) - 1n;

/** Prefix of the sequencer's keys: `<prefix>counter`, `marker`, `members`, `reseed`, `removed`. */
export const DEFAULT_KEY_PREFIX = 'skein:seq:';

/** How long one Redis round trip may take before the call fails with UNAVAILABLE. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 500;

/** Metrics hooks; the owner wires them to its registry. No-op when absent. */
export interface SequencerObserver {
  /**
   * Called once per attempted round trip, with its duration. `ok` is false when Redis
   * did not answer (unreachable, timed out, error reply); a script answer that refuses
   * (re-seed waiting, overflow) is still `ok`.
   */
  roundTrip(seconds: number, ok: boolean): void;
}

/** Options of {@link createRedisSequencer}. */
export interface RedisSequencerOptions {
  /**
   * Redis to connect to, e.g. `redis://sequencer:6379`. The sequencer owns that client
   * and configures it to fail fast. Exactly one of `url` and `redis` is required.
   */
  url?: string;
  /**
   * Connection options for the client made from `url` that a URL cannot carry: `tls`
   * (CA, client certificate) for `rediss://`. A user and password go in the URL.
   */
  redisOptions?: Pick<RedisOptions, 'tls'>;
  /**
   * An ioredis client to use instead of `url`; the sequencer does not close it. For
   * the fail-fast behaviour it needs `enableOfflineQueue: false`,
   * `maxRetriesPerRequest: 0`, a `commandTimeout` and a `retryStrategy` that keeps
   * reconnecting.
   */
  redis?: Redis;
  /** This member's id in the cluster (the shard id): stable across restarts, unique. */
  memberId: string;
  /** Prefix of every key. Default {@link DEFAULT_KEY_PREFIX}. */
  keyPrefix?: string;
  /**
   * The highest counter value this member observed before (persisted from
   * `onObserved`, or at least the highest position it committed or published).
   * Reported in a re-seed. Default 0n.
   */
  initialHighWater?: bigint;
  /**
   * The least this member reports in a re-seed, read at each one: a value its previous
   * run may have promised readers something up to (a shard's persisted safe-point bound,
   * which lies above its persisted high-water: safe points up to it needed no state
   * write, so a crash may lose the high-water that covered them). Never taken as the
   * high-water: a counter below it is not lost data, so a restart does not force a
   * re-seed. Default: the high-water alone.
   */
  reseedFloor?: () => bigint;
  /** Member ids this member learned before (persisted from `onMembers`). Default none. */
  knownMembers?: string[];
  /** Member ids this member tombstoned before (persisted from `onRemoved`, see "Removed members"). Default none. */
  removedMembers?: string[];
  /**
   * Called synchronously whenever the high-water grows, before the call returns the
   * value. The owner persists it for `initialHighWater`. If it throws, the call fails
   * with that error and the range is not used (a gap).
   */
  onObserved?: (value: bigint) => void;
  /** Called synchronously with member ids seen for the first time; the owner persists them for `knownMembers`. */
  onMembers?: (ids: string[]) => void;
  /**
   * Called synchronously with newly tombstoned member ids, after `onObserved` reported
   * the high-water that covers them. The owner persists them for `removedMembers` (and
   * drops them from `knownMembers`) in the same write as that high-water.
   */
  onRemoved?: (ids: string[]) => void;
  /** Per round trip timeout, and how long a call waits for a connection that is being established. Default {@link DEFAULT_COMMAND_TIMEOUT_MS}. */
  commandTimeoutMs?: number;
  /** Metrics hooks. */
  observe?: SequencerObserver;
  /**
   * The fence generation every write of the batch being allocated was admitted under
   * (DESIGN.md, "Moving a partition"). When given, an allocation is refused with
   * NOT_OWNER, allocating nothing, if this member's fence generation in Redis
   * (`fenceKeyOf(memberId)`) is higher: a partition was fenced after some write of the
   * batch passed the ownership check. Absent: not checked.
   */
  fenceGeneration?: () => number;
  /** Called with the generation Redis holds when an allocation was refused as fenced (re-read the topology). */
  onFenced?: (generation: number) => void;
}

/** A {@link Sequencer} backed by Redis, with the state the owner persists. */
export interface RedisSequencer extends Sequencer {
  readonly memberId: string;
  /** The highest counter value observed so far (what a re-seed reports). */
  highWater(): bigint;
  /** Every member id known so far, this one included unless it was removed. */
  knownMembers(): string[];
  /** Every member id tombstoned so far. */
  removedMembers(): string[];
  /**
   * Tombstones removed members (see "Removed members"): each `coveredUpTo` must be ≥ every
   * position that member was ever handed out (the counter the removal read). Raises the
   * high-water to it first. Ids already tombstoned are skipped. Synchronous.
   */
  removeMembers(removed: { id: string; coveredUpTo: bigint }[]): void;
}

type Reply = (string | number)[];

/**
 * Creates the Redis sequencer. Connects in the background; the first call waits for the
 * connection up to `commandTimeoutMs`, then joins the cluster (or seeds it) before
 * allocating.
 * @throws SkeinError VALIDATION_FAILED naming the option when options are invalid.
 */
export function createRedisSequencer(options: RedisSequencerOptions): RedisSequencer {
  const { memberId, keyPrefix = DEFAULT_KEY_PREFIX, onObserved, onMembers, onRemoved, observe, fenceGeneration, onFenced } = options;
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  let highWater = options.initialHighWater ?? 0n;

  if (typeof memberId !== 'string' || memberId === '') throw validationError('memberId', 'memberId must be a non-empty string');
  if ((options.url === undefined) === (options.redis === undefined)) throw validationError('url', 'give exactly one of url and redis');
  if (typeof highWater !== 'bigint' || highWater < 0n || highWater > MAX_COUNTER) {
    throw validationError('initialHighWater', 'initialHighWater must be a bigint in [0, 2^63-1]');
  }
  if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) throw validationError('commandTimeoutMs', 'commandTimeoutMs must be a positive number');

  const owned = options.redis === undefined;
  const redis =
    options.redis ??
    new Redis(options.url!, {
      ...options.redisOptions,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: commandTimeoutMs,
      connectTimeout: Math.max(commandTimeoutMs, 1000),
      // Always a number: reconnect forever, so calls succeed again once Redis is back.
      retryStrategy: (attempt) => Math.min(attempt * 50, 1000),
    });
  // Connection errors reach callers as UNAVAILABLE; the client-level event would
  // otherwise be printed as unhandled on every reconnect attempt.
  if (owned) redis.on('error', () => {});
  const scripts = defineScripts(redis);
  const keys = {
    counter: `${keyPrefix}counter`,
    marker: `${keyPrefix}marker`,
    members: `${keyPrefix}members`,
    reseed: `${keyPrefix}reseed`,
    removed: `${keyPrefix}removed`,
    fence: fenceKeyOf(memberId, keyPrefix),
  };
  const removed = new Set<string>(options.removedMembers ?? []);
  const known = new Set<string>([memberId, ...(options.knownMembers ?? [])].filter((id) => !removed.has(id)));
  let marker: string | null = null;
  let joining: Promise<void> | null = null;
  let connecting: Promise<boolean> | null = null;
  let closed = false;

  function observed(value: bigint): void {
    if (value > highWater) {
      highWater = value;
      onObserved?.(value);
    }
  }

  /** Learns the member ids of a reply that listed them. */
  function learn(listed: string[]): void {
    if (listed.length === 0) return;
    const ids = listed.filter((id) => !removed.has(id));
    const fresh = ids.filter((id) => !known.has(id));
    for (const id of fresh) known.add(id);
    if (fresh.length > 0) onMembers?.(fresh);
    // Redis lacks ids this member knows (the members set lost writes), or holds one it
    // tombstoned (added back before the tombstone reached it): the next call joins
    // again, which adds the first and takes out the second.
    if (ids.length < known.size || ids.length < listed.length) marker = null;
  }

  function removeMembers(entries: { id: string; coveredUpTo: bigint }[]): void {
    const fresh: string[] = [];
    for (const { id, coveredUpTo } of entries) {
      if (removed.has(id)) continue;
      if (typeof coveredUpTo !== 'bigint' || coveredUpTo < 0n || coveredUpTo > MAX_COUNTER) {
        throw validationError('coveredUpTo', 'coveredUpTo must be a bigint in [0, 2^63-1]');
      }
      // The high-water first: the tombstone must never be persisted without it.
      observed(coveredUpTo);
      removed.add(id);
      known.delete(id);
      fresh.push(id);
    }
    if (fresh.length === 0) return;
    onRemoved?.(fresh);
    // The next call joins, passing the tombstones: Redis takes them out of members if
    // the removal's own write did not (a wiped or rebuilt Redis). A join that found them
    // removed sets its marker after this.
    marker = null;
  }

  function waitForConnection(): Promise<boolean> {
    connecting ??= new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        connecting = null;
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), commandTimeoutMs);
      redis.once('ready', onReady);
    });
    return connecting;
  }

  /** One script call: waits briefly for a connection being established, times it, translates failures. */
  async function roundTrip(script: ScriptFailure['script'], args: (string | number)[]): Promise<Reply> {
    if (closed) throw new SkeinError('UNAVAILABLE', 'the sequencer is closed', { retryAfter: RETRY_AFTER_SECONDS });
    const started = performance.now();
    try {
      if (redis.status !== 'ready') {
        // Establishing (startup, a reconnect attempt): wait a little. Known down
        // ('reconnecting', 'end'): fail at once rather than queue.
        if (redis.status === 'wait') redis.connect().catch(() => {});
        const establishing = redis.status === 'connecting' || redis.status === 'connect' || redis.status === 'wait';
        if (!establishing || !(await waitForConnection())) {
          throw new Error(`Redis connection is ${redis.status}`);
        }
      }
      const reply = await scripts[script](args);
      if (!Array.isArray(reply) || typeof reply[0] !== 'number') throw new Error(`malformed ${script} script reply`);
      observe?.roundTrip((performance.now() - started) / 1000, true);
      return reply as Reply;
    } catch (err) {
      observe?.roundTrip((performance.now() - started) / 1000, false);
      throw toSkeinError(err);
    }
  }

  function join(): Promise<void> {
    joining ??= (async () => {
      try {
        const others = [...known].filter((id) => id !== memberId);
        const floor = options.reseedFloor?.() ?? 0n;
        const report = floor > highWater ? floor : highWater;
        const reply = await roundTrip('reseed', [
          keys.counter, keys.marker, keys.members, keys.reseed, keys.removed,
          memberId, highWater.toString(), report.toString(), randomUUID(), others.length, ...others, ...removed,
        ]);
        const code = reply[0] as ScriptCode;
        if (code !== SCRIPT_CODES.OK) {
          throw toSkeinError({ script: 'reseed', code, details: { waitingFor: reply.slice(1).map(String) } });
        }
        const counter = BigInt(reply[2]!);
        observed(counter);
        // The join added every id this member knows except those in the removed set, and
        // answered every member: a known id missing from the answer is removed. The
        // counter of the answer covers it ("Removed members": an id enters the removed
        // set only when the counter, or a report the next seed counts, is already at or
        // above every position it was handed out).
        const listed = new Set(reply.slice(3).map(String));
        const gone = [...known].filter((id) => !listed.has(id));
        if (gone.length > 0) removeMembers(gone.map((id) => ({ id, coveredUpTo: counter })));
        marker = String(reply[1]);
        learn([...listed]);
      } finally {
        joining = null;
      }
    })();
    return joining;
  }

  /**
   * Runs a marker-checked script, joining or re-seeding first when needed. Bounded:
   * an epoch that keeps changing under the caller ends in UNAVAILABLE.
   */
  async function checked(script: 'allocate' | 'current', extraArgs: (string | number)[]): Promise<Reply> {
    let last: ScriptCode = SCRIPT_CODES.MARKER_MISMATCH;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (marker === null) await join();
      const sent = marker;
      if (sent === null) continue;
      const args: (string | number)[] =
        script === 'allocate' ? [keys.counter, keys.marker, keys.members, keys.fence] : [keys.counter, keys.marker, keys.members, keys.removed];
      args.push(sent, highWater.toString(), memberId, known.size);
      for (const a of extraArgs) args.push(a);
      const reply = await roundTrip(script, args);
      last = reply[0] as ScriptCode;
      if (last === SCRIPT_CODES.OK) return reply;
      if (last === SCRIPT_CODES.FENCED) {
        onFenced?.(Number(reply[1]));
        throw toSkeinError({ script, code: last, details: { generation: Number(reply[1]) } });
      }
      if (last !== SCRIPT_CODES.MARKER_MISMATCH && last !== SCRIPT_CODES.DATA_LOSS) {
        throw toSkeinError({ script, code: last, details: { actual: String(reply[1]) } });
      }
      // Another call of this member may already have joined the new epoch.
      if (marker === sent) marker = null;
    }
    throw toSkeinError({ script, code: last });
  }

  return {
    memberId,

    async allocate(count: number, floor: bigint): Promise<PositionRange> {
      if (!Number.isSafeInteger(count) || count < 1) throw validationError('count', 'count must be an integer ≥ 1');
      if (typeof floor !== 'bigint' || floor < 0n) throw validationError('floor', 'floor must be a bigint ≥ 0');
      const maxBase = MAX_COUNTER - BigInt(count);
      if (floor > maxBase) {
        throw new SkeinError('VALIDATION_FAILED', 'the range would end beyond 2^63-1, the largest position the Redis sequencer can hold', { field: 'count', floor: floor.toString(), count });
      }
      const reply = await checked('allocate', [count, floor.toString(), maxBase.toString(), fenceGeneration ? String(fenceGeneration()) : '']);
      const last = BigInt(reply[1]!);
      observed(last);
      // Member ids come only when this member's count of them differs (allocate-4.lua).
      if (reply.length > 2) learn(reply.slice(2).map(String));
      return { first: last - BigInt(count) + 1n, last };
    },

    async current(): Promise<bigint> {
      const reply = await checked('current', []);
      const value = BigInt(reply[1]!);
      observed(value);
      learn(reply.slice(2).map(String));
      return value;
    },

    highWater: () => highWater,

    knownMembers: () => [...known],

    removedMembers: () => [...removed],

    removeMembers,

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (!owned) return;
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}

/** The Redis key of a member's fence generation (see `RedisSequencerOptions.fenceGeneration`). */
export function fenceKeyOf(memberId: string, keyPrefix: string = DEFAULT_KEY_PREFIX): string {
  return `${keyPrefix}fence:${memberId}`;
}

/**
 * Reads the counter (the highest position handed out so far) without allocating, for
 * readers that are not members, such as a router wanting read-your-writes: every
 * append acknowledged before this read has a position at or below the value returned.
 * 0n when the counter is absent (a fresh or wiped Redis).
 */
export async function readCounter(redis: { get(key: string): Promise<string | null> }, keyPrefix: string = DEFAULT_KEY_PREFIX): Promise<bigint> {
  const text = await redis.get(`${keyPrefix}counter`);
  return text === null ? 0n : BigInt(text);
}
