import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHasher, jumpHash, keyHashOf } from './hash.ts';

/** The reference algorithm on BigInt, straight from the paper. */
function jumpReference(key: bigint, buckets: number): number {
  let b = -1n;
  let j = 0n;
  let k = key;
  while (j < BigInt(buckets)) {
    b = j;
    k = BigInt.asUintN(64, k * 2862933555777941757n + 1n);
    j = BigInt(Math.floor(Number(b + 1n) * (2147483648 / Number((k >> 33n) + 1n))));
  }
  return Number(b);
}

function split(key: bigint): [number, number] {
  return [Number(key >> 32n), Number(key & 0xffffffffn)];
}

test('jumpHash matches the published test vectors', () => {
  const vectors: Array<[bigint, number, number]> = [
    [1n, 1, 0],
    [42n, 57, 43],
    [0xdead10ccn, 1, 0],
    [0xdead10ccn, 666, 361],
    [256n, 1024, 520],
    [1n, 128, 55],
    [129n, 128, 120],
    [128n, 100000000, 38172097],
    [18446744073709551615n, 128, 92],
  ];
  for (const [key, buckets, expected] of vectors) {
    const [hi, lo] = split(key);
    assert.equal(jumpHash(hi, lo, buckets), expected, `jump(${key}, ${buckets})`);
  }
});

test('jumpHash equals the BigInt reference on random keys', () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 1, max: 5000 }), (key, buckets) => {
      const [hi, lo] = split(key);
      assert.equal(jumpHash(hi, lo, buckets), jumpReference(key, buckets));
    }),
    { seed: 42, numRuns: 2000 },
  );
});

test('jumpHash moves only ~1/(S+1) of the keys when a bucket is added', async () => {
  const hasher = await createHasher();
  let moved = 0;
  const total = 20000;
  for (let i = 0; i < total; i++) {
    const h = hasher.hash(`sha256:${i}`);
    const before = jumpHash(h.hi, h.lo, 8);
    const after = jumpHash(h.hi, h.lo, 9);
    if (before !== after) {
      moved++;
      assert.equal(after, 8, 'a key only ever moves to the new bucket');
    }
  }
  assert.ok(Math.abs(moved / total - 1 / 9) < 0.01, `moved ${moved}`);
});

test('xxh64 agrees with the reference value and splits into halves', async () => {
  const hasher = await createHasher();
  // xxh64("", seed 0) = ef46db3751d8e999 (the published empty-input vector).
  const h = hasher.hash('');
  assert.equal(h.hi, 0xef46db37);
  assert.equal(h.lo, 0x51d8e999);
  assert.deepEqual(h, keyHashOf(0xef46db37, 0x51d8e999));
  assert.equal(hasher.digest(''), 'ef46db3751d8e999');
});
