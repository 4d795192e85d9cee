import type { FastifyInstance } from 'fastify';
import { parseControlRecord, validationError, type ControlRecord } from '@skein/protocol';
import type { ControlRecordStore } from '../control-records.ts';

/** More records than one cluster's control plane holds in one request is a caller's bug. */
const MAX_RECORDS = 100_000;

/**
 * This shard's copy of the control records (DESIGN.md, "Control plane"). No ownership
 * check: every shard keeps every record.
 *
 * - `GET /internal/v1/control-records` → `{ records }`, tombstones included.
 * - `POST /internal/v1/control-records` `{ records }` → `200 { stored }` once durable;
 *   records older than the copy held are ignored (the merge rule). `400 VALIDATION_FAILED`
 *   for a malformed record, and nothing is stored.
 */
export function registerControlRecordRoutes(app: FastifyInstance, store: ControlRecordStore): void {
  app.get('/control-records', async (_req, reply) => reply.send({ records: store.all() }));

  app.post<{ Body: unknown }>('/control-records', async (req, reply) => {
    const list = (req.body as { records?: unknown } | null)?.records;
    if (!Array.isArray(list) || list.length > MAX_RECORDS) throw validationError('records', `records must be an array of at most ${MAX_RECORDS} control records`);
    const records: ControlRecord[] = [];
    for (const [i, r] of list.entries()) {
      try {
        records.push(parseControlRecord(r));
      } catch (err) {
        throw validationError(`records[${i}]`, (err as Error).message);
      }
    }
    return reply.send({ stored: await store.apply(records) });
  });
}
