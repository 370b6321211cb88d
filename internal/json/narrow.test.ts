import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRecord } from './narrow.ts';

test('isRecord: plain objects only', () => {
  assert.equal(isRecord({}), true);
  assert.equal(isRecord({ a: 1 }), true);
  assert.equal(isRecord(JSON.parse('{"errors":[]}')), true);
  for (const value of [null, undefined, [], [1], 'x', 1, true]) assert.equal(isRecord(value), false, JSON.stringify(value));
});
