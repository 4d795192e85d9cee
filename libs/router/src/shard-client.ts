import { Readable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import { CLUSTER_SECRET_HEADER, EPOCH_HEADER, EVENTS_HEADER, SkeinError, fromProblem, isSkeinError } from '@skein/protocol';
import type { RouterTopology } from './topology.ts';

export interface ShardRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path under the shard's `/internal/v1`, already encoded. */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  /**
   * The body already serialized as JSON (instead of `body`): one string, or pieces sent one
   * after another with no joined copy made (the coalescer's batches of large appends).
   */
  json?: string | readonly string[];
  /** Whether the request writes: a connection lost after sending makes the outcome unknown. */
  write?: boolean;
  /** Return a successful body as the JSON bytes, unparsed (for forwarding as they are). */
  raw?: boolean;
}

export interface ShardResponse {
  status: number;
  /** Parsed JSON; a Buffer of the JSON bytes for a successful `raw` request. */
  body: unknown;
  /** On stream reads: the number of events in the body (the shard's x-skein-events header). */
  events?: number;
}

/** HTTP to the shards over pooled keep-alive connections (undici), each request carrying the cluster secret. */
export interface ShardClient {
  /** One request to one shard. Non-2xx answers throw the shard's SkeinError (NOT_OWNER included). */
  call(shardId: string, request: ShardRequest): Promise<ShardResponse>;
  /** The same, to a shard at a known address (a rebuild of the control plane, when Redis holds no topology). */
  callAt(shard: { id: string; url: string }, request: ShardRequest): Promise<ShardResponse>;
  /**
   * A request for one partition: sent to its owner; on 421 NOT_OWNER the topology is
   * re-read and the request re-routed (a stale router refreshes and retries).
   */
  forPartition(partition: string, request: ShardRequest): Promise<ShardResponse>;
  close(): Promise<void>;
}

const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);

/** Translates a transport failure into the registry's UNAVAILABLE, saying whether a write may have happened. */
function transportError(err: unknown, shardId: string, write: boolean): SkeinError {
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code ?? '';
  const sent = !NOT_SENT.has(code) && !(err instanceof undiciErrors.ConnectTimeoutError);
  const details: Record<string, unknown> = { retryAfter: 1 };
  if (write && sent) details.outcome = 'unknown';
  return new SkeinError('UNAVAILABLE', write && sent ? 'the connection to a shard broke; the write may or may not have happened' : 'a shard is unavailable', details, {
    cause: Object.assign(err as object, { shardId }),
  });
}

/** What a shard client is made from. */
export interface ShardClientDeps {
  topology: RouterTopology;
  /** The longest one request may take (headers, then body), ms. */
  timeoutMs: number;
  /** `SKEIN_CLUSTER_SECRET`: sent on every request; the shards answer 401 without it. */
  clusterSecret: string;
}

export function createShardClient(deps: ShardClientDeps): ShardClient {
  const { topology, timeoutMs, clusterSecret } = deps;
  const pools = new Map<string, Pool>();

  function poolFor(url: string): Pool {
    let pool = pools.get(url);
    if (!pool) {
      pool = new Pool(url, { connections: 32, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connectTimeout: Math.min(timeoutMs, 2000) });
      pools.set(url, pool);
    }
    return pool;
  }

  async function call(shardId: string, request: ShardRequest): Promise<ShardResponse> {
    const view = await topology.current();
    const url = view.urlOf(shardId);
    if (!url) throw new SkeinError('UNAVAILABLE', 'a shard of the topology has no address', { retryAfter: 1 });
    return send(shardId, url, request);
  }

  async function send(shardId: string, url: string, request: ShardRequest): Promise<ShardResponse> {
    const query = request.query ? Object.entries(request.query).filter((e): e is [string, string] => e[1] !== undefined) : [];
    const path = `/internal/v1${request.path}${query.length ? `?${new URLSearchParams(query).toString()}` : ''}`;
    const { json } = request;
    const length = typeof json === 'object' ? { 'content-length': String(json.reduce((n, piece) => n + Buffer.byteLength(piece), 0)) } : {};
    let res;
    try {
      res = await poolFor(url).request({
        method: request.method,
        path,
        headers: { [CLUSTER_SECRET_HEADER]: clusterSecret, [EPOCH_HEADER]: String(topology.epoch), ...(request.body !== undefined || json !== undefined ? { 'content-type': 'application/json', ...length } : {}) },
        body: typeof json === 'object' ? Readable.from(json) : (json ?? (request.body !== undefined ? JSON.stringify(request.body) : undefined)),
      });
    } catch (err) {
      throw transportError(err, shardId, request.write === true);
    }
    let body: unknown = null;
    try {
      if (request.raw && res.statusCode < 400) body = Buffer.from(await res.body.arrayBuffer());
      else {
        const text = await res.body.text();
        body = text.length > 0 ? JSON.parse(text) : null;
      }
    } catch (err) {
      throw transportError(err, shardId, request.write === true);
    }
    // The caller's key was checked here, not there: a shard's 401 means this router's
    // SKEIN_CLUSTER_SECRET is not the shard's, never that the client is unauthenticated.
    if (res.statusCode === 401) {
      throw new SkeinError('UNAVAILABLE', 'a shard is unavailable', { retryAfter: 1 }, {
        cause: Object.assign(new Error(`shard ${shardId} refused this router's cluster secret: SKEIN_CLUSTER_SECRET differs between them`), { shardId }),
      });
    }
    if (res.statusCode >= 400) throw fromProblem(body, res.statusCode);
    const events = Number(res.headers[EVENTS_HEADER]);
    return Number.isSafeInteger(events) ? { status: res.statusCode, body, events } : { status: res.statusCode, body };
  }

  return {
    call,
    callAt: (shard, request) => send(shard.id, shard.url, request),
    async forPartition(partition, request) {
      for (let attempt = 0; ; attempt++) {
        const view = await topology.current();
        const owner = view.ownerOf(partition);
        if (owner === null) throw new SkeinError('UNAVAILABLE', 'the topology has no shards', { retryAfter: 1 });
        try {
          return await call(owner, request);
        } catch (err) {
          if (!isSkeinError(err, 'NOT_OWNER') || attempt >= 3) throw err;
          await topology.refresh();
        }
      }
    },
    async close() {
      await Promise.all([...pools.values()].map((p) => p.close()));
    },
  };
}
