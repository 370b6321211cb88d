import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bestRice, decodeShard, encodeShard, riceChoices } from './gcs.ts';
import { SummaryError } from './errors.ts';

const sortedValues = (m: number) =>
  fc.array(fc.nat(), { maxLength: 300 }).map((seeds) => {
    const range = seeds.length * m;
    return Uint32Array.from(seeds.map((s) => s % Math.max(range, 1))).sort();
  });

test('encodeShard/decodeShard round-trip any sorted values, with every allowed Rice parameter', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 1024 }).chain((m) => fc.tuple(fc.constant(m), sortedValues(m))),
      ([m, values]) => {
        for (const k of riceChoices(m)) {
          const decoded = decodeShard(encodeShard({ m, k, values }));
          assert.equal(decoded.m, m);
          assert.equal(decoded.k, k);
          assert.deepEqual(decoded.values, values);
        }
      },
    ),
    { seed: 11, numRuns: 300 },
  );
});

test('bestRice picks the smallest encoding and reports its exact size', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 300 }).chain((m) => fc.tuple(fc.constant(m), sortedValues(m))),
      ([m, values]) => {
        const best = bestRice(values, m);
        assert.equal(encodeShard({ m, k: best.k, values }).length, best.bytes);
        for (const k of riceChoices(m)) assert.ok(encodeShard({ m, k, values }).length >= best.bytes);
      },
    ),
    { seed: 12, numRuns: 200 },
  );
});

test('riceChoices keeps 2^k <= m <= 2^(k+2)', () => {
  assert.deepEqual(riceChoices(104), [5, 6]);
  assert.deepEqual(riceChoices(2), [0, 1]);
  assert.deepEqual(riceChoices(128), [5, 6, 7]);
});

function decodeError(bytes: Uint8Array): SummaryError {
  try {
    decodeShard(bytes);
  } catch (err) {
    assert.ok(err instanceof SummaryError, `expected SummaryError, got ${String(err)}`);
    return err;
  }
  assert.fail('decodeShard accepted invalid input');
}

test('decodeShard rejects truncation, trailing bytes, bad padding and bad parameters', () => {
  // n = 3, m = 104: gaps 5, 95, 200 -> 3 x 7 + 4 = 25 bits, so 7 bits of padding.
  const good = encodeShard({ m: 104, k: 6, values: Uint32Array.from([5, 100, 300]) });
  assert.equal(good.length, 3 + 4);
  assert.match(decodeError(good.subarray(0, good.length - 1)).message, /truncated/);
  assert.match(decodeError(Uint8Array.from([...good, 0])).message, /trailing/);
  const badPadding = good.slice();
  badPadding[badPadding.length - 1]! |= 1;
  assert.ok(decodeError(badPadding));
  assert.match(decodeError(Uint8Array.from([1, 0, 0])).message, /range per key 1/);
  assert.match(decodeError(Uint8Array.from([104, 2, 0])).message, /Rice parameter 2/);
  assert.match(decodeError(Uint8Array.from([])).message, /varint/);
  assert.match(decodeError(Uint8Array.from([0x80, 0x00, 6, 0])).message, /non-canonical/);
});

test('decodeShard refuses key counts the input cannot hold, before allocating', () => {
  // m = 104, k = 6, n = 2^31 - 1 keys in 5 bytes: must fail on size, not allocate 8 GiB.
  assert.match(decodeError(Uint8Array.from([104, 6, 0xff, 0xff, 0xff, 0xff, 0x07])).message, /truncated shard/);
  assert.match(decodeError(Uint8Array.from([104, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).message, /varint/);
});

test('decodeShard only ever throws SummaryError on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 2, max: 1024 }), (tail, m) => {
      for (const bytes of [tail, Uint8Array.from([m & 127 || 2, 6, ...tail])]) {
        try {
          const code = decodeShard(bytes);
          assert.ok(code.values.length <= bytes.length * 8);
        } catch (err) {
          assert.ok(err instanceof SummaryError, String(err));
        }
      }
    }),
    { seed: 13, numRuns: 3000 },
  );
});
