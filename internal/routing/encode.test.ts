import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHasher, jumpHash } from './hash.ts';
import { encodeSummary, type DegradeEvent } from './encode.ts';
import { decodeSummary } from './decode.ts';
import { annotationBytes, DEFAULT_SHARDS, diffAnnotations, HARD_CAP_BYTES, HEADER_ANNOTATION, shardAnnotation } from './annotations.ts';

const hasher = await createHasher();
const digestKey = fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => `sha256:${hex}`);
const referenceKey = fc.tuple(fc.stringMatching(/^[a-z0-9]{1,12}$/), fc.stringMatching(/^[a-z0-9.]{1,8}$/)).map(([n, t]) => `docker.io/library/${n}:${t}`);
const keySet = fc.uniqueArray(fc.oneof(digestKey, referenceKey), { maxLength: 400 });
const bigKeys = (n: number, salt: string): string[] => Array.from({ length: n }, (_, i) => `sha256:${hasher.digest(`${salt}${i}`).repeat(4)}`);

test('no false negatives, ever: every encoded key is claimed after decoding (incl. 0 and 1 keys)', () => {
  fc.assert(
    fc.property(keySet, fc.integer({ min: 1, max: 32 }), (keys, shards) => {
      const { annotations, stats } = encodeSummary(keys, { hasher, shards, generation: 3 });
      assert.equal(stats.keys, keys.length);
      const summary = decodeSummary(annotations)!;
      assert.equal(summary.header.keys, keys.length);
      for (const key of keys) assert.ok(summary.has(hasher.hash(key)), key);
    }),
    { seed: 31, numRuns: 150 },
  );
  const empty = decodeSummary(encodeSummary([], { hasher }).annotations)!;
  assert.equal(empty.has(hasher.hash('sha256:x')), false);
  const one = decodeSummary(encodeSummary(['docker.io/library/nginx:1.27'], { hasher }).annotations)!;
  assert.ok(one.has(hasher.hash('docker.io/library/nginx:1.27')));
});

test('the measured false-positive rate at the defaults is under 1% and bytes/key under 1.5 from 2,000 keys', () => {
  for (const n of [2000, 20000]) {
    const { annotations, stats } = encodeSummary(bigKeys(n, 'member'), { hasher, generation: 123456 });
    assert.ok(stats.bytesPerKey <= 1.5, `${n} keys: ${stats.bytesPerKey} bytes/key`);
    assert.equal(stats.bytes, annotationBytes(annotations));
    const summary = decodeSummary(annotations)!;
    let falsePositives = 0;
    const probes = 200000;
    for (let i = 0; i < probes; i++) if (summary.has(hasher.hash(`docker.io/probe/${i}:latest`))) falsePositives++;
    const rate = falsePositives / probes;
    assert.ok(rate < 0.01 && rate > 0.005, `${n} keys: false-positive rate ${rate}`);
  }
});

test('encoding is deterministic: same keys in any order and with duplicates give the same annotations', () => {
  fc.assert(
    fc.property(keySet, fc.nat(), (keys, seed) => {
      const shuffled = [...keys, ...keys.slice(0, 3)].sort((a, b) => hasher.hash(a + seed).lo - hasher.hash(b + seed).lo);
      assert.deepEqual(encodeSummary(shuffled, { hasher, generation: 9 }).annotations, encodeSummary(keys, { hasher, generation: 9 }).annotations);
    }),
    { seed: 32, numRuns: 100 },
  );
});

test('adding one key changes exactly one shard annotation plus the header', () => {
  fc.assert(
    fc.property(fc.uniqueArray(digestKey, { minLength: 1, maxLength: 300 }), (keys) => {
      const [added, ...rest] = keys as [string, ...string[]];
      const before = encodeSummary(rest, { hasher, generation: 1 }).annotations;
      const after = encodeSummary(keys, { hasher, generation: 2 }).annotations;
      const patch = diffAnnotations(before, after);
      const h = hasher.hash(added);
      assert.deepEqual(Object.keys(patch).sort(), [HEADER_ANNOTATION, shardAnnotation(jumpHash(h.hi, h.lo, DEFAULT_SHARDS))].sort());
    }),
    { seed: 33, numRuns: 100 },
  );
});

test('annotation names are valid Kubernetes qualified names', () => {
  const { annotations } = encodeSummary(['a'], { hasher, shards: 256 });
  const name = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  for (const key of Object.keys(annotations)) {
    const [prefix, local] = key.split('/') as [string, string];
    assert.match(prefix, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
    assert.ok(local.length <= 63 && name.test(local), key);
  }
  assert.equal(Object.keys(annotations).length, 257);
  assert.ok(shardAnnotation(255) in annotations);
});

test('over budget it degrades to fewer bits, reports it, keeps no false negatives and never exceeds the budget', () => {
  const keys = bigKeys(6000, 'budget');
  const events: DegradeEvent[] = [];
  const { annotations, stats } = encodeSummary(keys, { hasher, budgetBytes: 5000, onDegrade: (e) => events.push(e) });
  assert.ok(stats.degraded && !stats.saturated);
  assert.ok(stats.bytes <= 5000 && annotationBytes(annotations) === stats.bytes);
  assert.ok(stats.rangePerKey < 104 && stats.fpRate > 0.01);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.rangePerKey, stats.rangePerKey);
  const summary = decodeSummary(annotations)!;
  for (const key of keys) assert.ok(summary.has(hasher.hash(key)));
});

test('when even the smallest filter does not fit, the summary is saturated: it claims everything', () => {
  const events: DegradeEvent[] = [];
  const { annotations, stats } = encodeSummary(bigKeys(3000, 'sat'), { hasher, budgetBytes: 600, onDegrade: (e) => events.push(e) });
  assert.ok(stats.saturated && stats.degraded);
  assert.deepEqual(Object.keys(annotations), [HEADER_ANNOTATION]);
  assert.ok(stats.bytes < 100);
  assert.equal(events[0]?.saturated, true);
  assert.ok(decodeSummary(annotations)!.has(hasher.hash('anything at all')));
});

test('the budget is clamped to the hard cap below the API limit', () => {
  // m = 1024 costs ~1.9 bytes/key: 140,000 keys would need ~260 KiB without the cap.
  const { stats } = encodeSummary(bigKeys(140000, 'cap'), { hasher, rangePerKey: 1024, budgetBytes: 10 * 1024 * 1024 });
  assert.ok(stats.degraded && stats.bytes <= HARD_CAP_BYTES, `${stats.bytes} bytes`);
});

test('bad options are programming errors (RangeError)', () => {
  assert.throws(() => encodeSummary([], { hasher, shards: 0 }), RangeError);
  assert.throws(() => encodeSummary([], { hasher, shards: 257 }), RangeError);
  assert.throws(() => encodeSummary([], { hasher, rangePerKey: 1 }), RangeError);
  assert.throws(() => encodeSummary([], { hasher, generation: -1 }), RangeError);
});
