import { FastHistogram } from '@skein/http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What gauges read at scrape time. */
export interface RouterMetricsSources {
  /** Bytes of append bodies accepted and not yet answered (the append budget). */
  appendPendingBytes(): number;
}

/** The router's metrics, all in one registry (`skein_router_*`, base units). */
export function createRouterMetrics(registry: Registry, sources: RouterMetricsSources) {
  // Standard names (process_*, nodejs_*) so stock Node.js dashboards work; the scrape's
  // job and instance labels tell the processes apart.
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'skein_router_append_pending_bytes',
    help: 'Bytes of append bodies accepted and not yet answered (bounded by SKEIN_ROUTER_MAX_PENDING_BYTES)',
    registers: [registry],
    collect() {
      this.set(sources.appendPendingBytes());
    },
  });
  return {
    // Observed for every request and every batch: FastHistogram (the same scrape as
    // prom-client's Histogram at a fraction of its cost per observation).
    requestSeconds: new FastHistogram({
      name: 'skein_router_http_request_duration_seconds',
      help: 'HTTP request latency by route and status code, seconds',
      labelNames: ['route', 'code'] as const,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    }),
    appendBatchSize: new FastHistogram({
      name: 'skein_router_append_batch_size_appends',
      help: 'Appends per coalesced batch request to a shard',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
      registers: [registry],
    }),
    eventsRead: new Counter({ name: 'skein_router_events_read_total', help: 'Events returned by reads and subscriptions', registers: [registry] }),
    subscriptions: new Gauge({ name: 'skein_router_subscriptions', help: 'SSE subscriptions open now', labelNames: ['kind'] as const, registers: [registry] }),
    subscriptionLagSeconds: new Histogram({
      name: 'skein_router_subscription_lag_seconds',
      help: 'Age of the newest event of each page sent to a subscriber (now minus the event timestamp), seconds',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    }),
    subscriptionsOpened: new Counter({ name: 'skein_router_subscriptions_opened_total', help: 'SSE subscriptions opened', labelNames: ['kind'] as const, registers: [registry] }),
    appendsRateLimited: new Counter({ name: 'skein_router_appends_rate_limited_total', help: 'Appends refused with 429 for a tenant over its quota', registers: [registry] }),
    watermarkRounds: new Counter({ name: 'skein_router_watermark_rounds_total', help: "Rounds of safe-point reads for waiting subscriptions (one per poll period while any waits, whatever their number)", registers: [registry] }),
    slowSubscribersCut: new Counter({ name: 'skein_router_slow_subscribers_disconnected_total', help: 'Subscribers cut off for falling too far behind', registers: [registry] }),
    appendsOverCapacity: new Counter({
      name: 'skein_router_appends_over_capacity_total',
      help: 'Appends refused with 503 before their body was read: the router held its bound of pending append bytes (in total or for the shard)',
      registers: [registry],
    }),
    revokedSubscriptionsClosed: new Counter({ name: 'skein_router_revoked_subscriptions_closed_total', help: 'Subscriptions closed because their API key was revoked', registers: [registry] }),
  };
}

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;
