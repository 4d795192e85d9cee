import { undiciFetch } from './undici-transport.ts';
import { isSkeinError, validateIdempotencyKey } from '@skein/protocol';
import type { BackupView, JobKind, JobState, JobView, MaintenanceKind, StreamMetadata } from '@skein/protocol';
import { decodeAppendResult, decodeLogPage, decodeStreamPage, nextOfStreamPageText, positionParam } from './decode.ts';
import { createTransport, parseJsonBody } from './http.ts';
import type { FetchFunction, HttpRequest, QueryValue } from './http.ts';
import { openSubscription } from './subscription.ts';
import type { SubscribeOptions, Subscription } from './subscription.ts';
import type {
  AppendRequest,
  AppendResult,
  CallOptions,
  ClusterStatus,
  CreateTenantOptions,
  CreatedKey,
  CreatedTenant,
  DeleteStreamOptions,
  LogEventsOptions,
  LogPage,
  PositionInput,
  ReadLogOptions,
  ReadStreamOptions,
  SkeinEvent,
  Snapshot,
  StreamEventsOptions,
  StreamPage,
  TenantInfo,
} from './types.ts';

/** Options of `createClient`. */
export interface ClientOptions {
  /** The router's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** A tenant key or the admin key; sent as `Authorization: Bearer`. */
  apiKey?: string;
  /** The `fetch` to use. Default: undici's `request` (see undici-transport.ts); the global `fetch` works too. */
  fetch?: FetchFunction;
  /**
   * Per attempt, the whole exchange, body included. Default 30 000. For subscriptions it
   * bounds the wait for the response headers only.
   */
  timeoutMs?: number;
  /**
   * Extra attempts of a request that is safe to repeat: GETs and appends with an
   * `idempotencyKey`, on `UNAVAILABLE` (503, network failure, timeout) and `RATE_LIMITED`.
   * Other writes are never retried. Default 3.
   */
  retries?: number;
  /** First retry delay in ms, doubled per attempt, with jitter; `Retry-After` overrides it. Default 100. */
  retryDelayMs?: number;
  /**
   * Longest pause before a retry, in ms. Default 5 000. A `Retry-After` beyond it is not
   * waited for: the error goes to the caller.
   */
  maxRetryDelayMs?: number;
}

/** Stream subscription start: a version, or `'end'` for the next event written. Default: from version 1. */
export interface SubscribeStreamOptions extends SubscribeOptions {
  from?: number | 'end';
}

/** Log subscription start and filters. Default: from position 0. */
export interface SubscribeLogOptions extends SubscribeOptions {
  /** A position, or `'end'` for the next event written. */
  fromPosition?: PositionInput | 'end';
  /** Only streams of this category. */
  category?: string;
  /** Only events of these types. */
  types?: string[];
}

/** Administration; needs the admin key. */
export interface AdminClient {
  /** `POST /v1/admin/tenants`. Throws `TENANT_EXISTS`. The answer holds the tenant's first API key. */
  createTenant(tenant: string, options?: CreateTenantOptions): Promise<CreatedTenant>;
  /** `GET /v1/admin/tenants/{tenant}`; `null` when there is no such tenant. */
  getTenant(tenant: string, options?: CallOptions): Promise<TenantInfo | null>;
  /** `POST /v1/admin/tenants/{tenant}/keys`: a new key for the tenant. */
  createKey(tenant: string, options?: CallOptions): Promise<CreatedKey>;
  /** `DELETE /v1/admin/tenants/{tenant}/keys/{keyId}`: the key stops working at once. */
  deleteKey(tenant: string, keyId: string, options?: CallOptions): Promise<void>;
  /** `GET /v1/admin/cluster`. */
  cluster(options?: CallOptions): Promise<ClusterStatus>;
  /** `PATCH /v1/admin/tenants/{tenant}`: `null` removes a setting, an absent one is kept. Throws `TENANT_NOT_FOUND`. */
  updateTenant(tenant: string, change: TenantChange, options?: CallOptions): Promise<TenantInfo>;
  /** `POST /v1/admin/maintenance`: runs retention or compaction now on the owning shards; answers the jobs enqueued. */
  runMaintenance(request: { kind: MaintenanceKind; tenant?: string; partition?: string }, options?: CallOptions): Promise<{ jobs: EnqueuedJob[] }>;
  /** `GET /v1/admin/jobs`: recent jobs of every shard queue, newest first. */
  jobs(filter?: { state?: JobState; kind?: JobKind; limit?: number }, options?: CallOptions): Promise<JobView[]>;
  /** `GET /v1/admin/jobs/{id}`; `null` when there is no such job. */
  job(id: string, options?: CallOptions): Promise<JobView | null>;
  /** `POST /v1/admin/backups`: a backup of every shard (one job per shard). */
  createBackup(options?: CallOptions): Promise<{ id: string; jobs: EnqueuedJob[] }>;
  /** `GET /v1/admin/backups`, newest first. */
  backups(options?: CallOptions): Promise<BackupView[]>;
  /** `POST /v1/admin/cluster/shards`: an empty shard joins. Throws `CONFLICT` when the id exists. */
  addShard(shard: { id: string; url: string }, options?: CallOptions): Promise<void>;
  /** `POST /v1/admin/cluster/shards/{id}/drain`: moves every partition away; answers the moves started. */
  drainShard(id: string, options?: CallOptions): Promise<{ moves: PlannedMove[] }>;
  /** `DELETE /v1/admin/cluster/shards/{id}`. Throws `SHARD_NOT_EMPTY` while it owns a partition. */
  removeShard(id: string, options?: CallOptions): Promise<void>;
  /** `POST /v1/admin/partitions/{partition}/move`: starts a move; `move(id)` follows it. */
  movePartition(partition: string, to: string, options?: CallOptions): Promise<PartitionMove>;
  /** `GET /v1/admin/moves/{id}`; `null` when there is no such move. */
  move(id: string, options?: CallOptions): Promise<PartitionMove | null>;
  /** `POST /v1/admin/cluster/rebalance`: the plan (`dryRun`), or the moves started. */
  rebalance(request: { dryRun?: boolean }, options?: CallOptions): Promise<{ moves: PlannedMove[] }>;
}

/** A move a rebalance or drain plans (`id` once started). */
export interface PlannedMove {
  id?: string;
  partition: string;
  from: string;
  to: string;
}

/** API.md, "Membership and partition moves". */
export interface PartitionMove {
  id: string;
  partition: string;
  from: string;
  to: string;
  state: 'copying' | 'tailing' | 'fencing' | 'done' | 'rolled_back';
  copiedBytes: number;
  copiedEntries: number;
  pauseMs?: number;
  reason?: string;
  /** What is left to clean after the move ended: the source's copy (done) or the target's (rolled back). */
  cleanup?: 'pending' | 'done';
  [member: string]: unknown;
}

/** A change of a tenant's settings: `null` removes one, an absent one is kept. */
export interface TenantChange {
  retention?: { maxAge?: number | null };
  quota?: { eventsPerSecond: number } | null;
}

/** A job as enqueued: `id` is `<shard>:<queue job id>`. */
export interface EnqueuedJob {
  id: string;
  kind: JobKind;
  partition?: string;
  shard: string;
}

/**
 * A typed client of the Skein HTTP API (docs/API.md). Every failure is a `SkeinError`
 * carrying the server's `code` and extension members (`expected`, `actual`, `field`,
 * `retryAfter`, …); network failures and timeouts are `UNAVAILABLE`.
 */
export interface SkeinClient {
  /**
   * Appends events atomically. Throws `WRONG_EXPECTED_VERSION` (`expected`, `actual`),
   * `STREAM_DELETED`, `IDEMPOTENCY_KEY_REUSED`, `VALIDATION_FAILED` (`field`), … Retried
   * only when `idempotencyKey` is given.
   */
  append(tenant: string, stream: string, request: AppendRequest & CallOptions): Promise<AppendResult>;
  /** One page of a stream. Throws `STREAM_NOT_FOUND`, `STREAM_DELETED`. */
  readStream(tenant: string, stream: string, options?: ReadStreamOptions): Promise<StreamPage>;
  /**
   * Every event of a stream from `from`, page after page, until `next` is `null`; each
   * next page is requested while the current one is parsed and consumed. Throws as `readStream`.
   */
  streamEvents(tenant: string, stream: string, options?: StreamEventsOptions): AsyncIterable<SkeinEvent>;
  /** Throws `STREAM_NOT_FOUND`. */
  getStreamMetadata(tenant: string, stream: string, options?: CallOptions): Promise<StreamMetadata>;
  /** Replaces the whole metadata. */
  putStreamMetadata(tenant: string, stream: string, metadata: StreamMetadata, options?: CallOptions): Promise<void>;
  /** Soft (default) or hard delete. Throws `STREAM_NOT_FOUND`, `WRONG_EXPECTED_VERSION`, `STREAM_DELETED`. */
  deleteStream(tenant: string, stream: string, options?: DeleteStreamOptions): Promise<void>;
  /** Stores a snapshot at `version`. Throws `STREAM_NOT_FOUND`, `VALIDATION_FAILED` past the stream's version. */
  putSnapshot(tenant: string, stream: string, version: number, data: unknown, options?: CallOptions): Promise<void>;
  /** The latest snapshot, or `null` when there is none. */
  latestSnapshot(tenant: string, stream: string, options?: CallOptions): Promise<Snapshot | null>;
  /** One page of the tenant's log in global order. */
  readTenantLog(tenant: string, options?: ReadLogOptions): Promise<LogPage>;
  /** The tenant's log from `fromPosition` up to the stable watermark, page after page; ends when caught up. */
  tenantLogEvents(tenant: string, options?: LogEventsOptions): AsyncIterable<SkeinEvent>;
  /** One page of the whole cluster's log (`/v1/events`, admin key); events carry `tenant`. */
  readClusterLog(options?: ReadLogOptions): Promise<LogPage>;
  /** The whole cluster's log, page after page; ends when caught up. */
  clusterLogEvents(options?: LogEventsOptions): AsyncIterable<SkeinEvent>;
  /** Live events of one stream (SSE), catch-up first. Valid before the stream exists. */
  subscribeStream(tenant: string, stream: string, options?: SubscribeStreamOptions): Subscription;
  /** Live events of a tenant's log (SSE), catch-up first. */
  subscribeTenant(tenant: string, options?: SubscribeLogOptions): Subscription;
  /** Live events of the whole cluster (SSE, admin key). */
  subscribeCluster(options?: SubscribeLogOptions): Subscription;
  /** Administration; needs the admin key. */
  readonly admin: AdminClient;
  /** `GET /healthz`: true on 2xx, false on any other status. Throws `UNAVAILABLE` when unreachable. */
  health(options?: CallOptions): Promise<boolean>;
  /** `GET /readyz`: true on 2xx, false on any other status. Throws `UNAVAILABLE` when unreachable. */
  ready(options?: CallOptions): Promise<boolean>;
  /** `GET /metrics`: Prometheus text. */
  metrics(options?: CallOptions): Promise<string>;
}

/** Defaults of `createClient`. */
export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  timeoutMs: 30_000,
  retries: 3,
  retryDelayMs: 100,
  maxRetryDelayMs: 5_000,
});

/**
 * Reads `streamEvents` keeps asked for beyond the page it hands out. Two: with one, the
 * client and the server took turns (README, "Where the time goes": with two, 1.3-1.7x the
 * events/s in alternated rounds on one cluster); three measured no better than two.
 */
const READ_AHEAD = 2;

const seg = encodeURIComponent;
const streamPath = (tenant: string, stream: string) => `/v1/tenants/${seg(tenant)}/streams/${seg(stream)}`;
const typesParam = (types: string[] | undefined) => (types && types.length > 0 ? types.join(',') : undefined);

/** Creates a client of one Skein cluster. No connection is made until the first call. */
export function createClient(options: ClientOptions): SkeinClient {
  if (typeof options?.url !== 'string' || !/^https?:\/\//.test(options.url)) {
    throw new TypeError(`createClient: url must be an http(s) URL, got ${JSON.stringify(options?.url)}`);
  }
  const fetchFn: FetchFunction = options.fetch ?? undiciFetch;
  if (options.apiKey !== undefined && !/^[\x21-\x7e]+$/.test(options.apiKey)) {
    throw new TypeError('createClient: apiKey must be printable ASCII without spaces');
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLIENT_OPTIONS.timeoutMs;
  const transport = createTransport({
    url: options.url,
    apiKey: options.apiKey,
    fetch: fetchFn,
    timeoutMs,
    retries: options.retries ?? DEFAULT_CLIENT_OPTIONS.retries,
    retryDelayMs: options.retryDelayMs ?? DEFAULT_CLIENT_OPTIONS.retryDelayMs,
    maxRetryDelayMs: options.maxRetryDelayMs ?? DEFAULT_CLIENT_OPTIONS.maxRetryDelayMs,
  });

  const get = async (path: string, query: Record<string, QueryValue> | undefined, signal: AbortSignal | undefined) =>
    (await transport.request({ method: 'GET', path, query, retry: true, signal })).body;
  const write = async (req: Omit<HttpRequest, 'retry'>) => {
    await transport.request({ ...req, retry: false });
  };

  const logQuery = (o: ReadLogOptions | undefined, defaultFrom: string) => ({
    fromPosition: o?.fromPosition === undefined ? defaultFrom : positionParam(o.fromPosition, 'fromPosition'),
    limit: o?.limit,
    category: o?.category,
    types: typesParam(o?.types),
  });

  const readLog = async (path: string, o: ReadLogOptions | undefined): Promise<LogPage> => {
    const query = logQuery(o, '0');
    return decodeLogPage(await get(path, query, o?.signal), BigInt(query.fromPosition));
  };

  async function* logEvents(path: string, o: LogEventsOptions | undefined): AsyncGenerator<SkeinEvent, void, undefined> {
    let from = o?.fromPosition === undefined ? 0n : BigInt(positionParam(o.fromPosition, 'fromPosition'));
    for (;;) {
      const page = await readLog(path, { fromPosition: from, limit: o?.pageSize, category: o?.category, types: o?.types, signal: o?.signal });
      yield* page.events;
      // An empty page, or one that does not move, means caught up with the stable watermark.
      if (page.events.length === 0 || page.next <= from) return;
      from = page.next;
    }
  }

  const subscribeLog = (path: string, o: SubscribeLogOptions | undefined): Subscription => {
    const from = o?.fromPosition;
    return openSubscription(
      transport,
      {
        path,
        query: {
          fromPosition: from === undefined ? undefined : from === 'end' ? 'end' : positionParam(from, 'fromPosition'),
          category: o?.category,
          types: typesParam(o?.types),
        },
        idOf: (e) => e.position.toString(),
      },
      o ?? {},
      timeoutMs,
    );
  };

  const probe = async (path: string, signal: AbortSignal | undefined): Promise<boolean> => {
    const status = await transport.status(path, signal);
    return status >= 200 && status <= 299;
  };

  const readStream = async (tenant: string, stream: string, o?: ReadStreamOptions): Promise<StreamPage> => {
    const query = { from: o?.from, direction: o?.direction, limit: o?.limit };
    return decodeStreamPage(await get(streamPath(tenant, stream), query, o?.signal));
  };

  async function* streamEvents(tenant: string, stream: string, o?: StreamEventsOptions): AsyncGenerator<SkeinEvent, void, undefined> {
    let left = o?.limit ?? Number.POSITIVE_INFINITY;
    const path = streamPath(tenant, stream);
    /** The reads asked for and not yet taken, in page order: each page's JSON text, parsed only once the pages after it were asked for (below). */
    const ahead: Array<{ from: number | undefined; text: Promise<{ text: string; status: number }> }> = [];
    const ask = (from: number | undefined) => {
      const limit = Number.isFinite(left) ? Math.min(left, o?.pageSize ?? 1000) : o?.pageSize;
      const text = transport
        .request({ method: 'GET', path, query: { from, direction: o?.direction, limit }, retry: true, signal: o?.signal, text: true })
        .then((res) => ({ text: res.body as string, status: res.status }));
      text.catch(() => undefined); // observed when taken; a dropped read is never awaited
      ahead.push({ from, text });
    };
    let from = o?.from;
    ask(from);
    for (;;) {
      const { text, status } = await ahead.shift()!.text;
      // Before this page is parsed (JSON.parse is half of the client's CPU for a page),
      // the next page is asked for, its `from` read off the end of the text, and the one
      // after it too, guessing that the next page moves as far as this one did (a dense
      // stream's pages all do). The server then reads and sends a page while this client
      // takes the one before: with one read ahead the two sides still took turns (the
      // server reads the next page only once this one has arrived whole), and a read's
      // throughput was their sum rather than the slower side's (issue 9). A guess that the
      // pages contradict is dropped unread. Not with a `limit`, which needs each page's count.
      const next = Number.isFinite(left) ? undefined : nextOfStreamPageText(text);
      if (typeof next === 'number' && next !== from) {
        if (ahead.length > 0 && ahead[0]!.from !== next) ahead.length = 0;
        if (ahead.length === 0) ask(next);
        const guess = typeof from === 'number' ? next + (next - from) : NaN;
        if (ahead.length < READ_AHEAD && Number.isSafeInteger(guess) && guess >= 1) ask(guess);
      }
      const page = decodeStreamPage(parseJsonBody(text, status));
      const events = page.events.length > left ? page.events.slice(0, left) : page.events;
      left -= events.length;
      const done = left <= 0 || page.next === null || page.next === from;
      if (!done && ahead[0]?.from !== page.next) {
        ahead.length = 0;
        ask(page.next!);
      }
      // One yield per event, not `yield*`: 0.43 instead of 0.6 µs per event handed out.
      for (const e of events) yield e;
      // A caller that stops early leaves at most READ_AHEAD reads unused; one that says its `limit`, none.
      if (done) return;
      from = page.next!;
    }
  }

  const admin: AdminClient = {
    async createTenant(tenant, o) {
      const body: Record<string, unknown> = { tenant };
      if (o?.partitions !== undefined) body.partitions = o.partitions;
      if (o?.retention !== undefined) body.retention = o.retention;
      if (o?.quota !== undefined) body.quota = o.quota;
      const res = await transport.request({ method: 'POST', path: '/v1/admin/tenants', body, retry: false, signal: o?.signal });
      return res.body as CreatedTenant;
    },
    async getTenant(tenant, o) {
      try {
        return (await get(`/v1/admin/tenants/${seg(tenant)}`, undefined, o?.signal)) as TenantInfo;
      } catch (err) {
        if (isSkeinError(err, 'TENANT_NOT_FOUND')) return null;
        throw err;
      }
    },
    async createKey(tenant, o) {
      const res = await transport.request({ method: 'POST', path: `/v1/admin/tenants/${seg(tenant)}/keys`, body: {}, retry: false, signal: o?.signal });
      return res.body as CreatedKey;
    },
    async deleteKey(tenant, keyId, o) {
      await write({ method: 'DELETE', path: `/v1/admin/tenants/${seg(tenant)}/keys/${seg(keyId)}`, signal: o?.signal });
    },
    async cluster(o) {
      return (await get('/v1/admin/cluster', undefined, o?.signal)) as ClusterStatus;
    },
    async updateTenant(tenant, change, o) {
      const res = await transport.request({ method: 'PATCH', path: `/v1/admin/tenants/${seg(tenant)}`, body: change, retry: false, signal: o?.signal });
      return res.body as TenantInfo;
    },
    async runMaintenance(request, o) {
      const res = await transport.request({ method: 'POST', path: '/v1/admin/maintenance', body: request, retry: false, signal: o?.signal });
      return res.body as { jobs: EnqueuedJob[] };
    },
    async jobs(filter, o) {
      const query: Record<string, QueryValue> = { state: filter?.state, kind: filter?.kind, limit: filter?.limit };
      return ((await get('/v1/admin/jobs', query, o?.signal)) as { jobs: JobView[] }).jobs;
    },
    async job(id, o) {
      try {
        return (await get(`/v1/admin/jobs/${seg(id)}`, undefined, o?.signal)) as JobView;
      } catch (err) {
        if (isSkeinError(err, 'NOT_FOUND')) return null;
        throw err;
      }
    },
    async createBackup(o) {
      const res = await transport.request({ method: 'POST', path: '/v1/admin/backups', retry: false, signal: o?.signal });
      return res.body as { id: string; jobs: EnqueuedJob[] };
    },
    async backups(o) {
      return ((await get('/v1/admin/backups', undefined, o?.signal)) as { backups: BackupView[] }).backups;
    },
    async addShard(shard, o) {
      await transport.request({ method: 'POST', path: '/v1/admin/cluster/shards', body: shard, retry: false, signal: o?.signal });
    },
    async drainShard(id, o) {
      return (await transport.request({ method: 'POST', path: `/v1/admin/cluster/shards/${seg(id)}/drain`, retry: false, signal: o?.signal })).body as { moves: PlannedMove[] };
    },
    async removeShard(id, o) {
      await write({ method: 'DELETE', path: `/v1/admin/cluster/shards/${seg(id)}`, signal: o?.signal });
    },
    async movePartition(partition, to, o) {
      return (await transport.request({ method: 'POST', path: `/v1/admin/partitions/${seg(partition)}/move`, body: { to }, retry: false, signal: o?.signal })).body as PartitionMove;
    },
    async move(id, o) {
      try {
        return (await get(`/v1/admin/moves/${seg(id)}`, undefined, o?.signal)) as PartitionMove;
      } catch (err) {
        if (isSkeinError(err, 'NOT_FOUND')) return null;
        throw err;
      }
    },
    async rebalance(request, o) {
      return (await transport.request({ method: 'POST', path: '/v1/admin/cluster/rebalance', body: request, retry: false, signal: o?.signal })).body as { moves: PlannedMove[] };
    },
  };

  return {
    admin,

    async append(tenant, stream, request) {
      const body: Record<string, unknown> = { events: request.events };
      if (request.expectedVersion !== undefined) body.expectedVersion = request.expectedVersion;
      const key = request.idempotencyKey === undefined ? undefined : validateIdempotencyKey(request.idempotencyKey, 'idempotencyKey');
      const res = await transport.request({
        method: 'POST',
        path: `${streamPath(tenant, stream)}/events`,
        body,
        headers: key === undefined ? undefined : { 'idempotency-key': key },
        // The server answers a repeated keyed append with the original result: repeating is safe.
        retry: key !== undefined,
        signal: request.signal,
      });
      return decodeAppendResult(res.body);
    },

    readStream,
    streamEvents,

    async getStreamMetadata(tenant, stream, o) {
      return ((await get(`${streamPath(tenant, stream)}/metadata`, undefined, o?.signal)) ?? {}) as StreamMetadata;
    },

    async putStreamMetadata(tenant, stream, metadata, o) {
      await write({ method: 'PUT', path: `${streamPath(tenant, stream)}/metadata`, body: metadata, signal: o?.signal });
    },

    async deleteStream(tenant, stream, o) {
      const ev = o?.expectedVersion;
      await write({ method: 'DELETE', path: streamPath(tenant, stream), query: { mode: o?.mode, expectedVersion: ev }, signal: o?.signal });
    },

    async putSnapshot(tenant, stream, version, data, o) {
      await write({ method: 'PUT', path: `${streamPath(tenant, stream)}/snapshots/${seg(String(version))}`, body: data === undefined ? null : data, signal: o?.signal });
    },

    async latestSnapshot(tenant, stream, o) {
      try {
        return (await get(`${streamPath(tenant, stream)}/snapshots/latest`, undefined, o?.signal)) as Snapshot;
      } catch (err) {
        if (isSkeinError(err, 'SNAPSHOT_NOT_FOUND')) return null;
        throw err;
      }
    },

    readTenantLog: (tenant, o) => readLog(`/v1/tenants/${seg(tenant)}/events`, o),
    tenantLogEvents: (tenant, o) => logEvents(`/v1/tenants/${seg(tenant)}/events`, o),
    readClusterLog: (o) => readLog('/v1/events', o),
    clusterLogEvents: (o) => logEvents('/v1/events', o),

    subscribeStream(tenant, stream, o) {
      return openSubscription(
        transport,
        { path: `${streamPath(tenant, stream)}/subscribe`, query: { from: o?.from }, idOf: (e) => String(e.version) },
        o ?? {},
        timeoutMs,
      );
    },
    subscribeTenant: (tenant, o) => subscribeLog(`/v1/tenants/${seg(tenant)}/events/subscribe`, o),
    subscribeCluster: (o) => subscribeLog('/v1/events/subscribe', o),

    health: (o) => probe('/healthz', o?.signal),
    ready: (o) => probe('/readyz', o?.signal),
    async metrics(o) {
      const res = await transport.request({ method: 'GET', path: '/metrics', retry: true, signal: o?.signal, text: true });
      return res.body as string;
    },
  };
}
