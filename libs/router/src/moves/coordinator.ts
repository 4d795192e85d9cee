import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SkeinError, isSkeinError } from '@skein/protocol';
import { createRing, parseTopology, type Topology } from '@skein/ring';
import type { RouterTopology } from '../topology.ts';
import type { MoveJobs } from './move-jobs.ts';
import type { MoveLogger, MoveRecord, MoveSteps } from './move-steps.ts';
import { MOVE_KEYS } from './redis-moves.ts';

export type { MoveRecord, MoveState } from './move-steps.ts';

export type MovePlan = { partition: string; from: string; to: string }[];

export interface MoveCoordinator {
  /** Records the intent and enqueues the move's job (API.md: `POST /v1/admin/partitions/{partition}/move`). */
  start(partition: string, to: string): Promise<MoveRecord>;
  get(id: string): Promise<MoveRecord | null>;
  /** Resolves with the move once it is done or rolled back (and cleaned, when `cleaned`). */
  settled(id: string, options?: { timeoutMs?: number; cleaned?: boolean }): Promise<MoveRecord>;
  /** The moves rendezvous placement asks for now (draining shards emptied, the rest within ±1 of even). */
  plan(): Promise<MovePlan>;
  /**
   * Begins each move of the plan and enqueues its job; the queue runs a few at a time.
   * Returns the moves with their ids (none for a move that could not begin: it is logged).
   */
  execute(plan: MovePlan): Promise<{ id?: string; partition: string; from: string; to: string }[]>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const terminal = (m: MoveRecord) => m.state === 'done' || m.state === 'rolled_back';

/**
 * Starts partition moves: records each intent (`begin`, which marks the partition moving)
 * and enqueues its job on the cluster's moves queue (move-jobs.ts), which runs it in
 * whichever router's worker takes it.
 */
export function createMoveCoordinator(deps: { redis: Redis; steps: MoveSteps; jobs: MoveJobs; topology: RouterTopology; log: MoveLogger }): MoveCoordinator {
  const { redis, steps, jobs, topology, log } = deps;

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
      const begun = await steps.begin(move, { key: jobs.lockKeyOf(move.id), token: '' }).catch((err: unknown) => {
        if (isSkeinError(err, 'CONFLICT')) {
          const reason = String(err.details.reason);
          if (reason === 'moving') throw new SkeinError('CONFLICT', `partition ${partition} is already moving`);
          if (reason === 'target') throw new SkeinError('CONFLICT', `shard ${to} takes no partitions (draining)`);
          throw new SkeinError('CONFLICT', `partition ${partition} changed owner meanwhile`);
        }
        throw err;
      });
      // Named as unfinished first: a router that dies before the job is added leaves the
      // move for the next router that starts (MoveJobs.reconcile).
      await redis.multi().sadd(MOVE_KEYS.active, move.id).zadd(MOVE_KEYS.all, Date.now(), move.id).exec();
      await jobs.enqueue(begun, view.topology.epoch);
      log.info({ move: move.id, partition, from, to }, 'partition move started');
      return begun;
    },
    get: (id) => steps.load(id),
    async settled(id, { timeoutMs = 120_000, cleaned = false } = {}) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const move = await steps.load(id);
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
    async execute(plan) {
      const out: { id?: string; partition: string; from: string; to: string }[] = [];
      for (const m of plan) {
        try {
          out.push({ id: (await coordinator.start(m.partition, m.to)).id, ...m });
        } catch (err) {
          log.warn({ err, partition: m.partition, to: m.to }, 'planned move not begun');
          out.push({ ...m });
        }
      }
      return out;
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
