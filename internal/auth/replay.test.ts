import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createReplayCache } from './replay.ts';

test('a nonce is fresh once, replayed until it expires, then forgotten', () => {
  let now = 10_000;
  const cache = createReplayCache({ nowMs: () => now });
  assert.equal(cache.check('n1', 12_500), 'fresh');
  assert.equal(cache.check('n1', 12_500), 'replayed');
  now = 12_999;
  assert.equal(cache.check('n1', 12_500), 'replayed', 'kept to the end of its expiry second at least');
  now = 13_000;
  assert.equal(cache.size(), 0);
  assert.equal(cache.check('n1', 40_000), 'fresh');
});

test('entries never outnumber maxEntries: full means refused, not evicted', () => {
  let now = 0;
  const cache = createReplayCache({ maxEntries: 1000, nowMs: () => now });
  for (let i = 0; i < 1000; i++) assert.equal(cache.check(`n${i}`, 60_000 + (i % 60) * 1000), 'fresh');
  assert.equal(cache.check('one-more', 60_000), 'full');
  assert.equal(cache.check('n0', 60_000), 'replayed');
  assert.equal(cache.size(), 1000);
  now = 90_000; // the ones expiring before 90 s are gone
  const left = Array.from({ length: 1000 }, (_, i) => i).filter((i) => 60_000 + (i % 60) * 1000 >= 90_000).length;
  assert.equal(cache.size(), left);
  assert.equal(cache.check('one-more', 60_000 + 30_000), 'fresh', 'room again');
});

test('expiry is by time, whatever the insertion order', () => {
  let now = 0;
  const cache = createReplayCache({ nowMs: () => now });
  cache.check('late', 50_000);
  cache.check('early', 20_000);
  cache.check('middle', 35_000);
  now = 21_000;
  assert.equal(cache.size(), 2);
  assert.equal(cache.check('early', 20_000), 'fresh', 'expired ones are forgotten');
  assert.equal(cache.check('late', 50_000), 'replayed');
  now = 36_000;
  assert.equal(cache.check('middle', 35_000), 'fresh');
  assert.equal(cache.check('late', 50_000), 'replayed');
});
