import { test } from 'node:test';
import assert from 'node:assert/strict';
import { annotationCauses, isQualifiedName, metadataCauses, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES } from './validation.ts';

test('qualified names: optional DNS subdomain prefix, name part of at most 63 characters', () => {
  for (const ok of ['a', 'mirra.dev/shard-0', 'A_b.c-D', 'x'.repeat(63), `${'a'.repeat(63)}.example.com/x`, '0']) {
    assert.equal(isQualifiedName(ok), true, ok);
  }
  for (const bad of ['', '-a', 'a-', 'a b', 'x'.repeat(64), '/a', 'a/', 'a/b/c', 'Upper.Case/x', 'a_b.com/x', `${'a'.repeat(254)}/x`, 'é']) {
    assert.equal(isQualifiedName(bad), false, bad);
  }
});

test('annotation keys are checked lower-cased, values are free', () => {
  assert.deepEqual(annotationCauses({ 'Mirra.Dev/Shard': 'any value at all: ✓' }), []);
  const causes = annotationCauses({ 'bad key': 'v' });
  assert.equal(causes.length, 1);
  assert.equal(causes[0]?.field, 'metadata.annotations');
  assert.equal(causes[0]?.reason, 'FieldValueInvalid');
  assert.match(causes[0]?.message ?? '', /^Invalid value: "bad key": name part must consist of alphanumeric characters/);
});

test('all annotations of an object: at most 262144 bytes of keys and values', () => {
  const key = 'mirra.dev/blob';
  const exact = { [key]: 'x'.repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - key.length) };
  assert.deepEqual(annotationCauses(exact), []);
  const over = { [key]: 'x'.repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - key.length + 1) };
  assert.deepEqual(annotationCauses(over), [
    { reason: 'FieldValueTooLong', message: 'Too long: may not be more than 262144 bytes', field: 'metadata.annotations' },
  ]);
  // Bytes, not characters: 'é' is two bytes in UTF-8.
  const multiByte = { a: 'é'.repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES / 2) };
  assert.equal(annotationCauses(multiByte).length, 1);
});

test('metadata: name required and a DNS subdomain, label values checked', () => {
  assert.deepEqual(metadataCauses({ name: 'p1', labels: { app: 'mirra' } }), []);
  assert.equal(metadataCauses({})[0]?.message, 'Required value: name or generateName is required');
  assert.equal(metadataCauses({ name: 'Bad_Name' })[0]?.field, 'metadata.name');
  assert.equal(metadataCauses({ name: 'p', labels: { app: 'has space' } })[0]?.field, 'metadata.labels');
  assert.equal(metadataCauses({ name: 'p', annotations: { a: 1 } })[0]?.field, 'metadata.annotations');
});
