import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imageReference, isValidName, isValidTag, normalizeReference, parseImageReference } from './reference.ts';

test('normalizeReference completes short references like Docker does', () => {
  assert.equal(normalizeReference('nginx'), 'docker.io/library/nginx:latest');
  assert.equal(normalizeReference('nginx:1.27'), 'docker.io/library/nginx:1.27');
  assert.equal(normalizeReference('bitnami/redis:7'), 'docker.io/bitnami/redis:7');
  assert.equal(normalizeReference('ghcr.io/spegel-org/spegel'), 'ghcr.io/spegel-org/spegel:latest');
  assert.equal(normalizeReference('127.0.0.1:5000/team/app:v1'), '127.0.0.1:5000/team/app:v1');
  assert.equal(normalizeReference('localhost/app'), 'localhost/app:latest');
  assert.equal(normalizeReference('Bad Name'), undefined);
});

test('names, tags and references', () => {
  assert.ok(isValidName('library/nginx'));
  assert.ok(isValidName('a/b-c/d__e'));
  assert.ok(!isValidName('../etc'));
  assert.ok(!isValidName('Upper'));
  assert.ok(isValidTag('v1.2_3-rc'));
  assert.ok(!isValidTag('-v1'));
  assert.equal(imageReference('docker.io', 'library/x', 'v1'), 'docker.io/library/x:v1');
  assert.deepEqual(parseImageReference('docker.io/library/x:v1'), { registry: 'docker.io', name: 'library/x', tag: 'v1' });
  assert.equal(parseImageReference('nohost'), undefined);
});
