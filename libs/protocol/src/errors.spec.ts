import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, SkeinError, fromProblem, isSkeinError, toProblem } from './index.ts';

const apiDoc = readFileSync(fileURLToPath(new URL('../../../docs/API.md', import.meta.url)), 'utf8');

function documentedCodes(): Map<string, number> {
  const table = apiDoc.slice(apiDoc.indexOf('| status | code |'));
  const out = new Map<string, number>();
  for (const line of table.split('\n').slice(2)) {
    const m = /^\| (\d{3}) \| (.*)\|$/.exec(line.trim());
    if (!m) break;
    for (const code of m[2]!.matchAll(/`([A-Z_]+)`/g)) out.set(code[1]!, Number(m[1]));
  }
  return out;
}

test('the registry holds exactly the public codes of API.md, each with its documented status', () => {
  const documented = documentedCodes();
  assert.ok(documented.size >= 17, 'the API.md error table was found and parsed');
  const publicCodes = Object.entries(ERROR_CODES).filter(([, v]) => !('internal' in v && v.internal));
  assert.deepEqual(
    new Map(publicCodes.map(([code, v]) => [code, v.status])),
    documented,
  );
});

test('only 429 and 503 style failures are marked retryable', () => {
  const retryable = Object.entries(ERROR_CODES).filter(([, v]) => v.retryable).map(([k]) => k).sort();
  assert.deepEqual(retryable, ['NOT_OWNER', 'RATE_LIMITED', 'UNAVAILABLE']);
});

test('a problem document carries code, status and extension members, and round-trips', () => {
  const err = new SkeinError('WRONG_EXPECTED_VERSION', 'stream is at 3', { expected: 2, actual: 3 });
  const p = toProblem(err);
  assert.equal(p.status, 409);
  assert.equal(p.code, 'WRONG_EXPECTED_VERSION');
  assert.equal(p.expected, 2);
  assert.equal(p.actual, 3);
  assert.match(p.type, /wrong-expected-version$/);
  const back = fromProblem(JSON.parse(JSON.stringify(p)));
  assert.ok(isSkeinError(back, 'WRONG_EXPECTED_VERSION'));
  assert.deepEqual(back.details, { expected: 2, actual: 3 });
});

test('an unknown error becomes INTERNAL with nothing of its message shown', () => {
  const p = toProblem(new Error('secret path /var/lib/x'));
  assert.equal(p.code, 'INTERNAL');
  assert.equal(p.status, 500);
  assert.doesNotMatch(JSON.stringify(p), /secret/);
});

test('isSkeinError checks the code, never the message', () => {
  const err = new SkeinError('STREAM_DELETED');
  assert.ok(isSkeinError(err));
  assert.ok(isSkeinError(err, 'STREAM_DELETED', 'STREAM_NOT_FOUND'));
  assert.ok(!isSkeinError(err, 'STREAM_NOT_FOUND'));
  assert.ok(!isSkeinError(new Error('STREAM_DELETED'), 'STREAM_DELETED'));
});
