import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKeyTable } from './key-table.ts';

const sorted = (keys: ReadonlySet<string> | undefined): string[] => [...(keys ?? [])].sort();

test('names and reference-counted digests; commit reports real changes only', () => {
  const table = createKeyTable();
  assert.equal(table.commit(), undefined, 'nothing touched');
  table.setImage('docker.io/a:v1', ['sha256:1', 'sha256:2']);
  table.setImage('docker.io/b:v1', ['sha256:2', 'sha256:3']);
  assert.deepEqual(sorted(table.commit()), ['docker.io/a:v1', 'docker.io/b:v1', 'sha256:1', 'sha256:2', 'sha256:3']);
  const before = table.keys();
  table.setImage('docker.io/a:v1', ['sha256:2', 'sha256:1']);
  assert.equal(table.commit(), undefined, 'same content again: no change');
  assert.equal(table.keys(), before, 'the same object until a change');
  table.deleteImage('docker.io/a:v1');
  assert.deepEqual(sorted(table.commit()), ['docker.io/b:v1', 'sha256:2', 'sha256:3'], 'sha256:2 stays: b still has it');
  assert.deepEqual(table.dropDigest('sha256:3'), ['docker.io/b:v1']);
  assert.deepEqual(table.dropDigest('sha256:9'), []);
  assert.deepEqual(sorted(table.commit()), ['docker.io/b:v1', 'sha256:2']);
  table.replaceAll(new Map([['docker.io/c:v1', ['sha256:4']]]));
  assert.deepEqual(sorted(table.commit()), ['docker.io/c:v1', 'sha256:4']);
  table.deleteImage('docker.io/c:v1');
  assert.deepEqual(sorted(table.commit()), []);
});
