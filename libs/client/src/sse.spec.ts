import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createSseParser } from './sse.ts';
import type { SseMessage } from './sse.ts';

function parseAll(chunks: string[]): SseMessage[] {
  const parser = createSseParser();
  return chunks.flatMap((c) => parser.push(c));
}

test('parses event, id and data fields of one message', () => {
  assert.deepEqual(parseAll(['event: OrderPlaced\nid: 7\ndata: {"a":1}\n\n']), [{ event: 'OrderPlaced', id: '7', data: '{"a":1}' }]);
});

test('joins multi-line data with newlines', () => {
  assert.deepEqual(parseAll(['data: {\ndata:   "a": 1\ndata: }\n\n']), [{ event: 'message', data: '{\n  "a": 1\n}' }]);
});

test('ignores heartbeat comments, also between the lines of a message', () => {
  const msgs = parseAll([': heartbeat\n\n', 'id: 1\n: ping\ndata: x\n\n', ':\n\n']);
  assert.deepEqual(msgs, [{ event: 'message', id: '1', data: 'x' }]);
});

test('accepts CRLF and CR line endings, also split between chunks', () => {
  assert.deepEqual(parseAll(['id: 1\r', '\ndata: a\r', '\r', 'id: 2\rdata: b\r\r']), [
    { event: 'message', id: '1', data: 'a' },
    { event: 'message', id: '2', data: 'b' },
  ]);
});

test('dispatches no message without data, and drops one the stream ends inside', () => {
  assert.deepEqual(parseAll(['event: x\nid: 3\n\n', 'id: 4\ndata: half']), []);
});

test('with idOnly, an id without data comes out in its place, marked, and one the stream ends inside does not', () => {
  const parser = createSseParser({ idOnly: true });
  const msgs = ['id: 41\n\n', ': heartbeat\n\n', 'event: A\nid: 42\ndata: x\n\nid: 43\n\nevent: B\nid: 44\ndata: y\n\n', 'id: 45'].flatMap((c) => parser.push(c));
  assert.deepEqual(msgs, [
    { event: '', data: '', id: '41', idOnly: true },
    { event: 'A', id: '42', data: 'x' },
    { event: '', data: '', id: '43', idOnly: true },
    { event: 'B', id: '44', data: 'y' },
  ]);
});

test('reads the retry field and a field without a colon', () => {
  assert.deepEqual(parseAll(['retry: 1500\ndata\n\n']), [{ event: 'message', data: '', retry: 1500 }]);
});

test('gives the same messages however the text is cut into chunks', () => {
  const text = ': hi\n\nevent: A\nid: 1\ndata: {"x":\ndata: 1}\n\r\nid: 2\r\ndata: two\r\n\r\n: hb\n\nretry: 5\ndata: 3\n\n';
  const whole = parseAll([text]);
  assert.equal(whole.length, 3);
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: text.length - 1 }), { maxLength: 12 }), (cuts) => {
      const points = [0, ...cuts.sort((a, b) => a - b), text.length];
      const chunks = points.slice(1).map((end, i) => text.slice(points[i], end));
      assert.deepEqual(parseAll(chunks), whole);
    }),
  );
});
