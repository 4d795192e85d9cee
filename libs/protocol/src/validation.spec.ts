import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  categoryOf,
  isSkeinError,
  parseExpectedVersion,
  parseLimit,
  parsePosition,
  validateIdempotencyKey,
  validatePartition,
  validateProposedEvents,
  validateStreamId,
  validateTenant,
  validateEventType,
  validateJsonValue,
  validateStreamMetadata,
  MAX_JSON_DEPTH,
} from './index.ts';

function rejects(fn: () => unknown, code: string, field?: string) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isSkeinError(err), `expected a SkeinError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (field !== undefined) assert.equal(err.details.field, field);
    return true;
  });
}

test('tenant names follow ^[a-z0-9][a-z0-9-]{0,62}$', () => {
  for (const ok of ['a', 'acme', 'a-1', '0', 'x'.repeat(63)]) assert.equal(validateTenant(ok), ok);
  for (const bad of ['', '-a', 'A', 'a_b', 'x'.repeat(64), 'a b', 7, null]) rejects(() => validateTenant(bad), 'VALIDATION_FAILED', 'tenant');
});

test('partition ids are a tenant, optionally with ~n', () => {
  assert.equal(validatePartition('acme~3'), 'acme~3');
  assert.equal(validatePartition('acme'), 'acme');
  for (const bad of ['acme~', 'acme~01', 'acme~-1', '$global', 'acme~a']) rejects(() => validatePartition(bad), 'VALIDATION_FAILED');
});

test('stream ids are 1–256 bytes of UTF-8 without control characters', () => {
  assert.equal(validateStreamId('order-123'), 'order-123');
  assert.equal(validateStreamId('é'.repeat(128)), 'é'.repeat(128));
  rejects(() => validateStreamId('é'.repeat(129)), 'VALIDATION_FAILED', 'streamId');
  rejects(() => validateStreamId(''), 'VALIDATION_FAILED');
  rejects(() => validateStreamId('a\nb'), 'VALIDATION_FAILED');
  rejects(() => validateStreamId('a\u0085b'), 'VALIDATION_FAILED');
  rejects(() => validateStreamId('\ud800'), 'VALIDATION_FAILED');
  rejects(() => validateEventType('t'.repeat(129)), 'VALIDATION_FAILED', 'type');
});

test('categories are the part of a stream id before the first dash', () => {
  assert.equal(categoryOf('order-123'), 'order');
  assert.equal(categoryOf('order-1-2'), 'order');
  assert.equal(categoryOf('order'), 'order');
});

test('expected versions are any, no_stream, stream_exists or an integer ≥ 0', () => {
  assert.equal(parseExpectedVersion(undefined), 'any');
  assert.equal(parseExpectedVersion('no_stream'), 'no_stream');
  assert.equal(parseExpectedVersion(0), 0);
  assert.equal(parseExpectedVersion('12', 'query'), 12);
  rejects(() => parseExpectedVersion('12'), 'VALIDATION_FAILED', 'expectedVersion');
  for (const bad of [-1, 1.5, '1.5', 'latest', null, '01', 2 ** 60, {}]) rejects(() => parseExpectedVersion(bad, 'query'), 'VALIDATION_FAILED', 'expectedVersion');
});

test('events need a type and data, ids must be UUIDs, and unknown members are refused', () => {
  const [e] = validateProposedEvents([{ type: 'A', data: null }]);
  assert.deepEqual(e, { type: 'A', data: null, metadata: null });
  rejects(() => validateProposedEvents([]), 'VALIDATION_FAILED', 'events');
  rejects(() => validateProposedEvents({}), 'VALIDATION_FAILED', 'events');
  rejects(() => validateProposedEvents([{ type: 'A' }]), 'VALIDATION_FAILED', 'events[0].data');
  rejects(() => validateProposedEvents([{ data: 1 }]), 'VALIDATION_FAILED', 'events[0].type');
  rejects(() => validateProposedEvents([{ type: 'A', data: 1, id: 'nope' }]), 'VALIDATION_FAILED', 'events[0].id');
  rejects(() => validateProposedEvents([{ type: 'A', data: 1, extra: 1 }]), 'VALIDATION_FAILED', 'events[0].extra');
});

test('an event over the size limit is PAYLOAD_TOO_LARGE', () => {
  rejects(() => validateProposedEvents([{ type: 'A', data: 'x'.repeat(2048) }], { maxEventBytes: 1024, maxEventsPerAppend: 10 }), 'PAYLOAD_TOO_LARGE', 'events[0]');
});

/** An event's measured size as API.md defines it: UTF-8 bytes of its type and of its data and metadata as JSON. */
function stringifiedSize(type: string, data: unknown, metadata?: unknown): number {
  const bytes = (v: unknown) => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8'));
  return Buffer.byteLength(type) + bytes(data) + bytes(metadata);
}

function measured(type: string, data: unknown, metadata?: unknown): number {
  const sizes: number[] = [];
  validateProposedEvents([metadata === undefined ? { type, data } : { type, data, metadata }], undefined, sizes);
  return sizes[0]!;
}

test('an event is measured exactly as the UTF-8 bytes of JSON.stringify, for any JSON value and for values with rules of their own', () => {
  const cases: unknown[] = [
    null, true, false, 0, -0, 1, -1, 0.1, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, -123.456e-300, 2 ** 53 + 2,
    '', 'plain', 'quote " and backslash \\', 'controls \u0000\u0001\u001f\n\t\r\b\f', '\u007f\u0080\u00e9', '\u2028\u2029', '日本語', '😀 pairs', 'ok\ud83d\ude00',
    [], {}, [[]], [{}], { a: undefined }, { a: undefined, b: 1 }, { b: 1, a: undefined }, [1, 'two', null, { three: [3] }],
    { 'name "quoted"': 1, 'ключ': 'значение', '': '', '\u0000': 0, '😀': ['😀'] },
    Object.assign(Object.create(null), { nullProto: 1 }),
    new Date(0), { when: new Date(86_400_000) }, [new Date(1)], { toJSON: undefined, x: 1 }, { toJSON: 'not a method' },
    new (class Point { x = 1; y = 2; })(), Object.create({ inherited: 1 }),
    { nested: { deeper: { deepest: [1, [2, [3, { four: 4 }]]] } } },
    // Either side of the length up to which strings are measured character by character.
    'x'.repeat(24), 'x'.repeat(25), 'é'.repeat(24), 'é'.repeat(25), '😀'.repeat(12), `${'😀'.repeat(12)}x`, `${'x'.repeat(23)}"`, `${'x'.repeat(24)}"`, `€${'x'.repeat(23)}`,
  ];
  // Seeded, so a failure repeats: random JSON values over the tricky characters and numbers above.
  let seed = 0x9e3779b9;
  const random = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const alphabet = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\u0000', '\u001f', '\u007f', 'é', '€', '\u2028', '😀', '日'];
  const text = () => Array.from({ length: Math.floor(random() * 8) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  const numbers = [0, -0, 7, -42, 3.5, 1e21, 1e-7, 123456789012, 0.1 + 0.2, -5e-324, 1.7976931348623157e308];
  const value = (depth: number): unknown => {
    const pick = random();
    if (depth > 4 || pick < 0.45) {
      const scalar = Math.floor(random() * 4);
      return scalar === 0 ? text() : scalar === 1 ? numbers[Math.floor(random() * numbers.length)] : scalar === 2 ? random() < 0.5 : null;
    }
    if (pick < 0.7) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(random() * 4); i > 0; i--) o[text()] = random() < 0.1 ? undefined : value(depth + 1);
    return o;
  };
  for (let i = 0; i < 2_000; i++) cases.push(value(0));
  for (const data of cases) {
    assert.equal(measured('Tÿpe', data), stringifiedSize('Tÿpe', data), JSON.stringify(data));
    assert.equal(measured('T', 1, data), stringifiedSize('T', 1, data), JSON.stringify(data));
  }
  // The limit holds on the measured size, to the byte.
  const data = { s: 'é'.repeat(100) };
  const size = stringifiedSize('A', data);
  assert.equal(validateProposedEvents([{ type: 'A', data }], { maxEventBytes: size, maxEventsPerAppend: 10 }).length, 1);
  rejects(() => validateProposedEvents([{ type: 'A', data }], { maxEventBytes: size - 1, maxEventsPerAppend: 10 }), 'PAYLOAD_TOO_LARGE', 'events[0]');
});

test('paging parameters and positions are bounded integers', () => {
  assert.equal(parseLimit(undefined), 100);
  assert.equal(parseLimit('1000'), 1000);
  for (const bad of [0, 1001, '1e3', -1, 'x']) rejects(() => parseLimit(bad), 'VALIDATION_FAILED', 'limit');
  assert.equal(parsePosition('18446744073709551615'), (1n << 64n) - 1n);
  for (const bad of ['-1', '18446744073709551616', 'abc', '1.0']) rejects(() => parsePosition(bad), 'VALIDATION_FAILED');
});

test('idempotency keys are 1–128 printable ASCII characters', () => {
  assert.equal(validateIdempotencyKey('abc-123'), 'abc-123');
  for (const bad of ['', 'a b', 'é', 'x'.repeat(129)]) rejects(() => validateIdempotencyKey(bad), 'VALIDATION_FAILED');
});

function nested(levels: number, leaf: unknown = 1, kind: 'array' | 'object' = 'array'): unknown {
  let v = leaf;
  for (let i = 0; i < levels; i++) v = kind === 'array' ? [v] : { a: v };
  return v;
}

test('data and metadata nest at most 64 levels: 64 is accepted, 65 refused naming the field', () => {
  assert.equal(MAX_JSON_DEPTH, 64);
  for (const kind of ['array', 'object'] as const) {
    assert.equal(validateProposedEvents([{ type: 'T', data: nested(64, 1, kind), metadata: nested(64, 'm', kind) }]).length, 1);
    rejects(() => validateProposedEvents([{ type: 'T', data: nested(65, 1, kind) }]), 'VALIDATION_FAILED', 'events[0].data');
    rejects(() => validateProposedEvents([{ type: 'T', data: 1 }, { type: 'T', data: null, metadata: nested(65, 1, kind) }]), 'VALIDATION_FAILED', 'events[1].metadata');
  }
  // Depth counts containers only: a scalar is level 0, an empty container one level.
  validateJsonValue(nested(63, {}), 'x');
  rejects(() => validateJsonValue(nested(64, []), 'x'), 'VALIDATION_FAILED', 'x');
});

test('100,000 levels of nesting are refused without overflowing the stack', () => {
  // Built iteratively; JSON.parse of the text form gives the same shape a client would send.
  const text = '['.repeat(100_000) + ']'.repeat(100_000);
  const deep: unknown = JSON.parse(text);
  rejects(() => validateProposedEvents([{ type: 'T', data: deep }]), 'VALIDATION_FAILED', 'events[0].data');
  rejects(() => validateJsonValue(nested(100_000, 1, 'object'), 'custom'), 'VALIDATION_FAILED', 'custom');
  rejects(() => validateStreamMetadata({ custom: deep }), 'VALIDATION_FAILED', 'custom');
});

test('lone surrogates anywhere in data, metadata, member names or the type are refused', () => {
  const lone = JSON.parse('"a\\ud800b"') as string;
  rejects(() => validateProposedEvents([{ type: lone, data: 1 }]), 'VALIDATION_FAILED', 'events[0].type');
  rejects(() => validateProposedEvents([{ type: 'T', data: { deep: [[lone]] } }]), 'VALIDATION_FAILED', 'events[0].data');
  rejects(() => validateProposedEvents([{ type: 'T', data: { [lone]: 1 } }]), 'VALIDATION_FAILED', 'events[0].data');
  rejects(() => validateProposedEvents([{ type: 'T', data: 1, metadata: { m: '\udc00' } }]), 'VALIDATION_FAILED', 'events[0].metadata');
  rejects(() => validateStreamId(`s-${lone}`), 'VALIDATION_FAILED', 'streamId');
  // A proper pair is one well-formed character.
  assert.equal(validateProposedEvents([{ type: 'T', data: '\ud83d\ude00' }]).length, 1);
});

test('values that are not JSON are refused before anything serializes them', () => {
  for (const bad of [Symbol('s'), () => 1, 1n, NaN, Infinity]) {
    rejects(() => validateProposedEvents([{ type: 'T', data: { x: [bad] } }]), 'VALIDATION_FAILED', 'events[0].data');
  }
  // An undefined member is dropped, as JSON.stringify drops it.
  assert.equal(validateProposedEvents([{ type: 'T', data: { x: undefined, y: [true, null, 1.5, 'z'] } }]).length, 1);
});
