// The manifest body cache: bounded by body bytes, large bodies not kept,
// CLOCK eviction (a body used since the hand last passed gets a second chance).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createManifestCache, type VerifiedBody } from './manifest-cache.ts';

const body = (bytes: number, path = 'p'): VerifiedBody => ({ body: Buffer.alloc(bytes), path, seenAtMs: 0 });

it('keeps bodies within its budget, oldest unused out first', () => {
  const cache = createManifestCache(1600);
  for (const digest of ['a', 'b', 'c', 'd']) cache.put(digest, body(100));
  assert.equal(cache.bytes(), 400);
  assert.ok(cache.get('a') !== undefined, 'a is used: it gets a second chance');
  for (let i = 0; i < 13; i++) cache.put(`x${i}`, body(100));
  assert.ok(cache.bytes() <= 1600);
  assert.equal(cache.get('b'), undefined, 'b, old and unused, went first');
  assert.ok(cache.get('a') !== undefined);
});

it('does not keep a body over 1/16 of the budget', () => {
  const cache = createManifestCache(1600);
  cache.put('big', body(101));
  assert.equal(cache.get('big'), undefined);
  assert.equal(cache.bytes(), 0);
  const none = createManifestCache(0);
  none.put('a', body(1));
  assert.equal(none.get('a'), undefined, 'a budget of 0 keeps nothing');
});

it('replaces, deletes and retains by digest', () => {
  const cache = createManifestCache(1600);
  cache.put('a', body(10, 'one'));
  cache.put('a', body(20, 'two'));
  assert.equal(cache.get('a')?.path, 'two');
  assert.equal(cache.bytes(), 20);
  cache.put('b', body(30));
  cache.delete('a');
  assert.equal(cache.bytes(), 30);
  cache.put('c', body(40));
  cache.retain((digest) => digest === 'c');
  assert.equal(cache.get('b'), undefined);
  assert.equal(cache.bytes(), 40);
});
