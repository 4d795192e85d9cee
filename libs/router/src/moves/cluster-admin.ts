import type { Redis, RedisOptions } from 'ioredis';
import type { ControlPlane } from '../control-plane.ts';
import type { RouterTopology } from '../topology.ts';
import { createMoveCoordinator, type MoveCoordinator } from './coordinator.ts';
import { createMembership, type Membership } from './membership.ts';
import { startMoveJobs, type MoveJobsOptions } from './move-jobs.ts';
import { createMoveSteps, type MoveLogger, type MoveStepsOptions } from './move-steps.ts';
import { createRedisMoves } from './redis-moves.ts';
import { createTransferClient } from './transfer-client.ts';

export type ClusterAdminOptions = MoveStepsOptions & MoveJobsOptions;

/** Membership and partition moves of a Redis-backed cluster, wired (the router's `cluster` dependency). */
export interface ClusterAdmin {
  moves: MoveCoordinator;
  membership: Membership;
  /** Stops this router's moves worker (a move running here goes back to the queue). */
  close(): Promise<void>;
}

/**
 * Starts this router's worker of the cluster's moves queue and re-enqueues moves left
 * without a job (MoveJobs.reconcile).
 */
export async function createClusterAdmin(
  deps: { redis: Redis; redisUrl: string; redisOptions: RedisOptions; topology: RouterTopology; control: ControlPlane; clusterSecret: string; timeoutMs: number; log: MoveLogger },
  options: ClusterAdminOptions = {},
): Promise<ClusterAdmin> {
  const { redis, topology, control, log } = deps;
  const moves = createRedisMoves(redis);
  const transfer = createTransferClient({ clusterSecret: deps.clusterSecret, timeoutMs: deps.timeoutMs });
  const steps = createMoveSteps({ moves, topology, control, transfer, log }, options);
  const jobs = await startMoveJobs({ redisUrl: deps.redisUrl, redisOptions: deps.redisOptions, redis, steps, epoch: () => topology.epoch, log }, options);
  await jobs.reconcile().catch((err: unknown) => log.warn({ err }, 'moves not reconciled at start'));
  return {
    moves: createMoveCoordinator({ redis, steps, jobs, topology, log }),
    membership: createMembership({ moves, control, topology }),
    close: () => jobs.close(),
  };
}
