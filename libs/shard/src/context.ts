// What the shard's routes are built from: its dependencies and settings.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EventStore, PartitionTransfer } from '@skein/engine';
import type { ControlRecordStore } from './control-records.ts';
import type { ShardMetrics } from './metrics.ts';
import type { Ownership } from './ownership.ts';
import type { SafePointTracker } from './safe-point.ts';
import type { WriteGate } from './write-gate.ts';

/** Everything the shard's HTTP service is built from. */
export interface ShardAppDeps {
  engine: EventStore;
  safePoint: SafePointTracker;
  ownership: Ownership;
  metrics: ShardMetrics;
  registry: Registry;
  /** Root logger of the process (a child with `shard` bound); requests get children of it. */
  logger: Logger;
  /** Redis, for readiness (`PING`). Absent: readiness does not depend on it. */
  redis?: { ping(): Promise<string> };
  /** This shard's copy of the control records (DESIGN.md, "Control plane"). Absent: the routes are not served. */
  controlRecords?: ControlRecordStore;
  /** A partition's data in and out, and the fence handshake (partition moves). Absent: those routes are not served. */
  transfer?: PartitionTransfer;
  gate?: WriteGate;
  /** False once the engine is closing or closed. Default: always open. */
  isOpen?: () => boolean;
}

export interface ShardAppOptions {
  shardId: string;
  /** Every request but the probes must carry it in `CLUSTER_SECRET_HEADER`; otherwise 401 UNAUTHENTICATED. */
  clusterSecret: string;
  /** Largest request body, bytes. Default 32 MiB. */
  maxBodyBytes?: number;
  /** Bytes of append requests received and not yet answered; past it, 503. Default 64 MiB (at least `maxBodyBytes`). */
  maxPendingBytes?: number;
  /** Longest wait of `GET /internal/v1/safe-point?atLeast=`. Default 2000 ms. */
  safePointMaxWaitMs?: number;
  /** SSE heartbeat period. Default 15 s. */
  heartbeatMs?: number;
  /** A subscriber whose socket stays full this long is disconnected. Default 30 s. */
  slowSubscriberMs?: number;
  /** How long readiness waits for Redis' PONG. Default 500 ms. */
  readyTimeoutMs?: number;
}

export const defaultShardAppOptions = Object.freeze({
  maxBodyBytes: 32 * 1024 * 1024,
  maxPendingBytes: 64 * 1024 * 1024,
  safePointMaxWaitMs: 2000,
  heartbeatMs: 15_000,
  slowSubscriberMs: 30_000,
  readyTimeoutMs: 500,
});

/** What every route module receives. */
export interface RouteContext extends ShardAppDeps {
  options: Required<ShardAppOptions>;
  /** Ends every open subscription (on close). */
  subscriptions: Set<() => void>;
}
