import { Readable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import {
  APPEND_BATCH_LIMITS,
  CLUSTER_SECRET_HEADER,
  EPOCH_HEADER,
  EVENTS_HEADER,
  SkeinError,
  appendResultFromWire,
  fromProblem,
  isSkeinError,
  parseControlRecord,
  type LoggedWireEvent,
  type ReadStreamQuery,
  type ShardApi,
  type ShardAppendResult,
  type StreamMetadata,
  type StreamPage,
} from '@skein/protocol';
import type { RouterTopology } from './topology.ts';

/** One HTTP request to a shard's internal API. */
interface ShardRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path under the shard's `/internal/v1`, already encoded. */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  /**
   * The body already serialized as JSON (instead of `body`): pieces sent one after
   * another with no joined copy made (batches of large appends).
   */
  json?: readonly string[];
  /** Whether the request writes: a connection lost after sending makes the outcome unknown. */
  write?: boolean;
  /** Return a successful body as the JSON bytes, unparsed (for forwarding as they are). */
  raw?: boolean;
}

interface ShardResponse {
  /** Parsed JSON; the JSON bytes for a successful `raw` request. */
  body: unknown;
  /** On stream reads: the number of events in the body (the shard's x-skein-events header). */
  events?: number;
}

/**
 * The router's shards: each one a ShardApi, in-process when this process hosts it,
 * otherwise over HTTP (pooled keep-alive connections, each request carrying the cluster
 * secret and the topology epoch the router routed by).
 */
export interface Shards {
  /** The shard with this id (over HTTP at its address in the topology, unless hosted here). */
  get(shardId: string): ShardApi;
  /** A shard at a known address (a rebuild of the control plane, when Redis holds no topology). */
  at(shard: { id: string; url: string }): ShardApi;
  /**
   * A call for one partition: made on its owner; on 421 NOT_OWNER the topology is re-read
   * and the call re-routed (a stale router refreshes and retries, at most 3 times).
   */
  forPartition<T>(partition: string, call: (shard: ShardApi) => Promise<T>): Promise<T>;
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
  /** Shards hosted by this process, by id: called in-process instead of over HTTP. */
  local?: ReadonlyMap<string, ShardApi>;
}

/** A batch body is `{"appends":[` + the appends joined by `,` + `]}`. */
const ENVELOPE_BYTES = '{"appends":[]}'.length;

const position = (value: unknown): bigint => {
  if (typeof value !== 'string' || !/^[0-9]{1,20}$/.test(value)) throw new SkeinError('INTERNAL', 'a shard answered with a malformed position');
  return BigInt(value);
};

export function createShardClient(deps: ShardClientDeps): Shards {
  const { topology, timeoutMs, clusterSecret } = deps;
  const local = deps.local ?? new Map<string, ShardApi>();
  const pools = new Map<string, Pool>();

  function poolFor(url: string): Pool {
    let pool = pools.get(url);
    if (!pool) {
      pool = new Pool(url, { connections: 32, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connectTimeout: Math.min(timeoutMs, 2000) });
      pools.set(url, pool);
    }
    return pool;
  }

  async function send(shardId: string, url: string, request: ShardRequest): Promise<ShardResponse> {
    const query = request.query ? Object.entries(request.query).filter((e): e is [string, string] => e[1] !== undefined) : [];
    const path = `/internal/v1${request.path}${query.length ? `?${new URLSearchParams(query).toString()}` : ''}`;
    const { json } = request;
    const length = json ? { 'content-length': String(json.reduce((n, piece) => n + Buffer.byteLength(piece), 0)) } : {};
    let res;
    try {
      res = await poolFor(url).request({
        method: request.method,
        path,
        headers: { [CLUSTER_SECRET_HEADER]: clusterSecret, [EPOCH_HEADER]: String(topology.epoch), ...(request.body !== undefined || json !== undefined ? { 'content-type': 'application/json', ...length } : {}) },
        body: json ? Readable.from(json) : request.body !== undefined ? JSON.stringify(request.body) : undefined,
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
    return Number.isSafeInteger(events) ? { body, events } : { body };
  }

  /** A shard over its internal HTTP API; `urlOf` finds its address at each call. */
  function remote(id: string, urlOf: () => Promise<string>): ShardApi {
    const call = async (request: ShardRequest) => send(id, await urlOf(), request);
    const streamPath = (partition: string, streamId: string) => `/partitions/${encodeURIComponent(partition)}/streams/${encodeURIComponent(streamId)}`;
    const streamQuery = (q: ReadStreamQuery) => ({ from: q.from?.toString(), direction: q.direction, limit: q.limit?.toString() });

    /** One batch request; `pieces` are the appends' JSON texts. */
    async function appendRequest(pieces: readonly string[]): Promise<ShardAppendResult[]> {
      const json = ['{"appends":['];
      pieces.forEach((piece, i) => (i === 0 ? json.push(piece) : json.push(',', piece)));
      json.push(']}');
      const { body } = await call({ method: 'POST', path: '/append', json, write: true });
      const results = body !== null && typeof body === 'object' && 'results' in body ? body.results : undefined;
      if (!Array.isArray(results) || results.length !== pieces.length) throw new SkeinError('INTERNAL', 'a shard answered a batch append with the wrong number of results');
      return results.map(appendResultFromWire);
    }

    return {
      id,
      /**
       * Sent as requests of at most APPEND_BATCH_LIMITS.maxBytes (what every shard accepts),
       * one after another, each piece by piece: a joined copy of a 16 MiB batch, and its
       * encoding, would double what the router holds per pending byte (measured in the
       * stalled-shard fault case). An append whose JSON alone exceeds a batch (numbers like
       * 1e300 spelled out on re-encoding) is answered PAYLOAD_TOO_LARGE and never sent.
       */
      async append(batch) {
        const results: ShardAppendResult[] = new Array(batch.length);
        let pieces: string[] = [];
        let indexes: number[] = [];
        let bytes = ENVELOPE_BYTES;
        const flush = async () => {
          if (pieces.length === 0) return;
          const answered = await appendRequest(pieces);
          answered.forEach((r, k) => (results[indexes[k]!] = r));
          pieces = [];
          indexes = [];
          bytes = ENVELOPE_BYTES;
        };
        for (const [i, a] of batch.entries()) {
          const { sizes: _measuredHere, ...sent } = a;
          const piece = JSON.stringify(sent);
          const size = Buffer.byteLength(piece);
          if (size + ENVELOPE_BYTES > APPEND_BATCH_LIMITS.maxBytes) {
            const limit = APPEND_BATCH_LIMITS.maxBytes - ENVELOPE_BYTES;
            results[i] = { ok: false, error: new SkeinError('PAYLOAD_TOO_LARGE', `the append is ${size} bytes once encoded; at most ${limit} allowed`, { limit }) };
            continue;
          }
          const added = size + (pieces.length > 0 ? 1 : 0);
          if (pieces.length >= APPEND_BATCH_LIMITS.maxAppends || bytes + added > APPEND_BATCH_LIMITS.maxBytes) await flush();
          bytes += size + (pieces.length > 0 ? 1 : 0);
          pieces.push(piece);
          indexes.push(i);
        }
        await flush();
        return results;
      },
      async readStream(partition, streamId, query) {
        const { body } = await call({ method: 'GET', path: streamPath(partition, streamId), query: streamQuery(query) });
        return body as StreamPage;
      },
      async readStreamJson(partition, streamId, query) {
        const res = await call({ method: 'GET', path: streamPath(partition, streamId), query: streamQuery(query), raw: true });
        if (!(res.body instanceof Uint8Array)) throw new SkeinError('INTERNAL', 'a shard answered a stream read without a body');
        return { json: res.body, events: res.events ?? 0 };
      },
      async streamState(partition, streamId) {
        return (await call({ method: 'GET', path: `${streamPath(partition, streamId)}/state` })).body as { version: number; deleted: 'no' | 'soft' | 'hard' };
      },
      async deleteStream(partition, streamId, options) {
        await call({ method: 'DELETE', path: streamPath(partition, streamId), query: { mode: options.mode, expectedVersion: String(options.expectedVersion) }, write: true });
      },
      async getMetadata(partition, streamId) {
        return (await call({ method: 'GET', path: `${streamPath(partition, streamId)}/metadata` })).body as StreamMetadata;
      },
      async setMetadata(partition, streamId, metadata) {
        await call({ method: 'PUT', path: `${streamPath(partition, streamId)}/metadata`, body: metadata, write: true });
      },
      async putSnapshot(partition, streamId, version, data) {
        await call({ method: 'PUT', path: `${streamPath(partition, streamId)}/snapshots/${version}`, body: data, write: true });
      },
      async latestSnapshot(partition, streamId) {
        return (await call({ method: 'GET', path: `${streamPath(partition, streamId)}/snapshots/latest` })).body as { version: number; data: unknown };
      },
      async readLog(q) {
        const query = {
          fromPosition: q.fromPosition.toString(),
          toPosition: q.toPosition?.toString(),
          limit: String(q.limit),
          category: q.category,
          types: q.types?.join(','),
          maxBytes: q.maxBytes === undefined ? undefined : String(q.maxBytes),
        };
        const path = q.partition === undefined ? '/log' : `/partitions/${encodeURIComponent(q.partition)}/log`;
        const body = (await call({ method: 'GET', path, query })).body as { events: LoggedWireEvent[]; next: string; truncated?: boolean };
        return { events: body.events, next: position(body.next), ...(body.truncated === true ? { truncated: true } : {}) };
      },
      async safePoint(wait) {
        const query = wait ? { atLeast: wait.atLeast.toString(), waitMs: String(wait.waitMs) } : {};
        const body = (await call({ method: 'GET', path: '/safe-point', query })).body as { safePoint: string; highestCommitted: string };
        return { safePoint: position(body.safePoint), highestCommitted: position(body.highestCommitted) };
      },
      async info() {
        const body = (await call({ method: 'GET', path: '/info' })).body as { shard: string; epoch: number; safePoint: string; highestCommitted: string };
        return { shard: body.shard, epoch: body.epoch, safePoint: position(body.safePoint), highestCommitted: position(body.highestCommitted) };
      },
      async controlRecords() {
        const body = (await call({ method: 'GET', path: '/control-records' })).body as { records?: unknown[] };
        return (body.records ?? []).map(parseControlRecord);
      },
      async storeControlRecords(records) {
        return ((await call({ method: 'POST', path: '/control-records', body: { records }, write: true })).body as { stored: number }).stored;
      },
    };
  }

  const byId = new Map<string, ShardApi>();
  function get(shardId: string): ShardApi {
    let api = local.get(shardId) ?? byId.get(shardId);
    if (!api) {
      api = remote(shardId, async () => {
        const url = (await topology.current()).urlOf(shardId);
        if (!url) throw new SkeinError('UNAVAILABLE', 'a shard of the topology has no address', { retryAfter: 1 });
        return url;
      });
      byId.set(shardId, api);
    }
    return api;
  }

  return {
    get,
    at: (shard) => local.get(shard.id) ?? remote(shard.id, async () => shard.url),
    async forPartition(partition, call) {
      for (let attempt = 0; ; attempt++) {
        const view = await topology.current();
        const owner = view.ownerOf(partition);
        if (owner === null) throw new SkeinError('UNAVAILABLE', 'the topology has no shards', { retryAfter: 1 });
        try {
          return await call(get(owner));
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
