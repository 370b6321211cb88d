import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHasher } from './hash.ts';
import { encodeSummary } from './encode.ts';
import { decodeSummary } from './decode.ts';
import { SummaryError } from './errors.ts';
import { diffAnnotations, formatHeader, HEADER_ANNOTATION, parseHeader, shardAnnotation } from './annotations.ts';

const hasher = await createHasher();
const keys = Array.from({ length: 500 }, (_, i) => `sha256:${hasher.digest(`k${i}`).repeat(4)}`);
const good = encodeSummary(keys, { hasher, generation: 42 }).annotations;

function decodeError(annotations: Record<string, string>): SummaryError {
  try {
    decodeSummary(annotations);
  } catch (err) {
    assert.ok(err instanceof SummaryError, `expected SummaryError, got ${String(err)}`);
    return err;
  }
  assert.fail(`accepted ${JSON.stringify(annotations).slice(0, 200)}`);
}

test('round trip: header fields and every key', () => {
  const summary = decodeSummary(good)!;
  assert.deepEqual(summary.header, { version: 1, mode: 'gcs', shards: 8, keys: 500, generation: 42, rangePerKey: 104 });
  assert.equal(summary.decodedShards, 8);
  for (const key of keys) assert.ok(summary.has(hasher.hash(key)));
  assert.equal(parseHeader(formatHeader(summary.header)).generation, 42);
});

test('no header: no summary (a pod that has not published yet), not an error', () => {
  assert.equal(decodeSummary({}), undefined);
  assert.equal(decodeSummary(undefined), undefined);
  assert.equal(decodeSummary({ 'other/annotation': 'x', [shardAnnotation(0)]: 'AAAA' }), undefined);
});

test('clear errors for wrong version, bad header, absurd shard counts, bad base64, truncation and inconsistency', () => {
  const header = good[HEADER_ANNOTATION]!;
  const shard0 = good[shardAnnotation(0)]!;
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: header.replace('v=1', 'v=2') }).code, 'version');
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: 'garbage' }).code, 'header');
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: header.replace('s=8', 's=9999') }).code, 'limits');
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: header.replace('s=8', 's=0') }).code, 'limits');
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: header.replace('m=104', 'm=5000') }).code, 'limits');
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: header.replace('g=42', 'g=99999999999999999') }).code, 'header');
  assert.equal(decodeError({ ...good, [shardAnnotation(0)]: `${shard0.slice(0, 4)}!${shard0.slice(5)}` }).code, 'base64');
  assert.equal(decodeError({ ...good, [shardAnnotation(0)]: shard0.replace(/=+$/, '') + (shard0.endsWith('=') ? '' : 'A') }).code, 'base64');
  assert.equal(decodeError({ ...good, [shardAnnotation(0)]: shard0.slice(0, shard0.length - 8) }).code, 'shard');
  assert.equal(decodeError({ ...good, [shardAnnotation(0)]: '' }).code, 'shard');
  const missing: Record<string, string> = { ...good };
  delete missing[shardAnnotation(7)];
  assert.match(decodeError(missing).message, /missing annotation mirra\.dev\/shard-7/);
  assert.equal(decodeError({ ...good, [HEADER_ANNOTATION]: header.replace('n=500', 'n=501') }).code, 'inconsistent');
  const other = encodeSummary(keys, { hasher, rangePerKey: 52 }).annotations;
  assert.equal(decodeError({ ...good, [shardAnnotation(3)]: other[shardAnnotation(3)]! }).code, 'inconsistent');
  assert.equal(decodeError({ ...good, [shardAnnotation(1)]: 'A'.repeat(400 * 1024) }).code, 'limits');
});

test('decoding garbage never throws anything but SummaryError', () => {
  const base64ish = fc.stringMatching(/^[A-Za-z0-9+/=]{0,40}$/);
  const headers = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.constantFrom(good[HEADER_ANNOTATION]!, 'v=1;mode=gcs;s=1;n=0;g=0;m=2', 'v=1;mode=all;s=0;n=5;g=1;m=0'),
  );
  fc.assert(
    fc.property(
      headers,
      fc.array(fc.oneof(base64ish, fc.string({ maxLength: 20 }), fc.constantFrom(...Object.values(good))), { maxLength: 9 }),
      (header, shards) => {
        const annotations: Record<string, string> = { [HEADER_ANNOTATION]: header };
        shards.forEach((value, i) => (annotations[shardAnnotation(i)] = value));
        try {
          const summary = decodeSummary(annotations);
          if (summary !== undefined) summary.has(hasher.hash('probe'));
        } catch (err) {
          assert.ok(err instanceof SummaryError, String(err));
        }
      },
    ),
    { seed: 41, numRuns: 3000 },
  );
});

test('with the previous summary only changed shards are decoded', () => {
  const first = decodeSummary(good, { tag: hasher.digest })!;
  const same = decodeSummary(good, { previous: first, tag: hasher.digest })!;
  assert.equal(same.decodedShards, 0);
  assert.ok(same.filters.every((f, i) => f === first.filters[i]));
  const more = encodeSummary([...keys, 'docker.io/library/redis:8'], { hasher, generation: 43 }).annotations;
  const next = decodeSummary(more, { previous: same, tag: hasher.digest })!;
  assert.equal(next.decodedShards, 1);
  assert.equal(Object.keys(diffAnnotations(good, more)).length, 2);
  assert.ok(next.has(hasher.hash('docker.io/library/redis:8')));
  const resharded = decodeSummary(encodeSummary(keys, { hasher, shards: 4 }).annotations, { previous: next, tag: hasher.digest })!;
  assert.equal(resharded.decodedShards, 4);
});

test('diffAnnotations nulls summary annotations that are gone and leaves others alone', () => {
  const eight = encodeSummary(keys, { hasher, shards: 8 }).annotations;
  const four = encodeSummary(keys, { hasher, shards: 4 }).annotations;
  const patch = diffAnnotations({ ...eight, 'example.com/owner': 'team-a' }, four);
  for (let i = 4; i < 8; i++) assert.equal(patch[shardAnnotation(i)], null);
  assert.ok(!('example.com/owner' in patch));
  assert.deepEqual(diffAnnotations(four, four), {});
  assert.deepEqual(diffAnnotations(undefined, four), four);
});
