import type { Redis } from 'ioredis';
import type { ControlPlane } from '../control-plane.ts';
import type { RouterTopology } from '../topology.ts';
import { createMoveCoordinator, type MoveCoordinator, type MoveCoordinatorOptions, type MoveLogger } from './coordinator.ts';
import { createMembership, type Membership } from './membership.ts';
import { createRedisMoves } from './redis-moves.ts';
import { createTransferClient } from './transfer-client.ts';

/** Membership and partition moves of a Redis-backed cluster, wired (the router's `cluster` dependency). */
export function createClusterAdmin(
  deps: { redis: Redis; topology: RouterTopology; control: ControlPlane; clusterSecret: string; timeoutMs: number; log: MoveLogger },
  options: MoveCoordinatorOptions = {},
): { moves: MoveCoordinator; membership: Membership } {
  const moves = createRedisMoves(deps.redis);
  const transfer = createTransferClient({ clusterSecret: deps.clusterSecret, timeoutMs: deps.timeoutMs });
  return {
    moves: createMoveCoordinator({ moves, topology: deps.topology, control: deps.control, transfer, log: deps.log }, options),
    membership: createMembership({ moves, control: deps.control, topology: deps.topology }),
  };
}
