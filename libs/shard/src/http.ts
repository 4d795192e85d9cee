import type { FastifyRequest } from 'fastify';
import { EPOCH_HEADER, SkeinError, toWireEvent, type LoggedEvent, type WireEvent } from '@skein/protocol';
import { checkOwner } from './owner-check.ts';
import type { Ownership } from './ownership.ts';

/** The caller's topology epoch, or undefined when the header is absent. */
export function callerEpoch(req: FastifyRequest): number | undefined {
  const raw = req.headers[EPOCH_HEADER];
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? raw[0] : raw;
  if (text === undefined || !/^\d{1,15}$/.test(text)) {
    throw new SkeinError('VALIDATION_FAILED', `${EPOCH_HEADER} must be an integer ≥ 0`, { field: EPOCH_HEADER });
  }
  return Number(text);
}

/**
 * Throws NOT_OWNER (421, with the current `epoch`) unless this shard serves `partition`
 * at the caller's epoch. A caller ahead of the shard makes it re-read the topology first.
 */
export async function ensureOwner(ownership: Ownership, req: FastifyRequest, partition: string | undefined): Promise<void> {
  await checkOwner(ownership, partition, callerEpoch(req));
}

export { asSkeinError, sendProblem } from '@skein/http';

export function toWireLoggedEvent(e: LoggedEvent): WireEvent & { partition: string } {
  const wire = toWireEvent(e) as WireEvent & { partition: string };
  wire.partition = e.partition;
  return wire;
}

/** Comma-separated event types of a query string, or undefined. */
export function parseTypes(value: unknown): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new SkeinError('VALIDATION_FAILED', 'types must be a comma-separated list', { field: 'types' });
  return value.split(',').filter((t) => t.length > 0);
}

/** A string-valued query member, or undefined. Rejects repeated members. */
export function queryString(query: unknown, name: string): string | undefined {
  const v = (query as Record<string, unknown> | undefined)?.[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new SkeinError('VALIDATION_FAILED', `${name} must be given once`, { field: name });
  return v;
}
