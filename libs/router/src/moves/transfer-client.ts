import { request } from 'undici';
import { CLUSTER_SECRET_HEADER, SkeinError, fromProblem } from '@skein/protocol';

/** A page of a partition's data as a shard exports it (libs/shard/src/routes/partition-transfer.ts). */
export interface TransferPage {
  page: string;
  entries: number;
  bytes: number;
}

/**
 * The move coordinator's calls to a shard's partition-transfer routes, over HTTP with the
 * cluster secret. Failures are SkeinErrors: UNAVAILABLE when the shard cannot be reached.
 */
export interface TransferClient {
  highest(url: string, partition: string): Promise<bigint>;
  range(url: string, partition: string, cursor: string | null, maxBytes: number): Promise<TransferPage & { next: string | null }>;
  changes(url: string, partition: string, from: bigint, options: { maxEntries: number; mutable: boolean }): Promise<TransferPage & { appends: number; next: bigint }>;
  importPage(url: string, partition: string, page: string): Promise<void>;
  /** The fence handshake: resolves with the source's last position of the partition once nothing admitted before the fence can commit. */
  fence(url: string, partition: string, generation: number): Promise<bigint>;
  drop(url: string, partition: string): Promise<number>;
}

export function createTransferClient(options: { clusterSecret: string; timeoutMs: number }): TransferClient {
  async function call(method: 'GET' | 'POST' | 'DELETE', url: string, path: string, query?: Record<string, string>, body?: unknown): Promise<unknown> {
    const qs = query ? `?${new URLSearchParams(query).toString()}` : '';
    let res;
    try {
      res = await request(`${url}/internal/v1${path}${qs}`, {
        method,
        headers: { [CLUSTER_SECRET_HEADER]: options.clusterSecret, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      });
    } catch (err) {
      throw new SkeinError('UNAVAILABLE', `shard ${url} is unavailable`, { retryAfter: 1 }, { cause: err });
    }
    let parsed: unknown;
    try {
      const text = await res.body.text();
      parsed = text.length > 0 ? JSON.parse(text) : null;
    } catch (err) {
      throw new SkeinError('UNAVAILABLE', `shard ${url} broke the connection`, { retryAfter: 1 }, { cause: err });
    }
    if (res.statusCode >= 400) throw fromProblem(parsed, res.statusCode);
    return parsed;
  }

  const at = (partition: string, rest: string) => `/partitions/${encodeURIComponent(partition)}/transfer/${rest}`;

  return {
    async highest(url, partition) {
      return BigInt((await call('GET', url, at(partition, 'highest')) as { position: string }).position);
    },
    async range(url, partition, cursor, maxBytes) {
      return (await call('GET', url, at(partition, 'range'), { ...(cursor ? { cursor } : {}), maxBytes: String(maxBytes) })) as TransferPage & { next: string | null };
    },
    async changes(url, partition, from, { maxEntries, mutable }) {
      const r = (await call('GET', url, at(partition, 'changes'), { fromPosition: from.toString(), maxEntries: String(maxEntries), mutable: String(mutable) })) as TransferPage & { appends: number; next: string };
      return { ...r, next: BigInt(r.next) };
    },
    async importPage(url, partition, page) {
      await call('POST', url, at(partition, 'import'), undefined, { page });
    },
    async fence(url, partition, generation) {
      return BigInt((await call('POST', url, at(partition, 'fence'), undefined, { generation }) as { position: string }).position);
    },
    async drop(url, partition) {
      return (await call('DELETE', url, at(partition, 'data')) as { entries: number }).entries;
    },
  };
}
