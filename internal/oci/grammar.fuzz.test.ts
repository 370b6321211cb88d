// Property tests of the OCI grammars (digest.ts, reference.ts): what the
// spec's grammar generates is accepted, mutations outside it are rejected,
// and nothing throws on any input. Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { invalidDigestArb, invalidNameArb, invalidTagArb, validDigestArb, validNameArb, validTagArb } from '../../tests/support/fuzz/oci-arbitraries.ts';
import { isDigest, parseDigest } from './digest.ts';
import { isValidName, isValidTag } from './reference.ts';

/** The spec's digest grammar, restricted to the algorithms supported here: the oracle for arbitrary strings. */
const SUPPORTED_DIGEST = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.string({ unit: fc.constantFrom(...'sha256:0123456789abcdefABCDEF./%\\'), maxLength: 140 }),
);

test('parseDigest accepts every supported digest and returns its parts', async (t) => {
  await checkProperty(
    t,
    fc.property(validDigestArb(), (digest) => {
      const parsed = parseDigest(digest);
      assert.ok(parsed !== undefined, digest);
      assert.equal(`${parsed.algorithm}:${parsed.hex}`, digest);
      assert.match(parsed.hex, /^[a-f0-9]+$/);
    }),
    500,
  );
});

test('parseDigest rejects digests outside the grammar: algorithms, lengths, case, traversal, unicode, NUL', async (t) => {
  await checkProperty(
    t,
    fc.property(invalidDigestArb(), (digest) => {
      assert.equal(parseDigest(digest), undefined, JSON.stringify(digest));
      assert.equal(isDigest(digest), false);
    }),
    1000,
  );
});

test('parseDigest on any string: never throws, accepts exactly the grammar, and a parsed hex is path-safe', async (t) => {
  await checkProperty(
    t,
    fc.property(anyString, (value) => {
      const parsed = parseDigest(value);
      assert.equal(parsed !== undefined, SUPPORTED_DIGEST.test(value), JSON.stringify(value));
      if (parsed !== undefined) assert.ok(!/[./\\\0]/.test(parsed.hex));
    }),
    1000,
  );
});

test('names from the spec grammar are valid, mutations outside it are not', async (t) => {
  await checkProperty(
    t,
    fc.property(validNameArb(), invalidNameArb(), (good, bad) => {
      assert.ok(isValidName(good), JSON.stringify(good));
      assert.ok(!isValidName(bad), JSON.stringify(bad));
    }),
    1000,
  );
});

test('a valid name has no empty, `.` or `..` component and no leading `/`', async (t) => {
  await checkProperty(
    t,
    fc.property(fc.oneof(validNameArb(), invalidNameArb(), anyString), (name) => {
      if (!isValidName(name)) return;
      assert.ok(name.length <= 255);
      for (const component of name.split('/')) {
        assert.ok(component !== '' && component !== '.' && component !== '..', JSON.stringify(name));
      }
    }),
    1000,
  );
});

test('tags from the spec grammar are valid, mutations outside it are not', async (t) => {
  await checkProperty(
    t,
    fc.property(validTagArb(), invalidTagArb(), (good, bad) => {
      assert.ok(isValidTag(good), JSON.stringify(good));
      assert.ok(!isValidTag(bad), JSON.stringify(bad));
    }),
    1000,
  );
});
