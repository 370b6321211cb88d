import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { MediaType } from '../oci/mediatype.ts';
import { chainSources, storeSource } from '../content/source.ts';
import { createTestApp, listen, sampleManifest } from '../../tests/support/registry/testkit.ts';

test('defaultRegistry applies when ns is absent', async (t) => {
  const { app, store } = createTestApp({ defaultRegistry: 'registry.k8s.io', mirroredRegistries: ['registry.k8s.io'] });
  t.after(() => app.close());
  const digest = store.put(sampleManifest(), MediaType.ociManifest);
  store.tag('registry.k8s.io/pause:3.10', digest);
  store.tag('docker.io/library/pause:3.10', digest);
  assert.equal((await app.inject({ url: '/v2/pause/manifests/3.10' })).statusCode, 200);
  assert.equal((await app.inject({ url: '/v2/library/pause/manifests/3.10?ns=docker.io' })).statusCode, 404);
  assert.equal((await app.inject({ url: `/v2/pause/blobs/${digest}` })).statusCode, 200);
  assert.equal((await app.inject({ url: `/v2/pause/blobs/${digest}?ns=docker.io` })).statusCode, 404);
});

test('the source seam: a chain answers after the local store, and the access log names the source', async (t) => {
  const local = createMemoryStore();
  const other = createMemoryStore();
  const manifest = sampleManifest();
  const digest = other.put(manifest, MediaType.ociManifest);
  other.tag('docker.io/library/nginx:1.27', digest);
  const localBlob = local.put('local bytes');
  const { app, log } = createTestApp({
    store: local,
    source: chainSources([storeSource(local), storeSource(other, 'peer-b')]),
  });
  t.after(() => app.close());
  const res = await app.inject({ url: '/v2/library/nginx/manifests/1.27?ns=docker.io' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body, manifest);
  assert.equal((await app.inject({ url: `/v2/library/nginx/blobs/${localBlob}` })).body, 'local bytes');
  const sources = log.lines.filter((line) => line.msg === 'request').map((line) => line.source);
  assert.deepEqual(sources, ['peer-b', 'local']);
});

test('listens on loopback, serves, and closes cleanly with a keep-alive client', async () => {
  const { app, store } = createTestApp();
  const digest = store.put('x');
  const base = await listen(app);
  const res = await fetch(`${base}/v2/a/blobs/${digest}`);
  assert.equal(await res.text(), 'x');
  await app.close();
  await assert.rejects(fetch(`${base}/v2/`));
});
