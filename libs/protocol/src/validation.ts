import { SkeinError, validationError } from './errors.ts';
import type { Direction, ExpectedVersion, ProposedEvent, DeleteMode, StreamMetadata } from './types.ts';

/** Default limits of API.md. Services may configure larger or smaller ones. */
export const DEFAULT_LIMITS = Object.freeze({
  /** One event (type, data and metadata as JSON) at most, in bytes. */
  maxEventBytes: 1024 * 1024,
  /** One request body at most, in bytes. */
  maxBodyBytes: 4 * 1024 * 1024,
  /** Events of one append request at most. */
  maxEventsPerAppend: 10_000,
  /** Page size bounds of every read. */
  maxPageSize: 1000,
  defaultPageSize: 100,
});
export type Limits = { [K in keyof typeof DEFAULT_LIMITS]: number };

const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PARTITION_RE = /^[a-z0-9][a-z0-9-]{0,62}(~(0|[1-9][0-9]{0,5}))?$/;
// Control characters: C0, DEL and C1.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,128}$/;
const DIGITS_RE = /^(0|[1-9][0-9]*)$/;

export function isValidTenant(value: unknown): value is string {
  return typeof value === 'string' && TENANT_RE.test(value);
}

export function validateTenant(value: unknown, field = 'tenant'): string {
  if (!isValidTenant(value)) throw validationError(field, 'tenant must match ^[a-z0-9][a-z0-9-]{0,62}$');
  return value;
}

/** A partition id is a tenant id, or `{tenant}~{n}` for a tenant with several partitions. */
export function validatePartition(value: unknown, field = 'partition'): string {
  if (typeof value !== 'string' || !PARTITION_RE.test(value)) {
    throw validationError(field, 'partition must be a tenant id, optionally followed by ~n');
  }
  return value;
}

/** The tenant a partition id belongs to. */
export function tenantOfPartition(partition: string): string {
  const i = partition.indexOf('~');
  return i < 0 ? partition : partition.slice(0, i);
}

function validateName(value: unknown, field: string, maxBytes: number): string {
  if (typeof value !== 'string' || value.length === 0) throw validationError(field, `${field} must be a non-empty string`);
  if (value.length > maxBytes || Buffer.byteLength(value, 'utf8') > maxBytes) {
    throw validationError(field, `${field} must be at most ${maxBytes} bytes of UTF-8`);
  }
  if (CONTROL_RE.test(value)) throw validationError(field, `${field} must not contain control characters`);
  if (!value.isWellFormed()) throw validationError(field, `${field} must be valid UTF-8`);
  return value;
}

/** Stream id: 1–256 bytes of UTF-8, no control characters. */
export function validateStreamId(value: unknown, field = 'streamId'): string {
  return validateName(value, field, 256);
}

/** Event type: 1–128 bytes, no control characters. */
export function validateEventType(value: unknown, field = 'type'): string {
  return validateName(value, field, 128);
}

/** The category of a stream: the part before the first `-`, or the whole id. */
export function categoryOf(streamId: string): string {
  const i = streamId.indexOf('-');
  return i < 0 ? streamId : streamId.slice(0, i);
}

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}

/** Idempotency-Key: 1–128 printable ASCII characters. */
export function validateIdempotencyKey(value: unknown, field = 'Idempotency-Key'): string {
  if (typeof value !== 'string' || !IDEMPOTENCY_KEY_RE.test(value)) {
    throw validationError(field, 'Idempotency-Key must be 1–128 printable ASCII characters');
  }
  return value;
}

/**
 * Parses an expected version from JSON (`"any"`, `"no_stream"`, `"stream_exists"`, an integer ≥ 0)
 * or, with `source: 'query'`, from a query string (the integer as decimal digits). `undefined` means `any`.
 */
export function parseExpectedVersion(value: unknown, source: 'json' | 'query' = 'json', field = 'expectedVersion'): ExpectedVersion {
  if (value === undefined) return 'any';
  if (value === 'any' || value === 'no_stream' || value === 'stream_exists') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (source === 'query' && typeof value === 'string' && DIGITS_RE.test(value) && value.length <= 15) return Number(value);
  throw validationError(field, 'expectedVersion must be "any", "no_stream", "stream_exists" or an integer ≥ 0');
}

/** How deep API.md lets an event's `data` and `metadata` (and snapshots, custom stream metadata) nest. */
export const MAX_JSON_DEPTH = 64;

/**
 * Checks that `value` is a JSON value: null, a boolean, a finite number, a well-formed
 * string (no lone surrogate), or an array or object of JSON values with well-formed
 * member names, nested at most `maxDepth` levels (every array or object is one level:
 * `1` is 0 levels, `[[1]]` is 2). Object members that are `undefined` are allowed and
 * dropped, as JSON.stringify does. Throws VALIDATION_FAILED naming `field`.
 *
 * Iterative, and it never looks below `maxDepth + 1` levels: any input, 100,000 levels
 * deep or more, is refused in bounded stack. msgpack's encoder and decoder, JSON.stringify
 * and the JSON schema validator all recurse per level; checked first, this bounds them.
 */
export function validateJsonValue(value: unknown, field: string, maxDepth = MAX_JSON_DEPTH): void {
  walkJsonValue(value, field, maxDepth);
}

/**
 * validateJsonValue's walk, which also counts the UTF-8 bytes of `JSON.stringify(value)`
 * as it goes (a second pass through JSON.stringify was 2% of the router's main thread
 * under 32 appending clients). Returns -1 when JSON.stringify would apply rules of its own
 * (a `toJSON` method, an object that is not a plain object or array: a Date, a boxed
 * primitive, a class instance): the caller measures those with JSON.stringify itself.
 * Parsed JSON never has them.
 */
function walkJsonValue(value: unknown, field: string, maxDepth: number): number {
  if (value === null || typeof value !== 'object') return scalarBytes(value, field);
  let bytes = 0;
  let plain = true;
  // Containers still to visit, and the depth of each (parallel arrays: no tuple per node).
  const containers: object[] = [value];
  const depths: number[] = [1];
  while (containers.length > 0) {
    const node = containers.pop()!;
    const depth = depths.pop()!;
    if (depth > maxDepth) throw validationError(field, `${field} is nested more than ${maxDepth} levels deep`);
    if (plain) plain = isPlainContainer(node);
    if (Array.isArray(node)) {
      // Brackets, and a comma between elements.
      bytes += node.length > 0 ? node.length + 1 : 2;
      for (let i = 0; i < node.length; i++) {
        const v: unknown = node[i];
        if (v !== null && typeof v === 'object') {
          containers.push(v);
          depths.push(depth + 1);
        } else bytes += scalarBytes(v, field);
      }
      continue;
    }
    let members = 0;
    for (const key in node) {
      if (!Object.prototype.hasOwnProperty.call(node, key)) continue;
      if (!key.isWellFormed()) throw validationError(field, `${field} holds a member name with a lone surrogate (not valid UTF-8)`);
      const v: unknown = (node as Record<string, unknown>)[key];
      if (v === undefined) continue;
      members++;
      // The quoted name and its colon.
      bytes += stringBytes(key) + 1;
      if (v !== null && typeof v === 'object') {
        containers.push(v);
        depths.push(depth + 1);
      } else bytes += scalarBytes(v, field);
    }
    // Braces, and a comma between members.
    bytes += members > 0 ? members + 1 : 2;
  }
  return plain ? bytes : -1;
}

/** An array or object JSON.stringify writes member by member (no `toJSON`, no class of its own). */
function isPlainContainer(node: object): boolean {
  if (typeof (node as { toJSON?: unknown }).toJSON === 'function') return false;
  const proto: unknown = Object.getPrototypeOf(node);
  return proto === null || proto === (Array.isArray(node) ? Array.prototype : Object.prototype);
}

/** A string JSON.stringify writes as it is, between quotes: no quote, backslash or control character. */
const UNESCAPED_JSON_STRING = /^[^"\\\u0000-\u001f]*$/;

/**
 * Strings up to this long are measured in one JS loop over their characters: for short
 * strings (most member names and values) the regex test and the call out to
 * Buffer.byteLength cost more than the loop (measured: 8 characters 34-65 vs 55-146 ns, 24
 * about even, 32 286 vs 211 ns).
 */
const SHORT_STRING = 24;

/** UTF-8 bytes of JSON.stringify(s), for a well-formed string. */
function stringBytes(s: string): number {
  if (s.length > SHORT_STRING) {
    return UNESCAPED_JSON_STRING.test(s) ? Buffer.byteLength(s, 'utf8') + 2 : Buffer.byteLength(JSON.stringify(s), 'utf8');
  }
  // The quotes, then each character's UTF-8 bytes; a character JSON.stringify escapes
  // sends the string to JSON.stringify itself.
  let bytes = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 || c === 0x22 || c === 0x5c) return Buffer.byteLength(JSON.stringify(s), 'utf8');
      bytes += 1;
    } else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // Well-formed: a high surrogate is followed by its low one, 4 bytes for the pair.
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Checks a JSON scalar (as validateJsonValue does) and returns the UTF-8 bytes of its JSON text. */
function scalarBytes(v: unknown, field: string): number {
  switch (typeof v) {
    case 'string':
      if (!v.isWellFormed()) throw validationError(field, `${field} holds a string with a lone surrogate (not valid UTF-8)`);
      return stringBytes(v);
    case 'number':
      if (!Number.isFinite(v)) throw validationError(field, `${field} holds ${v}, which is not a JSON number`);
      // JSON.stringify writes a finite number as String() does (ASCII).
      return String(v).length;
    case 'boolean':
      return v ? 4 : 5;
    case 'object':
      if (v === null) return 4;
      break;
  }
  throw validationError(field, `${field} holds a ${typeof v}, which is not a JSON value`);
}

function jsonBytes(value: unknown): number {
  if (value === undefined) return 0;
  const text = JSON.stringify(value);
  return text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
}

/**
 * Validates the events of an append request; returns them in normalised form
 * (metadata defaults to null). Throws VALIDATION_FAILED or PAYLOAD_TOO_LARGE.
 * When `sizes` is given, it receives each event's measured size (UTF-8 bytes of its
 * type and of its data and metadata as JSON), in order.
 */
export function validateProposedEvents(
  value: unknown,
  limits: Pick<Limits, 'maxEventBytes' | 'maxEventsPerAppend'> = DEFAULT_LIMITS,
  sizes?: number[],
): ProposedEvent[] {
  if (!Array.isArray(value)) throw validationError('events', 'events must be an array');
  if (value.length === 0) throw validationError('events', 'events must hold at least one event');
  if (value.length > limits.maxEventsPerAppend) {
    throw validationError('events', `at most ${limits.maxEventsPerAppend} events per append`);
  }
  const out: ProposedEvent[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const e: unknown = value[i];
    const at = `events[${i}]`;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw validationError(at, `${at} must be an object`);
    const { id, type, data, metadata } = e as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (key !== 'id' && key !== 'type' && key !== 'data' && key !== 'metadata') {
        throw validationError(`${at}.${key}`, `${at} has an unknown member "${key}"`);
      }
    }
    if (id !== undefined && !isUuid(id)) throw validationError(`${at}.id`, `${at}.id must be a UUID`);
    validateEventType(type, `${at}.type`);
    if (data === undefined) throw validationError(`${at}.data`, `${at}.data is required (null is allowed)`);
    // Before anything serializes them (jsonBytes, the fingerprint, msgpack): those recurse per
    // level. The walk measures them too (-1: one JSON.stringify measures by its own rules).
    const dataBytes = walkJsonValue(data, `${at}.data`, MAX_JSON_DEPTH);
    const metadataBytes = metadata === undefined ? 0 : walkJsonValue(metadata, `${at}.metadata`, MAX_JSON_DEPTH);
    const size = Buffer.byteLength(type as string) + (dataBytes >= 0 ? dataBytes : jsonBytes(data)) + (metadataBytes >= 0 ? metadataBytes : jsonBytes(metadata));
    if (size > limits.maxEventBytes) {
      throw new SkeinError('PAYLOAD_TOO_LARGE', `${at} is ${size} bytes; at most ${limits.maxEventBytes} allowed`, {
        field: at,
        limit: limits.maxEventBytes,
      });
    }
    sizes?.push(size);
    const event: ProposedEvent = { type: type as string, data, metadata: metadata === undefined ? null : metadata };
    if (id !== undefined) event.id = (id as string).toLowerCase();
    out[i] = event;
  }
  return out;
}

/** Page size: 1–maxPageSize, default defaultPageSize. Accepts numbers and decimal strings. */
export function parseLimit(value: unknown, limits: Pick<Limits, 'maxPageSize' | 'defaultPageSize'> = DEFAULT_LIMITS, field = 'limit'): number {
  if (value === undefined) return limits.defaultPageSize;
  const n = typeof value === 'string' && DIGITS_RE.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > limits.maxPageSize) {
    throw validationError(field, `${field} must be an integer from 1 to ${limits.maxPageSize}`);
  }
  return n;
}

/** A stream version ≥ 1 (numbers or decimal strings). */
export function parseVersion(value: unknown, field: string, min = 1): number {
  const n = typeof value === 'string' && DIGITS_RE.test(value) && value.length <= 15 ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    throw validationError(field, `${field} must be an integer ≥ ${min}`);
  }
  return n;
}

/** A global position ≥ 0 (bigint, safe integer, or decimal string). */
export function parsePosition(value: unknown, field = 'fromPosition'): bigint {
  if (typeof value === 'bigint' && value >= 0n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && DIGITS_RE.test(value) && value.length <= 20) {
    const p = BigInt(value);
    if (p <= MAX_POSITION) return p;
  }
  throw validationError(field, `${field} must be a decimal integer ≥ 0`);
}

/** Positions are unsigned 64-bit integers. */
export const MAX_POSITION = (1n << 64n) - 1n;

export function parseDirection(value: unknown, field = 'direction'): Direction {
  if (value === undefined || value === 'forward') return 'forward';
  if (value === 'backward') return 'backward';
  throw validationError(field, 'direction must be "forward" or "backward"');
}

export function parseDeleteMode(value: unknown, field = 'mode'): DeleteMode {
  if (value === undefined || value === 'soft') return 'soft';
  if (value === 'hard') return 'hard';
  throw validationError(field, 'mode must be "soft" or "hard"');
}

/** Stream metadata (API.md): `maxAge` seconds ≥ 1, `maxCount` ≥ 1, `truncateBefore` ≥ 0, `custom` any JSON. */
export function validateStreamMetadata(value: unknown): StreamMetadata {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw validationError('metadata', 'metadata must be an object');
  const out: StreamMetadata = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'custom') {
      if (v === undefined) continue;
      validateJsonValue(v, 'custom');
      out.custom = v;
    } else if (key === 'maxAge' || key === 'maxCount' || key === 'truncateBefore') {
      if (v === undefined || v === null) continue;
      const min = key === 'truncateBefore' ? 0 : 1;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw validationError(key, `${key} must be an integer ≥ ${min}`);
      out[key] = v;
    } else {
      throw validationError(key, `unknown metadata member "${key}"`);
    }
  }
  return out;
}
