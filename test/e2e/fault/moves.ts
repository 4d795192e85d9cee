import assert from 'node:assert/strict';
import type { PartitionMove } from '@skein/client';
import { call } from '../support.ts';

/** A move as `GET /v1/admin/moves/{id}` shows it, with the record's timing members the specs measure by. */
export type Move = PartitionMove & { copyStartedAt?: number; fencedAt?: number; tailFrom?: string };

/** The move `id` as the router at `url` shows it. */
export async function getMove(url: string, key: string, id: string): Promise<Move> {
  const r = await call(url, 'GET', `/v1/admin/moves/${id}`, { key });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as Move;
}

/** Polls until the move is done or rolled back and its cleanup is over; fails past `timeoutMs`. */
export async function settledMove(url: string, key: string, id: string, timeoutMs = 90_000, everyMs = 100): Promise<Move> {
  for (const until = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, everyMs))) {
    const move = await getMove(url, key, id);
    if ((move.state === 'done' || move.state === 'rolled_back') && move.cleanup !== 'pending') return move;
    assert.ok(Date.now() < until, `move ${id} still ${move.state} (cleanup ${move.cleanup})`);
  }
}
