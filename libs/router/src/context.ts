// What the router's routes are built from: its dependencies, settings and shared parts.
import type { ControlStore } from '@skein/protocol';
import type { Logger } from 'pino';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { AppendBudget } from './append-budget.ts';
import type { AppendCoalescer } from './coalescer.ts';
import type { ControlPlane } from './control-plane.ts';
import type { JobQueues } from './jobs.ts';
import type { MoveCoordinator } from './moves/coordinator.ts';
import type { Membership } from './moves/membership.ts';
import type { RouterMetrics } from './metrics.ts';
import type { QuotaGate } from './quota.ts';
import type { Registry } from './registry.ts';
import type { Shards } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';
import type { WatermarkHub } from './watermark-hub.ts';

export interface RouterDeps {
  /** The control plane's state: Redis (`createRedisControlStore`) or embedded (`@skein/shard`'s `openEmbeddedControlStore`). */
  store: ControlStore;
  registry: Registry;
  topology: RouterTopology;
  /** Every shard as a ShardApi: in-process when hosted here, otherwise over HTTP. */
  shards: Shards;
  /** The control epoch, rebuilds of a wiped Redis, and records of every control-plane change on the shards. */
  control: ControlPlane;
  logger: Logger;
  metrics: MetricsRegistry;
  /** Membership and partition moves (Redis only). Absent: those admin routes are not served. */
  cluster?: { moves: MoveCoordinator; membership: Membership };
  /** Maintenance jobs on the shards' queues (BullMQ with Redis, in process on a node without). Absent: those admin routes are not served. */
  jobs?: JobQueues;
}

/** The router's settings (config.ts documents each). */
export interface RouterOptions {
  maxBodyBytes: number;
  maxPendingBytes: number;
  maxPendingBytesPerShard: number;
  shardTimeoutMs: number;
  /** Default 2 (coalescer.ts, CoalescerOptions.batchWaitMs). */
  batchWaitMs?: number;
  heartbeatMs: number;
  subscriberBufferBytes: number;
  slowSubscriberMs: number;
  pollMs: number;
}

/** What every route module gets. */
export interface RouteContext extends RouterDeps {
  options: RouterOptions;
  coalescer: AppendCoalescer;
  appendBudget: AppendBudget;
  quota: QuotaGate;
  watermarks: WatermarkHub;
  stats: RouterMetrics;
  /** Resolves when the router begins to shut down: subscriptions end. */
  closing: Promise<void>;
}
