import type { FastifyInstance } from 'fastify';
import { SkeinError, validatePartition, validationError } from '@skein/protocol';
import type { PartitionTransfer, TransferCursor } from '@skein/engine';
import type { Ownership } from '../ownership.ts';
import type { WriteGate } from '../write-gate.ts';

/** Longest a fence handshake waits for the fence to reach this shard, and for its pending writes to settle. */
const FENCE_WAIT_MS = 5000;
/** Largest export page asked for. */
const MAX_PAGE_BYTES = 8 * 1024 * 1024;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function cursorOf(text: string | undefined): TransferCursor | null {
  if (text === undefined || text === '') return null;
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as TransferCursor;
    if (typeof c?.bucket === 'string' && (c.after === null || Array.isArray(c.after))) return c;
  } catch {
    // reported below
  }
  throw validationError('cursor', 'cursor must be one returned by a previous page');
}

function positionOf(text: string | undefined, field: string): bigint {
  if (text === undefined || !/^[0-9]{1,20}$/.test(text)) throw validationError(field, `${field} must be a position`);
  return BigInt(text);
}

/**
 * A partition's data in and out of this shard, for a partition move (DESIGN.md, "Moving
 * a partition"); called by the move coordinator only. Pages travel as base64 msgpack
 * (global positions stay 64-bit integers); a cursor is opaque to the caller.
 *
 * - `GET /partitions/:p/transfer/range?cursor&maxBytes` → `{ page, entries, next }`: the range, page by page.
 * - `GET /partitions/:p/transfer/changes?fromPosition&maxEntries&mutable` → `{ page, entries, appends, next }`.
 * - `GET /partitions/:p/transfer/highest` → `{ position }`: the partition log's last position here.
 * - `POST /partitions/:p/transfer/import` `{ page }` → `{ entries }` once durable; `409 CONFLICT` while this shard owns the partition.
 * - `POST /partitions/:p/transfer/fence` `{ generation }` → `{ position }` once this shard knows the
 *   fence and no write admitted before it can still commit; `409 CONFLICT` when the partition is not fenced here.
 * - `DELETE /partitions/:p/transfer/data` → `{ entries }`: drops the copy; `409 CONFLICT` while owned here.
 */
export function registerPartitionTransferRoutes(app: FastifyInstance, deps: { transfer: PartitionTransfer; gate: WriteGate; ownership: Ownership }): void {
  const { transfer, gate, ownership } = deps;

  async function notOwnedHere(partition: string, what: string): Promise<void> {
    await ownership.refresh();
    if (ownership.check(partition, undefined) === null) {
      throw new SkeinError('CONFLICT', `partition ${partition} is owned by this shard: ${what} refused`);
    }
  }

  app.get<{ Params: { p: string }; Querystring: { cursor?: string; maxBytes?: string } }>('/partitions/:p/transfer/range', async (req, reply) => {
    const partition = validatePartition(req.params.p);
    const maxBytes = Math.min(Number(req.query.maxBytes ?? 1 << 20) || 1 << 20, MAX_PAGE_BYTES);
    const page = transfer.exportRange(partition, cursorOf(req.query.cursor), maxBytes);
    return reply.send({
      page: Buffer.from(page.page).toString('base64'),
      entries: page.entries,
      bytes: page.page.length,
      next: page.next === null ? null : Buffer.from(JSON.stringify(page.next)).toString('base64url'),
    });
  });

  app.get<{ Params: { p: string }; Querystring: { fromPosition?: string; maxEntries?: string; mutable?: string } }>('/partitions/:p/transfer/changes', async (req, reply) => {
    const partition = validatePartition(req.params.p);
    const from = positionOf(req.query.fromPosition, 'fromPosition');
    const maxEntries = Math.min(Math.max(Number(req.query.maxEntries ?? 1000) || 1000, 1), 10_000);
    const page = transfer.exportChanges(partition, from, { maxEntries, mutable: req.query.mutable === 'true' });
    return reply.send({ page: Buffer.from(page.page).toString('base64'), entries: page.entries, bytes: page.page.length, appends: page.appends, next: page.next.toString() });
  });

  app.get<{ Params: { p: string } }>('/partitions/:p/transfer/highest', async (req, reply) => {
    const partition = validatePartition(req.params.p);
    return reply.send({ position: transfer.highestPosition(partition).toString() });
  });

  app.post<{ Params: { p: string }; Body: { page?: unknown } }>('/partitions/:p/transfer/import', async (req, reply) => {
    const partition = validatePartition(req.params.p);
    const page = req.body?.page;
    if (typeof page !== 'string') throw validationError('page', 'page must be a base64 string');
    await notOwnedHere(partition, 'import');
    return reply.send(transfer.importPage(partition, Buffer.from(page, 'base64')));
  });

  app.post<{ Params: { p: string }; Body: { generation?: unknown } }>('/partitions/:p/transfer/fence', async (req, reply) => {
    const partition = validatePartition(req.params.p);
    const g = req.body?.generation;
    if (typeof g !== 'number' || !Number.isSafeInteger(g) || g < 1) throw validationError('generation', 'generation must be an integer ≥ 1');
    const deadline = Date.now() + FENCE_WAIT_MS;
    while (ownership.fenceGeneration < g) {
      if (Date.now() > deadline) throw new SkeinError('UNAVAILABLE', 'the fence has not reached this shard', { retryAfter: 1 });
      await ownership.refresh();
      if (ownership.fenceGeneration < g) await sleep(20);
    }
    if (!ownership.isFenced(partition)) throw new SkeinError('CONFLICT', `partition ${partition} is not fenced here`);
    const timer = sleep(Math.max(0, deadline - Date.now())).then(() => 'timeout' as const);
    if ((await Promise.race([gate.settled(g).then(() => 'settled' as const), timer])) === 'timeout') {
      throw new SkeinError('UNAVAILABLE', 'writes admitted before the fence have not settled', { retryAfter: 1 });
    }
    return reply.send({ position: transfer.highestPosition(partition).toString() });
  });

  app.delete<{ Params: { p: string } }>('/partitions/:p/transfer/data', async (req, reply) => {
    const partition = validatePartition(req.params.p);
    await notOwnedHere(partition, 'drop');
    return reply.send(await transfer.dropPartition(partition));
  });
}
