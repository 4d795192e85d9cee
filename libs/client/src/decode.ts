import { SkeinError, parsePosition } from '@skein/protocol';
import type { AppendResult, LogPage, PositionInput, SkeinEvent, StreamPage } from './types.ts';

// Responses are the router's word; a body of the wrong shape is a server fault, reported as INTERNAL.
function malformed(what: string, cause?: unknown): SkeinError {
  return new SkeinError('INTERNAL', `malformed response from server: ${what}`, {}, { cause });
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformed(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function position(value: unknown, what: string): bigint {
  if (typeof value === 'string' && /^(0|[1-9][0-9]*)$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw malformed(`${what} is not a position`);
}

function integer(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  throw malformed(`${what} is not an integer`);
}

/** A wire event (API.md, "Events") with its position as a bigint. */
export function decodeEvent(value: unknown): SkeinEvent {
  const e = object(value, 'event');
  if (typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.streamId !== 'string') {
    throw malformed('event lacks id, type or streamId');
  }
  const event: SkeinEvent = {
    id: e.id,
    type: e.type,
    data: e.data,
    metadata: e.metadata ?? null,
    streamId: e.streamId,
    version: integer(e.version, 'event version'),
    position: position(e.position, 'event position'),
    timestamp: typeof e.timestamp === 'string' ? e.timestamp : '',
  };
  if (typeof e.tenant === 'string') event.tenant = e.tenant;
  return event;
}

function events(value: unknown): SkeinEvent[] {
  if (!Array.isArray(value)) throw malformed('events is not an array');
  return value.map(decodeEvent);
}

export function decodeAppendResult(value: unknown): AppendResult {
  const r = object(value, 'append result');
  const result: AppendResult = {
    streamId: typeof r.streamId === 'string' ? r.streamId : '',
    firstVersion: integer(r.firstVersion, 'firstVersion'),
    lastVersion: integer(r.lastVersion, 'lastVersion'),
    firstPosition: position(r.firstPosition, 'firstPosition'),
    lastPosition: position(r.lastPosition, 'lastPosition'),
  };
  if (r.duplicate === true) result.duplicate = true;
  return result;
}

export function decodeStreamPage(value: unknown): StreamPage {
  const p = object(value, 'stream page');
  return {
    events: events(p.events),
    version: integer(p.version, 'version'),
    next: p.next === null || p.next === undefined ? null : integer(p.next, 'next'),
  };
}

/** `"next":<integer or null>}` closing the text: how the server ends a stream page. */
const NEXT_AT_END = /"next":(null|0|[1-9][0-9]{0,15})\}\s*$/;

/**
 * A stream page's `next` read off the end of its JSON text without parsing it: a guess
 * (undefined when the text does not end that way), to be checked against the parsed page.
 * Only the tail is matched: the regular expression would otherwise scan the whole page.
 */
export function nextOfStreamPageText(text: string): number | null | undefined {
  const m = NEXT_AT_END.exec(text.length > 48 ? text.slice(-48) : text);
  if (!m) return undefined;
  return m[1] === 'null' ? null : Number(m[1]);
}

/** `fallbackNext` stands in for a missing `next` (the caught-up answer of API.md). */
export function decodeLogPage(value: unknown, fallbackNext: bigint): LogPage {
  const p = object(value, 'log page');
  return {
    events: events(p.events),
    next: p.next === null || p.next === undefined ? fallbackNext : position(p.next, 'next'),
  };
}

/** A position input as its decimal wire form. Throws VALIDATION_FAILED naming `field`. */
export function positionParam(value: PositionInput, field: string): string {
  return parsePosition(value, field).toString();
}
