import { test } from 'node:test';
import assert from 'node:assert/strict';
import { streamPageJson } from './shard-api.ts';
import { toWireEvent, type RecordedEvent } from './types.ts';

test('streamPageJson spells a page exactly as JSON.stringify of its wire events', () => {
  const at = Date.UTC(2024, 4, 1, 12, 34, 56, 789);
  const events: RecordedEvent[] = [
    { id: 'a', type: 'Placed', data: { n: 1, s: 'é "q" \n' }, metadata: null, streamId: 'order-1', version: 1, position: 9007199254740993n, timestamp: at },
    { id: 'b', type: 'Paid', data: [1, null, true], metadata: { by: 'x' }, streamId: 'order-1', version: 2, position: 9007199254740994n, timestamp: at },
    { id: 'c', type: 'T\u2028', data: 'text', metadata: null, streamId: 'order-1', version: 3, position: 12n, timestamp: at + 1 },
  ];
  for (const next of [null, 4]) {
    assert.equal(streamPageJson(events, 3, next), JSON.stringify({ events: events.map((e) => toWireEvent(e)), version: 3, next }));
  }
  assert.equal(streamPageJson([], 0, null), '{"events":[],"version":0,"next":null}');
});
