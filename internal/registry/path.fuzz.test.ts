// Property tests of the OCI path parser (path.ts) on its own: it agrees with
// the oracle (tests/support/fuzz/registry-oracle.ts) on every target, parses
// valid names, tags and digests in any percent-encoding, never throws, and
// what it accepts is free of traversal. Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { validDigestArb, validNameArb, validTagArb } from '../../tests/support/fuzz/oci-arbitraries.ts';
import { parseDigest } from '../oci/digest.ts';
import { anyTargetArb, buildTarget, segmentEncodingArb } from '../../tests/support/fuzz/registry-arbitraries.ts';
import { readRequest } from '../../tests/support/fuzz/registry-oracle.ts';
import { clip, parseRegistryPath, pathOf, registryOf } from './path.ts';

const KNOWN = { digests: [`sha256:${'ab'.repeat(32)}`], tags: [['library/nginx', 'v1'] as const] };
const anyTarget = fc.oneof(
  anyTargetArb(KNOWN),
  fc.string({ unit: 'binary', maxLength: 300 }).map((rest) => `/v2/${rest}`),
  fc.string({ unit: 'binary' }),
);

test('parseRegistryPath agrees with the oracle on any target and never throws', async (t) => {
  await checkProperty(
    t,
    fc.property(anyTarget, (target) => {
      const parsed = parseRegistryPath(target);
      const path = pathOf(target);
      if (path === '/v2' || path === '/v2/') {
        assert.deepEqual(parsed, { kind: 'base' });
        return;
      }
      const expected = readRequest(path);
      const where = JSON.stringify(target.slice(0, 300));
      if (expected.kind === 'unknown' || expected.kind === 'invalid') {
        assert.equal(parsed.kind, expected.kind, where);
        if (parsed.kind === 'invalid' && expected.kind === 'invalid') assert.equal(parsed.error.code, expected.code, where);
        return;
      }
      if (expected.kind === 'blob') assert.deepEqual(parsed, { kind: 'blob', name: expected.name, digest: expected.reference }, where);
      else assert.deepEqual(parsed, { kind: 'manifest', name: expected.name, reference: expected.reference, byDigest: expected.byDigest }, where);
    }),
    3000,
  );
});

test('valid names with digests and tags parse back exactly, in any percent-encoding', async (t) => {
  const input = fc.record({
    name: validNameArb(),
    ref: fc.oneof(
      validDigestArb().map((d): [string, string] => ['blobs', d]),
      validDigestArb().map((d): [string, string] => ['manifests', d]),
      validTagArb().map((tag): [string, string] => ['manifests', tag]),
    ),
    encoding: segmentEncodingArb,
    query: fc.constantFrom('', '?ns=docker.io', '?'),
  });
  await checkProperty(
    t,
    fc.property(input, ({ name, ref: [endpoint, reference], encoding, query }) => {
      const target = buildTarget({ names: name.split('/'), endpoint, reference, query, encoding });
      const parsed = parseRegistryPath(target);
      if (endpoint === 'blobs') assert.deepEqual(parsed, { kind: 'blob', name, digest: reference }, target);
      else assert.deepEqual(parsed, { kind: 'manifest', name, reference, byDigest: reference.includes(':') }, target);
    }),
    2000,
  );
});

test('whatever parseRegistryPath accepts is free of traversal; error details are clipped', async (t) => {
  await checkProperty(
    t,
    fc.property(anyTarget, (target) => {
      const parsed = parseRegistryPath(target);
      if (parsed.kind === 'invalid') {
        const detail = JSON.stringify(parsed.error.detail);
        assert.ok(detail.length < 256 * 6 + 200, `detail of ${detail.length} chars`);
        return;
      }
      if (parsed.kind !== 'blob' && parsed.kind !== 'manifest') return;
      const where = JSON.stringify(target.slice(0, 300));
      assert.ok(!parsed.name.startsWith('/') && !/[\\\0%]/.test(parsed.name), where);
      for (const component of parsed.name.split('/')) assert.ok(component !== '' && component !== '.' && component !== '..', where);
      const reference = parsed.kind === 'blob' ? parsed.digest : parsed.reference;
      assert.ok(!/[/\\\0%]/.test(reference) && reference !== '..' && reference !== '.', where);
      if (parsed.kind === 'blob' || parsed.byDigest) assert.ok(parseDigest(reference) !== undefined, where);
    }),
    3000,
  );
});

test('registryOf: undefined or a lower-case host[:port] for any query; clip bounds any string', async (t) => {
  const query = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 100 }).map((value) => `ns=${value}`),
    fc.string({ unit: fc.constantFrom(...'ns=&%2e./:ABCab019-_?#'), maxLength: 40 }),
  );
  await checkProperty(
    t,
    fc.property(query, fc.nat(400), (q, max) => {
      const registry = registryOf(`/v2/a/blobs/x?${q}`, 'docker.io');
      if (registry !== undefined) {
        assert.match(registry, /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?$/, q);
        assert.ok(registry.length <= 255);
      }
      const clipped = clip(q, max);
      assert.ok(clipped.length <= max + 3 && q.startsWith(clipped.slice(0, Math.min(max, q.length))));
    }),
    2000,
  );
});
