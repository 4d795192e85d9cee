import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SkeinError } from '@skein/protocol';
import { SCRIPT_CODES, toSkeinError } from './index.ts';

function replyError(message: string): Error {
  const err = new Error(message);
  err.name = 'ReplyError';
  return err;
}

test('connection failures and timeouts become UNAVAILABLE with retryAfter and the cause', () => {
  for (const message of ['Command timed out', "Stream isn't writeable and enableOfflineQueue options is false", 'Connection is closed.', 'connect ECONNREFUSED 127.0.0.1:1']) {
    const cause = new Error(message);
    const err = toSkeinError(cause);
    assert.equal(err.code, 'UNAVAILABLE', message);
    assert.equal(err.retryable, true);
    assert.equal(err.details.retryAfter, 1);
    assert.equal(err.cause, cause);
  }
});

test('transient Redis replies become UNAVAILABLE, overflow VALIDATION_FAILED, anything else INTERNAL', () => {
  assert.equal(toSkeinError(replyError('LOADING Redis is loading the dataset in memory')).code, 'UNAVAILABLE');
  assert.equal(toSkeinError(replyError('BUSY Redis is busy running a script')).code, 'UNAVAILABLE');
  assert.equal(toSkeinError(replyError('READONLY You can\'t write against a read only replica.')).code, 'UNAVAILABLE');
  assert.equal(toSkeinError(replyError('MISCONF Redis is configured to save RDB snapshots')).code, 'UNAVAILABLE');
  const overflow = toSkeinError(replyError('ERR increment or decrement would overflow'));
  assert.equal(overflow.code, 'VALIDATION_FAILED');
  assert.equal(overflow.details.field, 'count');
  const bug = replyError('WRONGTYPE Operation against a key holding the wrong kind of value');
  const internal = toSkeinError(bug);
  assert.equal(internal.code, 'INTERNAL');
  assert.equal(internal.cause, bug);
});

test('script return codes map to registry codes', () => {
  assert.equal(toSkeinError({ script: 'allocate', code: SCRIPT_CODES.RANGE_OVERFLOW }).code, 'VALIDATION_FAILED');
  const waiting = toSkeinError({ script: 'reseed', code: SCRIPT_CODES.RESEED_WAITING, details: { waitingFor: ['s2'] } });
  assert.equal(waiting.code, 'UNAVAILABLE');
  assert.deepEqual(waiting.details, { retryAfter: 1, waitingFor: ['s2'] });
  assert.equal(toSkeinError({ script: 'current', code: SCRIPT_CODES.DATA_LOSS }).code, 'UNAVAILABLE');
  assert.equal(toSkeinError({ script: 'allocate', code: SCRIPT_CODES.MARKER_MISMATCH }).code, 'UNAVAILABLE');
  assert.equal(toSkeinError({ script: 'allocate', code: 7 as never }).code, 'INTERNAL');
});

test('a SkeinError passes through unchanged', () => {
  const err = new SkeinError('NOT_FOUND');
  assert.equal(toSkeinError(err), err);
});
