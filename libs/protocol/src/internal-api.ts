/** Headers of the shards' internal API, spoken by the router (its only client) and the shards. */

/** The topology epoch the caller routed by; a shard ahead of it answers 421 with its own. */
export const EPOCH_HEADER = 'x-skein-epoch';

/** On a stream read: how many events the body holds, so the router can forward it unparsed. */
export const EVENTS_HEADER = 'x-skein-events';
