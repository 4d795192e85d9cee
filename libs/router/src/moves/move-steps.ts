import { SkeinError, type MoveState } from '@skein/protocol';
import { STALE_MARKER, type ControlPlane } from '../control-plane.ts';
import { topologyRecordOf, type RouterTopology } from '../topology.ts';
import { MOVE_KEYS, type MoveLock, type MoveStep, type RedisMoves } from './redis-moves.ts';
import type { TransferClient } from './transfer-client.ts';

export type { MoveState };

/** The smallest copy page under a bandwidth limit (a page always holds at least one entry). */
const MIN_PAGE_BYTES = 16 * 1024;

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

export interface MoveStepsOptions {
  /** Bytes per range page. Default 1 MiB. */
  pageBytes?: number;
  /** Copy bandwidth limit, bytes/s; 0 for none. Default 0. */
  maxBytesPerSecond?: number;
  /** The tail fences once a round copies fewer appends than this. Default 200. */
  fenceBelowAppends?: number;
  /**
   * Test fail point, off by default (`SKEIN_ROUTER_MOVE_PAUSE_BEFORE_MS`; DESIGN.md, "Test
   * fail points"): ms to wait before a point of each move, the first time this router
   * reaches it for that move, so a test can kill a shard while a move is in a known phase.
   */
  pauseBeforeMs?: Readonly<Partial<Record<MovePausePoint, number>>>;
}

/**
 * Where a move can be made to wait (test fail points): `copy` the first copy page (copying,
 * `tailFrom` noted), `tail` the first tail round (the snapshot is on the target), `handshake`
 * the fence handshake (fenced: the partition's writes are paused), `flip` the flip (fenced,
 * the log drained to the target).
 */
export const MOVE_PAUSE_POINTS = ['copy', 'tail', 'handshake', 'flip'] as const;
export type MovePausePoint = (typeof MOVE_PAUSE_POINTS)[number];

export interface MoveLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

/**
 * The steps of one partition move (DESIGN.md, "Moving a partition"), each persisted in
 * the move record before the next begins. Every step but `begin` is a script that checks
 * the caller still holds `lock` (the lock of the move's job), atomically with the record
 * and the topology it changes, so a run that lost its job to another router changes nothing.
 */
export interface MoveSteps {
  load(id: string): Promise<MoveRecord | null>;
  /** Records the intent and marks the partition moving. @throws CONFLICT (`details.reason`: moving, owner, target). */
  begin(move: MoveRecord, lock: MoveLock): Promise<MoveRecord>;
  /** One unit of work of a move not yet terminal; returns the move as persisted after. */
  advance(move: MoveRecord, lock: MoveLock): Promise<MoveRecord>;
  /** Lifts the fence (if any) with a higher epoch and leaves the placement on the source. */
  rollback(move: MoveRecord, reason: string, lock: MoveLock): Promise<MoveRecord>;
  /** Drops the copy that lost (the source's after a flip, the target's after a rollback). */
  cleanup(move: MoveRecord, lock: MoveLock): Promise<MoveRecord>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function createMoveSteps(
  deps: { moves: RedisMoves; topology: RouterTopology; control: ControlPlane; transfer: TransferClient; log: MoveLogger },
  options: MoveStepsOptions = {},
): MoveSteps {
  const { moves, topology, control, transfer, log } = deps;
  const pageBytes = options.pageBytes ?? 1 << 20;
  const maxBytesPerSecond = options.maxBytesPerSecond ?? 0;
  const fenceBelow = options.fenceBelowAppends ?? 200;
  const pauseBeforeMs = options.pauseBeforeMs ?? {};
  const paused = new Set<string>();

  /** The test fail point: waits before `point` once per move in this router, when configured. */
  async function pauseBefore(move: MoveRecord, point: MovePausePoint): Promise<void> {
    const ms = pauseBeforeMs[point];
    if (!ms || paused.has(`${move.id}:${point}`)) return;
    paused.add(`${move.id}:${point}`);
    log.info({ move: move.id, partition: move.partition, point, ms }, 'move paused (test fail point)');
    await sleep(ms);
  }

  async function load(id: string): Promise<MoveRecord | null> {
    const text = await moves.redis.get(MOVE_KEYS.move(id));
    return text === null ? null : (JSON.parse(text) as MoveRecord);
  }

  async function urlOf(shardId: string): Promise<string> {
    const view = await topology.refresh();
    const url = view.urlOf(shardId);
    if (!url) throw new SkeinError('UNAVAILABLE', `shard ${shardId} is not in the topology`, { retryAfter: 1 });
    return url;
  }

  /** Runs a move step script; the topology it changed is recorded on the shards (flip, rollback). */
  async function step(kind: MoveStep, move: MoveRecord, fields: Partial<MoveRecord>, lock: MoveLock): Promise<MoveRecord> {
    const record = { ...move, ...fields, updatedAt: new Date().toISOString() };
    const result = await control.mutate(async (marker) => {
      const r = await moves.step(marker, kind, move, kind === 'save' || kind === 'begin' ? record : { ...fields, partition: move.partition, updatedAt: record.updatedAt }, lock);
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

  async function advance(move: MoveRecord, lock: MoveLock): Promise<MoveRecord> {
    const source = await urlOf(move.from);
    const target = await urlOf(move.to);
    switch (move.state) {
      case 'copying': {
        if (move.tailFrom === undefined) {
          // Everything the partition appends from here on is in its log above this position.
          const highest = await transfer.highest(source, move.partition);
          return step('save', move, { tailFrom: (highest + 1n).toString(), copyStartedAt: Date.now() }, lock);
        }
        await pauseBefore(move, 'copy');
        const started = Date.now();
        // Under a bandwidth limit a page is at most a second's worth, so progress is saved
        // (and shown, and resumable) about once a second rather than once a megabyte: at
        // 20 kB/s a 1 MiB page hid the copy for 52 s.
        const limit = maxBytesPerSecond > 0 ? Math.min(pageBytes, Math.max(MIN_PAGE_BYTES, maxBytesPerSecond)) : pageBytes;
        const page = await transfer.range(source, move.partition, move.cursor, limit);
        if (page.entries > 0) await transfer.importPage(target, move.partition, page.page);
        if (maxBytesPerSecond > 0) await sleep(Math.max(0, (page.bytes / maxBytesPerSecond) * 1000 - (Date.now() - started)));
        return step(
          'save',
          move,
          {
            cursor: page.next,
            copiedBytes: move.copiedBytes + page.bytes,
            copiedEntries: move.copiedEntries + page.entries,
            ...(page.next === null ? { state: 'tailing' as const } : {}),
          },
          lock,
        );
      }
      case 'tailing': {
        await pauseBefore(move, 'tail');
        // The bandwidth limit is the snapshot copy's only: the tail carries what the partition
        // appends meanwhile, and a tail held below the write rate never gets close enough to
        // fence (seen: 2 writers outran a 60 kB/s limit once appends got faster, and the move
        // tailed for good). Its cost is bounded by the partition's own write rate.
        const changes = await transfer.changes(source, move.partition, BigInt(move.tailFrom!), { maxEntries: 2000, mutable: false });
        if (changes.entries > 0) await transfer.importPage(target, move.partition, changes.page);
        const saved = await step('save', move, { tailFrom: changes.next.toString(), copiedBytes: move.copiedBytes + changes.bytes, copiedEntries: move.copiedEntries + changes.entries }, lock);
        if (changes.appends >= fenceBelow) return saved;
        const fenced = await step('fence', saved, { fencedAt: Date.now() }, lock);
        log.info({ move: move.id, partition: move.partition, generation: fenced.generation }, 'partition fenced');
        return fenced;
      }
      case 'fencing': {
        await pauseBefore(move, 'handshake');
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
        await pauseBefore(move, 'flip');
        const pauseMs = Date.now() - move.fencedAt!;
        const done = await step(
          'flip',
          move,
          {
            tailFrom: from.toString(),
            copiedBytes: move.copiedBytes + bytes + mutable.bytes,
            copiedEntries: move.copiedEntries + entries + mutable.entries,
            pauseMs,
            cleanup: 'pending',
          },
          lock,
        );
        log.info({ move: move.id, partition: move.partition, from: move.from, to: move.to, pauseMs, copiedBytes: done.copiedBytes }, 'partition moved');
        return done;
      }
      default:
        return move;
    }
  }

  return {
    load,
    begin: (move, lock) => step('begin', move, {}, lock),
    advance,
    async rollback(move, reason, lock) {
      const fields: Partial<MoveRecord> = { reason, cleanup: 'pending' };
      if (move.fencedAt !== undefined) fields.pauseMs = Date.now() - move.fencedAt;
      const back = await step('rollback', move, fields, lock);
      log.warn({ move: move.id, partition: move.partition, reason }, 'partition move rolled back');
      return back;
    },
    async cleanup(move, lock) {
      const shard = move.state === 'done' ? move.from : move.to;
      // A rolled-back move's target that has left the cluster took its copy with it.
      const url = (await topology.refresh()).urlOf(shard);
      if (!url && move.state === 'rolled_back') {
        log.info({ move: move.id, partition: move.partition, shard }, 'moved partition copy left with its removed shard');
        return step('save', move, { cleanup: 'done' }, lock);
      }
      const dropped = await transfer.drop(await urlOf(shard), move.partition);
      log.info({ move: move.id, partition: move.partition, shard, dropped }, 'moved partition copy dropped');
      return step('save', move, { cleanup: 'done' }, lock);
    },
  };
}
