import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clip, parseRegistryPath, pathOf, registryOf } from './path.ts';

const DIGEST = `sha256:${'0'.repeat(64)}`;

function codeOf(url: string): string {
  const parsed = parseRegistryPath(url);
  assert.equal(parsed.kind, 'invalid', url);
  return parsed.kind === 'invalid' ? parsed.error.code : '';
}

test('base', () => {
  assert.deepEqual(parseRegistryPath('/v2/'), { kind: 'base' });
  assert.deepEqual(parseRegistryPath('/v2'), { kind: 'base' });
  assert.deepEqual(parseRegistryPath('/v2/?ns=docker.io'), { kind: 'base' });
});

test('manifests by tag and by digest, multi-component names', () => {
  assert.deepEqual(parseRegistryPath('/v2/library/nginx/manifests/1.27?ns=docker.io'), {
    kind: 'manifest',
    name: 'library/nginx',
    reference: '1.27',
    byDigest: false,
  });
  assert.deepEqual(parseRegistryPath(`/v2/a/b/c/manifests/${DIGEST}`), {
    kind: 'manifest',
    name: 'a/b/c',
    reference: DIGEST,
    byDigest: true,
  });
  assert.deepEqual(parseRegistryPath('/v2/x/manifests/manifests/manifests/v1'), {
    kind: 'manifest',
    name: 'x/manifests/manifests',
    reference: 'v1',
    byDigest: false,
  });
  assert.deepEqual(parseRegistryPath('/v2/nginx/manifests/latest'), {
    kind: 'manifest',
    name: 'nginx',
    reference: 'latest',
    byDigest: false,
  });
});

test('blobs', () => {
  assert.deepEqual(parseRegistryPath(`/v2/library/nginx/blobs/${DIGEST}`), { kind: 'blob', name: 'library/nginx', digest: DIGEST });
  assert.deepEqual(parseRegistryPath(`/v2/library/nginx/blobs/sha256%3A${'0'.repeat(64)}`), {
    kind: 'blob',
    name: 'library/nginx',
    digest: DIGEST,
  });
});

test('other endpoints are unknown', () => {
  for (const url of ['/', '/v1/x', '/v2/_catalog', '/v2/x/tags/list', '/v2/x/blobs/uploads/', '/v2/manifests/x', '/v2x/a/manifests/b']) {
    assert.deepEqual(parseRegistryPath(url), { kind: 'unknown' }, url);
  }
});

test('invalid names', () => {
  for (const url of [
    '/v2/Library/nginx/manifests/v1',
    '/v2/../etc/manifests/v1',
    '/v2/a/../b/manifests/v1',
    '/v2/%2e%2e/etc/manifests/v1',
    '/v2//etc/passwd/manifests/v1',
    '/v2/a//b/manifests/v1',
    '/v2/./a/manifests/v1',
    '/v2/a%2F..%2Fb/manifests/v1',
    `/v2/${'a'.repeat(256)}/manifests/v1`,
    '/v2/a-/manifests/v1',
    '/v2/%zz/manifests/v1',
    '/v2/a%00/blobs/' + DIGEST,
    '/v2/a/b/ /manifests/v1',
  ]) {
    assert.equal(codeOf(url), 'NAME_INVALID', url);
  }
});

test('invalid tags and digests', () => {
  for (const url of ['/v2/a/manifests/-v1', '/v2/a/manifests/', `/v2/a/manifests/${'t'.repeat(129)}`, '/v2/a/manifests/..', '/v2/a/manifests/%2e%2e']) {
    assert.equal(codeOf(url), 'TAG_INVALID', url);
  }
  for (const url of [
    '/v2/a/blobs/sha256:abc',
    '/v2/a/blobs/latest',
    `/v2/a/blobs/md5:${'0'.repeat(32)}`,
    `/v2/a/blobs/sha256:${'A'.repeat(64)}`,
    '/v2/a/manifests/sha256:xyz',
    '/v2/a/blobs/',
    `/v2/a/blobs/sha256:${'0'.repeat(64)}%2F..`,
  ]) {
    assert.equal(codeOf(url), 'DIGEST_INVALID', url);
  }
});

test('registryOf: ns parameter, default, invalid', () => {
  assert.equal(registryOf('/v2/a/manifests/v1', 'docker.io'), 'docker.io');
  assert.equal(registryOf('/v2/a/manifests/v1?x=1', 'docker.io'), 'docker.io');
  assert.equal(registryOf('/v2/a/manifests/v1?ns=ghcr.io', 'docker.io'), 'ghcr.io');
  assert.equal(registryOf('/v2/a/manifests/v1?ns=Registry.Local:5000', 'docker.io'), 'registry.local:5000');
  assert.equal(registryOf('/v2/a/manifests/v1?ns=a/b', 'docker.io'), undefined);
  assert.equal(registryOf('/v2/a/manifests/v1?ns=', 'docker.io'), undefined);
  assert.equal(registryOf('/v2/a/manifests/v1?ns=%zz', 'docker.io'), undefined);
});

test('pathOf and clip', () => {
  assert.equal(pathOf('/v2/?ns=x'), '/v2/');
  assert.equal(pathOf('/v2/'), '/v2/');
  assert.equal(clip('abcdef', 3), 'abc...');
  assert.equal(clip('abc', 3), 'abc');
});
