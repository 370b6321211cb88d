import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { reduceRange } from './hash.ts';
import { bucketShift, buildShardFilter, filterHas, wordHas, wordHas7 } from './shard-filter.ts';
import { createOrderScratch, orderCandidates } from './order.ts';

test('filterHas answers exactly "reduceRange(x) is one of the values" for every m, including overflow buckets', () => {
  const arb = fc.record({
    m: fc.integer({ min: 2, max: 1024 }),
    n: fc.integer({ min: 0, max: 400 }),
    clustered: fc.boolean(),
    seed: fc.nat(),
  });
  fc.assert(
    fc.property(arb, ({ m, n, clustered, seed }) => {
      const range = n * m;
      let s = seed;
      const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
      // Clustered: many values in few buckets, to exercise the overflow lists.
      const values = Uint32Array.from({ length: n }, () => (clustered ? next() % Math.min(range, 300) : next() % range)).sort();
      const filter = buildShardFilter(values, range, m);
      const set = new Set(values);
      for (const v of values) {
        const x = Math.ceil((v * 4294967296) / range); // smallest x that reduces to v
        assert.equal(reduceRange(x, range), v);
        assert.ok(filterHas(filter, x), `value ${v} of ${n} (m=${m}) not found`);
      }
      for (let i = 0; i < 200; i++) {
        const x = next();
        assert.equal(filterHas(filter, x), range > 0 && set.has(reduceRange(x, range)));
      }
    }),
    { seed: 21, numRuns: 400 },
  );
});

test('bucketShift gives 1 to 2 values per bucket below m = 128 and 128-wide buckets above', () => {
  assert.equal(bucketShift(104), 7);
  assert.equal(bucketShift(1024), 7);
  assert.equal(bucketShift(52), 6);
  assert.equal(bucketShift(2), 1);
  assert.equal(bucketShift(3), 2);
});

test('wordHas (SWAR) equals a plain loop over the word fields', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 7 }), fc.nat(), fc.nat(), (shift, bits, lowSeed) => {
      const capacity = Math.min(6, Math.floor(29 / shift));
      const count = bits % (capacity + 1);
      const mask = 2 ** shift - 1;
      const fields = Array.from({ length: count }, (_, j) => Math.floor(bits / 2 ** (j * 3)) & mask);
      let word = count;
      fields.forEach((f, j) => (word += f * 2 ** (3 + j * shift)));
      const low = lowSeed & mask;
      const expected = fields.includes(low) ? 1 : 0;
      assert.equal(wordHas(word, low, shift), expected);
      if (shift === 7) assert.equal(wordHas7(word, low), expected);
    }),
    { seed: 22, numRuns: 5000 },
  );
});

test('orderCandidates equals a reference sort (tier ascending, weight descending), with and without limit', () => {
  const scratch = createOrderScratch(4);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(0xffffffff)), { maxLength: 700 }), fc.nat(30), (rows, limitSeed) => {
      const tiers = Uint8Array.from(rows.map((r) => r[0]));
      const weights = Uint32Array.from(rows.map((r) => r[1]));
      const reference = rows.map((_, i) => i).sort((a, b) => tiers[a]! - tiers[b]! || weights[b]! - weights[a]! || a - b);
      const key = (i: number): string => `${tiers[i]}:${weights[i]}`;
      const full = orderCandidates(rows.length, { tiers, weights }, scratch);
      assert.deepEqual(Array.from(full.subarray(0, rows.length), key), reference.map(key));
      const limit = Math.min(limitSeed, rows.length);
      const top = orderCandidates(rows.length, { tiers, weights }, scratch, limit);
      assert.deepEqual(Array.from(top.subarray(0, limit), key), reference.slice(0, limit).map(key));
    }),
    { seed: 24, numRuns: 300 },
  );
});
