/** Headers of the shards' internal API, spoken by the router (its only client) and the shards. */

/** The topology epoch the caller routed by; a shard ahead of it answers 421 with its own. */
export const EPOCH_HEADER = 'x-skein-epoch';

/** On a stream read: how many events the body holds, so the router can forward it unparsed. */
export const EVENTS_HEADER = 'x-skein-events';

/**
 * The cluster secret (`SKEIN_CLUSTER_SECRET`), sent by the router on every request to a
 * shard. A shard answers 401 UNAUTHENTICATED to any request without it, except its probes
 * (`/healthz`, `/readyz`, `/metrics`).
 */
export const CLUSTER_SECRET_HEADER = 'x-skein-cluster-secret';

/**
 * The most one `POST /internal/v1/append` batch carries: routers never send more (bytes
 * of the whole JSON body, appends in it), and a shard accepts at least this much (its
 * body limit, SKEIN_SHARD_MAX_BODY_BYTES, may not be set lower). One public append body
 * (SKEIN_ROUTER_MAX_BODY_BYTES) must fit in one batch on its own.
 */
export const APPEND_BATCH_LIMITS = Object.freeze({ maxBytes: 16 * 1024 * 1024, maxAppends: 1000 });
