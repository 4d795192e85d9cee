import { randomUUID } from 'node:crypto';
import { SkeinError, isSkeinError } from '@skein/protocol';
import { createRing, parseTopology, type Topology } from '@skein/ring';
import { STALE_MARKER, type ControlPlane } from '../control-plane.ts';
import { topologyRecordOf, type RouterTopology } from '../topology.ts';
import { MOVE_KEYS, type MoveStep, type RedisMoves } from './redis-moves.ts';
import type { TransferClient } from './transfer-client.ts';

/** The smallest copy page under a bandwidth limit (a page always holds at least one entry). */
const MIN_PAGE_BYTES = 16 * 1024;

/** API.md, "Membership and partition moves". */
export type MoveState = 'copying' | 'tailing' | 'fencing' | 'done' | 'rolled_back';

/** A partition move as stored in Redis (`skein:move:<id>`) and shown by `GET /v1/admin/moves/{id}`. */
export interface MoveRecord {
  id: string;
  partition: string;
  from: string;
  to: string;
  state: MoveState;
  createdAt: string;
  updatedAt: string;
  /** Bytes and entries copied to the target so far (snapshot, tail and drain). */
  copiedBytes: number;
  copiedEntries: number;
  /** Where the range copy stands (opaque cursor of the source); null before the first page and after the last. */
  cursor: string | null;
  /** The next position of the partition log to tail from (decimal). Set when the copy starts. */
  tailFrom?: string;
  /** ms since the epoch: copy started, fenced. */
  copyStartedAt?: number;
  fencedAt?: number;
  /** The source's fence generation the fence raised (set by the fence step). */
  generation?: number;
  /** Writes to the partition paused this long: fence to flip (or rollback). */
  pauseMs?: number;
  /** What is left to clean: the source's copy after a flip, the target's after a rollback. */
  cleanup?: 'pending' | 'done';
  /** Why it rolled back. */
  reason?: string;
}

export type MovePlan = { partition: string; from: string; to: string }[];

export interface MoveCoordinatorOptions {
  /** Bytes per range page. Default 1 MiB. */
  pageBytes?: number;
  /** Copy bandwidth limit, bytes/s; 0 for none. Default 0. */
  maxBytesPerSecond?: number;
  /** The tail fences once a round copies fewer appends than this. Default 200. */
  fenceBelowAppends?: number;
  /** Before the fence, a move that makes no progress this long rolls back. Default 15 s. */
  stallMs?: number;
  /** How long the source keeps its copy after the flip. Default 10 s. */
  cleanupGraceMs?: number;
  /** How long a coordinator's claim on a move lasts unless renewed. Default 10 s. */
  lockMs?: number;
  /** How often unclaimed moves are looked for (a coordinator that died). Default 2 s. */
  resumeEveryMs?: number;
  /** Moves a rebalance or drain runs at once. Default 2. */
  concurrency?: number;
}

export interface MoveCoordinator {
  /** Records the intent and starts the move (API.md: `POST /v1/admin/partitions/{partition}/move`). */
  start(partition: string, to: string): Promise<MoveRecord>;
  get(id: string): Promise<MoveRecord | null>;
  /** Resolves with the move once it is done or rolled back (and cleaned, when `cleaned`). */
  settled(id: string, options?: { timeoutMs?: number; cleaned?: boolean }): Promise<MoveRecord>;
  /** The moves rendezvous placement asks for now (draining shards emptied, the rest within ±1 of even). */
  plan(): Promise<MovePlan>;
  /** Starts the plan's moves, a few at a time (in the background); returns them with their ids as they are known. */
  execute(plan: MovePlan): { id?: string; partition: string; from: string; to: string }[];
  /** Starts resuming moves whose coordinator went away. */
  startResuming(): void;
  close(): Promise<void>;
}

export interface MoveLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const terminal = (m: MoveRecord) => m.state === 'done' || m.state === 'rolled_back';

/**
 * Runs partition moves as resumable state machines persisted in Redis (DESIGN.md,
 * "Moving a partition"): copying → tailing → fencing → done, or rolled_back. Each step is
 * persisted before the next begins, under a lock any router may take over once it
 * expires, so a move whose coordinator died is resumed by another router; a move that
 * cannot finish rolls back to its source with a higher epoch.
 */
export function createMoveCoordinator(
  deps: { moves: RedisMoves; topology: RouterTopology; control: ControlPlane; transfer: TransferClient; log: MoveLogger },
  options: MoveCoordinatorOptions = {},
): MoveCoordinator {
  const { moves, topology, control, transfer, log } = deps;
  const redis = moves.redis;
  const pageBytes = options.pageBytes ?? 1 << 20;
  const maxBytesPerSecond = options.maxBytesPerSecond ?? 0;
  const fenceBelow = options.fenceBelowAppends ?? 200;
  const stallMs = options.stallMs ?? 15_000;
  const graceMs = options.cleanupGraceMs ?? 10_000;
  const lockMs = options.lockMs ?? 10_000;
  const resumeEveryMs = options.resumeEveryMs ?? 2000;
  const concurrency = options.concurrency ?? 2;
  const token = randomUUID();
  const running = new Map<string, Promise<void>>();
  let closed = false;
  let resumeTimer: NodeJS.Timeout | null = null;

  async function load(id: string): Promise<MoveRecord | null> {
    const text = await redis.get(MOVE_KEYS.move(id));
    return text === null ? null : (JSON.parse(text) as MoveRecord);
  }

  async function urlOf(shardId: string): Promise<string> {
    const view = await topology.refresh();
    const url = view.urlOf(shardId);
    if (!url) throw new SkeinError('UNAVAILABLE', `shard ${shardId} is not in the topology`, { retryAfter: 1 });
    return url;
  }

  /** Runs a move step script; the topology it changed is recorded on the shards (flip, rollback). */
  async function step(kind: MoveStep, move: MoveRecord, fields: Partial<MoveRecord>): Promise<MoveRecord> {
    const record = { ...move, ...fields, updatedAt: new Date().toISOString() };
    const result = await control.mutate(async (marker) => {
      const r = await moves.step(marker, kind, move, kind === 'save' || kind === 'begin' ? record : { ...fields, partition: move.partition, updatedAt: record.updatedAt }, token);
      return !r.ok && r.reason === 'stale' ? STALE_MARKER : r;
    });
    if (!result.ok) throw new SkeinError('CONFLICT', `move ${move.id} cannot ${kind}: ${result.reason}`, { reason: result.reason });
    if (kind === 'fence' || kind === 'flip' || kind === 'rollback') {
      await topology.refresh();
      const topologyRecord = topologyRecordOf(result.topology);
      // Flip and rollback are recorded on the shards before they count (a rebuilt Redis keeps
      // the partition where its data is); a fence not recorded comes back unfenced, which is a rollback.
      if (topologyRecord && kind !== 'fence') await control.record([topologyRecord]);
      else if (topologyRecord) void control.record([topologyRecord]).catch((err: unknown) => log.warn({ err, move: move.id }, 'fence not recorded on the shards'));
    }
    return JSON.parse(result.move) as MoveRecord;
  }

  /** One unit of work of a move not yet terminal; returns it as persisted after. */
  async function advance(move: MoveRecord): Promise<MoveRecord> {
    const source = await urlOf(move.from);
    const target = await urlOf(move.to);
    switch (move.state) {
      case 'copying': {
        if (move.tailFrom === undefined) {
          // Everything the partition appends from here on is in its log above this position.
          const highest = await transfer.highest(source, move.partition);
          return step('save', move, { tailFrom: (highest + 1n).toString(), copyStartedAt: Date.now() });
        }
        const started = Date.now();
        // Under a bandwidth limit a page is at most a second's worth, so progress is saved
        // (and shown, and resumable) about once a second rather than once a megabyte: at
        // 20 kB/s a 1 MiB page hid the copy for 52 s.
        const limit = maxBytesPerSecond > 0 ? Math.min(pageBytes, Math.max(MIN_PAGE_BYTES, maxBytesPerSecond)) : pageBytes;
        const page = await transfer.range(source, move.partition, move.cursor, limit);
        if (page.entries > 0) await transfer.importPage(target, move.partition, page.page);
        if (maxBytesPerSecond > 0) await sleep(Math.max(0, (page.bytes / maxBytesPerSecond) * 1000 - (Date.now() - started)));
        return step('save', move, {
          cursor: page.next,
          copiedBytes: move.copiedBytes + page.bytes,
          copiedEntries: move.copiedEntries + page.entries,
          ...(page.next === null ? { state: 'tailing' as const } : {}),
        });
      }
      case 'tailing': {
        const started = Date.now();
        const changes = await transfer.changes(source, move.partition, BigInt(move.tailFrom!), { maxEntries: 2000, mutable: false });
        if (changes.entries > 0) await transfer.importPage(target, move.partition, changes.page);
        if (maxBytesPerSecond > 0) await sleep(Math.max(0, (changes.bytes / maxBytesPerSecond) * 1000 - (Date.now() - started)));
        const saved = await step('save', move, { tailFrom: changes.next.toString(), copiedBytes: move.copiedBytes + changes.bytes, copiedEntries: move.copiedEntries + changes.entries });
        if (changes.appends >= fenceBelow) return saved;
        const fenced = await step('fence', saved, { fencedAt: Date.now() });
        log.info({ move: move.id, partition: move.partition, generation: fenced.generation }, 'partition fenced');
        return fenced;
      }
      case 'fencing': {
        // The handshake: the source knows the fence and nothing admitted before it can commit.
        await transfer.fence(source, move.partition, move.generation!);
        let from = BigInt(move.tailFrom!);
        let bytes = 0;
        let entries = 0;
        for (;;) {
          const changes = await transfer.changes(source, move.partition, from, { maxEntries: 5000, mutable: false });
          if (changes.entries > 0) await transfer.importPage(target, move.partition, changes.page);
          bytes += changes.bytes;
          entries += changes.entries;
          from = changes.next;
          if (changes.appends === 0) break;
        }
        // Heads, metadata and snapshots change without a log entry: all of them, once frozen.
        const mutable = await transfer.changes(source, move.partition, from, { maxEntries: 1, mutable: true });
        if (mutable.entries > 0) await transfer.importPage(target, move.partition, mutable.page);
        const pauseMs = Date.now() - move.fencedAt!;
        const done = await step('flip', move, {
          tailFrom: from.toString(),
          copiedBytes: move.copiedBytes + bytes + mutable.bytes,
          copiedEntries: move.copiedEntries + entries + mutable.entries,
          pauseMs,
          cleanup: 'pending',
        });
        log.info({ move: move.id, partition: move.partition, from: move.from, to: move.to, pauseMs, copiedBytes: done.copiedBytes }, 'partition moved');
        return done;
      }
      default:
        return move;
    }
  }

  async function rollback(move: MoveRecord, reason: string): Promise<MoveRecord> {
    const fields: Partial<MoveRecord> = { reason, cleanup: 'pending' };
    if (move.fencedAt !== undefined) fields.pauseMs = Date.now() - move.fencedAt;
    const back = await step('rollback', move, fields);
    log.warn({ move: move.id, partition: move.partition, reason }, 'partition move rolled back');
    return back;
  }

  async function cleanup(move: MoveRecord): Promise<MoveRecord> {
    // After a flip the source's copy goes once the grace period is over; after a rollback the target's.
    const shard = move.state === 'done' ? move.from : move.to;
    if (move.state === 'done') await sleep(Math.max(0, (move.fencedAt ?? 0) + (move.pauseMs ?? 0) + graceMs - Date.now()));
    const dropped = await transfer.drop(await urlOf(shard), move.partition);
    log.info({ move: move.id, partition: move.partition, shard, dropped }, 'moved partition copy dropped');
    return step('save', move, { cleanup: 'done' });
  }

  /** Runs a move to its end under this coordinator's claim. */
  async function drive(id: string): Promise<void> {
    if (!(await moves.lock(id, token, lockMs))) return;
    const renew = setInterval(() => void moves.renew(id, token, lockMs).catch(() => undefined), lockMs / 3);
    try {
      let move = await load(id);
      let lastProgress = Date.now();
      let backoff = 50;
      while (move && !closed) {
        if (terminal(move)) {
          if (move.cleanup !== 'pending') {
            await redis.srem(MOVE_KEYS.active, id);
            return;
          }
          try {
            move = await cleanup(move);
          } catch (err) {
            log.warn({ err, move: id }, 'cleanup failed; retried later');
            return;
          }
          continue;
        }
        try {
          move = await advance(move);
          lastProgress = Date.now();
          backoff = 50;
        } catch (err) {
          if (isSkeinError(err, 'CONFLICT') && err.details.reason === 'lock') return;
          const reason = isSkeinError(err) ? `${err.code}: ${err.message}` : String(err);
          log.warn({ err, move: id, state: move.state }, 'partition move step failed');
          // After the fence every moment is a write pause: roll back at once. Before it, retry until stalled.
          if (move.state === 'fencing' || Date.now() - lastProgress > stallMs) {
            try {
              move = await rollback((await load(id)) ?? move, reason);
            } catch (e) {
              log.warn({ err: e, move: id }, 'rollback failed; retried');
              await sleep(200);
              move = await load(id);
            }
          } else {
            await sleep(backoff);
            backoff = Math.min(backoff * 2, 1000);
            move = await load(id);
          }
        }
      }
    } finally {
      clearInterval(renew);
      await moves.release(id, token).catch(() => undefined);
    }
  }

  function run(id: string): void {
    if (running.has(id) || closed) return;
    const p = drive(id)
      .catch((err: unknown) => log.warn({ err, move: id }, 'partition move interrupted; another router resumes it'))
      .finally(() => running.delete(id));
    running.set(id, p);
  }

  async function resumeRound(): Promise<void> {
    for (const id of await redis.smembers(MOVE_KEYS.active)) run(id);
  }

  function currentTopology(): Topology {
    const t = topology.view?.topology;
    if (!t) throw new SkeinError('UNAVAILABLE', 'no topology is known', { retryAfter: 1 });
    return t;
  }

  const coordinator: MoveCoordinator = {
    async start(partition, to) {
      const view = await topology.refresh();
      const from = view.topology.placements?.[partition];
      if (from === undefined) throw new SkeinError('NOT_FOUND', `partition ${partition} has no recorded placement`);
      if (!view.topology.shards.some((s) => s.id === to)) throw new SkeinError('VALIDATION_FAILED', `no shard ${to} in the topology`, { field: 'to' });
      if (from === to) throw new SkeinError('CONFLICT', `partition ${partition} is already on shard ${to}`);
      const now = new Date().toISOString();
      const move: MoveRecord = { id: randomUUID(), partition, from, to, state: 'copying', createdAt: now, updatedAt: now, copiedBytes: 0, copiedEntries: 0, cursor: null };
      const begun = await step('begin', move, {}).catch((err: unknown) => {
        if (isSkeinError(err, 'CONFLICT')) {
          const reason = String(err.details.reason);
          if (reason === 'moving') throw new SkeinError('CONFLICT', `partition ${partition} is already moving`);
          if (reason === 'target') throw new SkeinError('CONFLICT', `shard ${to} takes no partitions (draining)`);
          throw new SkeinError('CONFLICT', `partition ${partition} changed owner meanwhile`);
        }
        throw err;
      });
      await redis.multi().sadd(MOVE_KEYS.active, move.id).zadd(MOVE_KEYS.all, Date.now(), move.id).exec();
      log.info({ move: move.id, partition, from, to }, 'partition move started');
      run(move.id);
      return begun;
    },
    get: load,
    async settled(id, { timeoutMs = 120_000, cleaned = false } = {}) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const move = await load(id);
        if (!move) throw new SkeinError('NOT_FOUND', `no move ${id}`);
        if (terminal(move) && (!cleaned || move.cleanup !== 'pending')) return move;
        if (Date.now() > until) throw new SkeinError('UNAVAILABLE', `move ${id} is still ${move.state}`, { retryAfter: 1 });
        await sleep(50);
      }
    },
    async plan() {
      await topology.refresh();
      return planMoves(currentTopology());
    },
    execute(plan) {
      const out = plan.map((m) => ({ ...m }) as { id?: string; partition: string; from: string; to: string });
      void (async () => {
        let next = 0;
        const worker = async () => {
          while (next < out.length && !closed) {
            const m = out[next++]!;
            try {
              const begun = await coordinator.start(m.partition, m.to);
              m.id = begun.id;
              await coordinator.settled(begun.id, { timeoutMs: 10 * 60_000 });
            } catch (err) {
              log.warn({ err, partition: m.partition, to: m.to }, 'planned move not run');
            }
          }
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, out.length) }, worker));
      })();
      return out;
    },
    startResuming() {
      if (resumeTimer) return;
      resumeTimer = setInterval(() => void resumeRound().catch(() => undefined), resumeEveryMs);
      resumeTimer.unref();
      void resumeRound().catch(() => undefined);
    },
    async close() {
      closed = true;
      if (resumeTimer) clearInterval(resumeTimer);
      await Promise.allSettled([...running.values()]);
    },
  };
  return coordinator;
}

/**
 * The moves that bring placements to what rendezvous placement asks for over the shards
 * that take partitions: every partition of a draining shard moves, and the rest only
 * where a shard holds more than its even share (±1). A partition that must move goes to
 * the first shard of its rendezvous preference with room; of a shard's partitions, those
 * whose rendezvous owner is elsewhere move first. Nothing else moves.
 */
export function planMoves(topologyIn: Topology | string): MovePlan {
  const topology = typeof topologyIn === 'string' ? parseTopology(topologyIn) : topologyIn;
  const placements = topology.placements ?? {};
  const eligible = topology.shards.filter((s) => s.state !== 'draining').map((s) => s.id);
  if (eligible.length === 0) return [];
  const ring = createRing(eligible);
  const partitions = Object.keys(placements).sort();
  const n = partitions.length;
  const floor = Math.floor(n / eligible.length);
  const ceil = Math.ceil(n / eligible.length);
  const count = new Map(eligible.map((id) => [id, 0]));
  for (const p of partitions) if (count.has(placements[p]!)) count.set(placements[p]!, count.get(placements[p]!)! + 1);
  const loose: string[] = [];
  for (const p of partitions) if (!count.has(placements[p]!)) loose.push(p);
  // Over-full shards shed partitions, the ones rendezvous places elsewhere first. At most
  // `n mod S` shards may keep `ceil`.
  let ceilings = n % eligible.length;
  for (const id of [...eligible].sort((a, b) => count.get(b)! - count.get(a)! || (a < b ? -1 : 1))) {
    const mine = partitions.filter((p) => placements[p] === id).sort((a, b) => Number(ring.shardFor(a) === id) - Number(ring.shardFor(b) === id) || (a < b ? -1 : 1));
    let keep = floor;
    if (ceilings > 0 && count.get(id)! >= ceil) {
      keep = ceil;
      ceilings--;
    }
    while (count.get(id)! > keep) {
      loose.push(mine.shift()!);
      count.set(id, count.get(id)! - 1);
    }
  }
  const plan: MovePlan = [];
  for (const p of loose) {
    const prefs = ring.preference(p, eligible.length);
    const to = prefs.find((id) => count.get(id)! < floor) ?? prefs.find((id) => count.get(id)! < ceil) ?? prefs[0]!;
    count.set(to, count.get(to)! + 1);
    if (to !== placements[p]) plan.push({ partition: p, from: placements[p]!, to });
  }
  return plan;
}
