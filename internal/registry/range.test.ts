import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contentRange, etagOf, ifRangeAllows, noneMatchHit, parseRange, unsatisfiedRange } from './range.ts';

test('no header or ignored headers serve the full content', () => {
  assert.deepEqual(parseRange(undefined, 100), { kind: 'full' });
  for (const header of ['bytes=0-1,5-6', 'bytes=-', 'items=0-5', 'bytes=a-b', 'bytes 0-5', 'bytes=0-5x', '']) {
    assert.deepEqual(parseRange(header, 100), { kind: 'full' }, header);
  }
});

test('closed, open-ended and suffix ranges', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { kind: 'partial', range: { start: 0, end: 9 } });
  assert.deepEqual(parseRange('bytes=10-', 100), { kind: 'partial', range: { start: 10, end: 99 } });
  assert.deepEqual(parseRange('bytes=-10', 100), { kind: 'partial', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRange('BYTES = 5 - 5', 100), { kind: 'partial', range: { start: 5, end: 5 } });
});

test('ranges past the end are clamped, a suffix longer than the content is all of it', () => {
  assert.deepEqual(parseRange('bytes=90-1000', 100), { kind: 'partial', range: { start: 90, end: 99 } });
  assert.deepEqual(parseRange('bytes=-1000', 100), { kind: 'partial', range: { start: 0, end: 99 } });
  assert.deepEqual(parseRange('bytes=0-99999999999999999999999', 100), { kind: 'partial', range: { start: 0, end: 99 } });
});

test('unsatisfiable: start at or past the end, zero suffix, empty content, reversed', () => {
  assert.deepEqual(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=100-200', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-5', 0), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=5-3', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=99999999999999999999-', 100), { kind: 'unsatisfiable' });
});

test('header values', () => {
  assert.equal(contentRange({ start: 2, end: 4 }, 11), 'bytes 2-4/11');
  assert.equal(unsatisfiedRange(11), 'bytes */11');
  assert.equal(etagOf('sha256:abc'), '"sha256:abc"');
});

test('If-None-Match: exact, list, weak, star', () => {
  const etag = etagOf('sha256:abc');
  assert.equal(noneMatchHit(undefined, etag), false);
  assert.equal(noneMatchHit(etag, etag), true);
  assert.equal(noneMatchHit(`"x", ${etag}`, etag), true);
  assert.equal(noneMatchHit(`W/${etag}`, etag), true);
  assert.equal(noneMatchHit('*', etag), true);
  assert.equal(noneMatchHit('"sha256:other"', etag), false);
});

test('If-Range honours only our strong ETag', () => {
  const etag = etagOf('sha256:abc');
  assert.equal(ifRangeAllows(undefined, etag), true);
  assert.equal(ifRangeAllows(etag, etag), true);
  assert.equal(ifRangeAllows(`W/${etag}`, etag), false);
  assert.equal(ifRangeAllows('Wed, 21 Oct 2015 07:28:00 GMT', etag), false);
});
