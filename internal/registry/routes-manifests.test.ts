import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { MAX_MANIFEST_BYTES } from '../oci/limits.ts';
import { MediaType } from '../oci/mediatype.ts';
import type { WholeReadableStore } from '../content/source.ts';
import type { ContentStore } from '../oci/store.ts';
import { createTestApp, sampleManifest } from '../../tests/support/registry/testkit.ts';

function errorCode(body: string): unknown {
  const parsed: unknown = JSON.parse(body);
  assert.ok(typeof parsed === 'object' && parsed !== null && 'errors' in parsed && Array.isArray(parsed.errors));
  const first: unknown = parsed.errors[0];
  assert.ok(typeof first === 'object' && first !== null && 'code' in first);
  return first.code;
}

test('GET and HEAD by tag (with ns) and by digest', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const manifest = sampleManifest();
  const digest = store.put(manifest, MediaType.ociManifest);
  store.tag('docker.io/library/nginx:1.27', digest);
  for (const url of [
    '/v2/library/nginx/manifests/1.27?ns=docker.io',
    '/v2/library/nginx/manifests/1.27',
    `/v2/library/nginx/manifests/${digest}?ns=docker.io`,
  ]) {
    const get = await app.inject({ method: 'GET', url });
    assert.equal(get.statusCode, 200, url);
    assert.equal(get.body, manifest);
    assert.equal(get.headers['content-type'], MediaType.ociManifest);
    assert.equal(get.headers['docker-content-digest'], digest);
    assert.equal(get.headers['content-length'], String(manifest.length));
    assert.equal(get.headers.etag, `"${digest}"`);
    assert.equal(get.headers['docker-distribution-api-version'], 'registry/2.0');
    const head = await app.inject({ method: 'HEAD', url });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    for (const name of ['content-type', 'docker-content-digest', 'content-length', 'etag']) {
      assert.equal(head.headers[name], get.headers[name], name);
    }
  }
});

test('the tag is resolved within the ns registry', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(sampleManifest(), MediaType.ociManifest);
  store.tag('ghcr.io/org/app:v1', digest);
  assert.equal((await app.inject({ url: '/v2/org/app/manifests/v1?ns=ghcr.io' })).statusCode, 200);
  const other = await app.inject({ url: '/v2/org/app/manifests/v1?ns=docker.io' });
  assert.equal(other.statusCode, 404);
  assert.equal(errorCode(other.body), 'MANIFEST_UNKNOWN');
  assert.equal((await app.inject({ url: '/v2/org/app/manifests/v1' })).statusCode, 404);
});

test('media type: sniffed when unknown, refused when not a manifest', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const index = JSON.stringify({ schemaVersion: 2, manifests: [] });
  const indexDigest = store.put(index);
  const get = await app.inject({ url: `/v2/a/manifests/${indexDigest}` });
  assert.equal(get.statusCode, 200);
  assert.equal(get.headers['content-type'], MediaType.ociIndex);
  const head = await app.inject({ method: 'HEAD', url: `/v2/a/manifests/${indexDigest}` });
  assert.equal(head.headers['content-type'], MediaType.ociIndex);
  assert.equal(head.headers['content-length'], String(index.length));
  const docker = store.put(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [] }));
  assert.equal((await app.inject({ url: `/v2/a/manifests/${docker}` })).headers['content-type'], MediaType.dockerManifestList);

  for (const digest of [store.put('not json'), store.put(sampleManifest(), MediaType.ociLayerGzip), store.put('{"a":1}')]) {
    const res = await app.inject({ url: `/v2/a/manifests/${digest}` });
    assert.equal(res.statusCode, 404);
    assert.equal(errorCode(res.body), 'MANIFEST_UNKNOWN');
    assert.equal(res.headers['docker-content-digest'], undefined);
  }
});

test('manifests over 4 MiB are refused', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const big = store.put(Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20), MediaType.ociManifest);
  const res = await app.inject({ url: `/v2/a/manifests/${big}` });
  assert.equal(res.statusCode, 404);
  assert.equal(errorCode(res.body), 'MANIFEST_UNKNOWN');
});

test('resolveTags off: tags are 404, digests still served', async (t) => {
  const { app, store } = createTestApp({ resolveTags: false });
  t.after(() => app.close());
  const digest = store.put(sampleManifest(), MediaType.ociManifest);
  store.tag('docker.io/library/nginx:1.27', digest);
  const res = await app.inject({ method: 'HEAD', url: '/v2/library/nginx/manifests/1.27?ns=docker.io' });
  assert.equal(res.statusCode, 404);
  assert.equal((await app.inject({ url: '/v2/library/nginx/manifests/1.27' })).statusCode, 404);
  assert.equal((await app.inject({ url: `/v2/library/nginx/manifests/${digest}` })).statusCode, 200);
});

test('mirroredRegistries: only listed registries are served, by tag or digest', async (t) => {
  const { app, store } = createTestApp({ mirroredRegistries: ['docker.io', 'Registry.K8s.io'] });
  t.after(() => app.close());
  const digest = store.put(sampleManifest(), MediaType.ociManifest);
  store.tag('docker.io/library/nginx:1.27', digest);
  store.tag('ghcr.io/library/nginx:1.27', digest);
  assert.equal((await app.inject({ url: '/v2/library/nginx/manifests/1.27?ns=docker.io' })).statusCode, 200);
  assert.equal((await app.inject({ url: `/v2/library/nginx/manifests/${digest}?ns=registry.k8s.io` })).statusCode, 200);
  for (const url of ['/v2/library/nginx/manifests/1.27?ns=ghcr.io', `/v2/library/nginx/manifests/${digest}?ns=ghcr.io`]) {
    const res = await app.inject({ url });
    assert.equal(res.statusCode, 404, url);
    assert.equal(errorCode(res.body), 'MANIFEST_UNKNOWN');
  }
});

test('unknown tags and digests, invalid ns', async (t) => {
  const { app } = createTestApp();
  t.after(() => app.close());
  const missing = await app.inject({ url: `/v2/a/manifests/sha256:${'1'.repeat(64)}` });
  assert.equal(missing.statusCode, 404);
  assert.equal(errorCode(missing.body), 'MANIFEST_UNKNOWN');
  assert.equal((await app.inject({ url: '/v2/a/manifests/nope' })).statusCode, 404);
  const badNs = await app.inject({ url: '/v2/a/manifests/v1?ns=bad/host' });
  assert.equal(badNs.statusCode, 400);
  assert.equal(errorCode(badNs.body), 'NAME_INVALID');
});

test('If-None-Match with the ETag is 304', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(sampleManifest(), MediaType.ociManifest);
  const res = await app.inject({ url: `/v2/a/manifests/${digest}`, headers: { 'if-none-match': `"${digest}"` } });
  assert.equal(res.statusCode, 304);
  assert.equal(res.body, '');
  assert.equal(res.headers.etag, `"${digest}"`);
  const other = await app.inject({ url: `/v2/a/manifests/${digest}`, headers: { 'if-none-match': '"sha256:x"' } });
  assert.equal(other.statusCode, 200);
});

test('content that does not match its digest is a 404 (a miss), not served', async (t) => {
  const real = createTestApp().store;
  const digest = real.put(sampleManifest(), MediaType.ociManifest);
  const liar: ContentStore = {
    resolve: (ref) => real.resolve(ref),
    stat: (d) => real.stat(d),
    // Same size, other bytes.
    read: async () => Readable.from([Buffer.from(sampleManifest(2).slice(0, sampleManifest().length))]),
  };
  const { app, log } = createTestApp({ store: liar });
  t.after(() => app.close());
  const res = await app.inject({ url: `/v2/a/manifests/${digest}` });
  assert.equal(res.statusCode, 404);
  assert.equal(errorCode(res.body), 'MANIFEST_UNKNOWN');
  assert.equal(res.headers['docker-content-digest'], undefined);
  assert.ok(log.lines.some((line) => line.level === 40 && typeof line.msg === 'string' && line.msg.includes('does not match')));
});

test('a body handed over whole (readWhole) is served without a stream, and checked like any other', async (t) => {
  const real = createTestApp().store;
  const manifest = sampleManifest();
  const digest = real.put(manifest, MediaType.ociManifest);
  let streams = 0;
  const keeping = (bytes: Buffer): WholeReadableStore => ({
    resolve: (ref) => real.resolve(ref),
    stat: (d) => real.stat(d),
    read: async (d) => {
      streams++;
      return real.read(d);
    },
    readWhole: async () => bytes,
  });
  const good = createTestApp({ store: keeping(Buffer.from(manifest)) });
  const bad = createTestApp({ store: keeping(Buffer.from(sampleManifest(2).slice(0, manifest.length))) });
  t.after(() => Promise.all([good.app.close(), bad.app.close()]));
  const res = await good.app.inject({ url: `/v2/a/manifests/${digest}` });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body, manifest);
  const wrong = await bad.app.inject({ url: `/v2/a/manifests/${digest}` });
  assert.equal(wrong.statusCode, 404);
  assert.equal(errorCode(wrong.body), 'MANIFEST_UNKNOWN');
  assert.equal(streams, 0, 'read() was not used');
});
