// The request metrics fed by a real registry app's access log, with a chain of
// two real sources (the second one named `peer`, as the peer source is).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MediaType } from '../oci/mediatype.ts';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { PEER_REQUEST_HEADER, PEER_REQUEST_VALUE } from '../auth/peer-request.ts';
import { chainSources, storeSource } from '../content/source.ts';
import { createTestApp, sampleManifest } from '../../tests/support/registry/testkit.ts';
import { parseExposition, sumSamples } from '../../tests/support/exposition.ts';
import { createMetrics } from './metrics.ts';
import { countResolves, recordRequest, requestSource } from './record.ts';

test('a 404 for content is a miss; other answers keep their source', () => {
  assert.equal(requestSource({ handler: 'blob', status: 404, source: 'local' }), 'miss');
  assert.equal(requestSource({ handler: 'manifest', status: 404, source: 'local' }), 'miss');
  assert.equal(requestSource({ handler: 'blob', status: 200, source: 'peer' }), 'peer');
  assert.equal(requestSource({ handler: 'unknown', status: 404, source: 'local' }), 'local');
});

test('requests by handler, status and source; bytes; resolutions', async (t) => {
  const metrics = createMetrics();
  const local = createMemoryStore();
  const remote = createMemoryStore();
  const localSource = storeSource(local);
  const { app } = createTestApp({
    store: local,
    localSource,
    source: countResolves(metrics, chainSources([localSource, storeSource(remote, 'peer')])),
    onRequest: (line) => recordRequest(metrics, line),
  });
  t.after(() => app.close());
  const localBlob = local.put(Buffer.alloc(1000, 1));
  const remoteBlob = remote.put(Buffer.alloc(300, 2));
  const manifest = sampleManifest();
  remote.tag('docker.io/library/nginx:1.27', remote.put(manifest, MediaType.ociManifest));

  const get = async (url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<number> =>
    (await app.inject({ method, url, headers })).statusCode;
  assert.equal(await get(`/v2/library/nginx/blobs/${localBlob}`), 200);
  assert.equal(await get(`/v2/library/nginx/blobs/${localBlob}`, { range: 'bytes=0-9' }), 206);
  assert.equal(await get(`/v2/library/nginx/blobs/${remoteBlob}`), 200);
  assert.equal(await get(`/v2/library/nginx/blobs/sha256:${'4'.repeat(64)}`), 404);
  assert.equal(await get('/v2/library/nginx/manifests/1.27', {}, 'HEAD'), 200);
  assert.equal(await get('/v2/library/nginx/manifests/nope'), 404);
  // A peer's request is answered from the local store only.
  assert.equal(await get(`/v2/library/nginx/blobs/${localBlob}`, { [PEER_REQUEST_HEADER]: PEER_REQUEST_VALUE }), 200);
  assert.equal(await get(`/v2/library/nginx/blobs/${remoteBlob}`, { [PEER_REQUEST_HEADER]: PEER_REQUEST_VALUE }), 404);

  const scrape = parseExposition(await metrics.registry.metrics());
  const requests = (labels: Record<string, string>): number => sumSamples(scrape, 'mirra_http_requests_total', labels);
  assert.equal(requests({ handler: 'blob', status: '200', source: 'local', from: 'client' }), 1);
  assert.equal(requests({ handler: 'blob', status: '206', source: 'local', from: 'client' }), 1);
  assert.equal(requests({ handler: 'blob', status: '200', source: 'peer', from: 'client' }), 1);
  assert.equal(requests({ handler: 'blob', status: '404', source: 'miss', from: 'client' }), 1);
  assert.equal(requests({ handler: 'blob', source: 'local', from: 'peer' }), 1);
  assert.equal(requests({ handler: 'blob', source: 'miss', from: 'peer' }), 1);
  assert.equal(requests({ handler: 'manifest', method: 'HEAD', status: '200', source: 'peer' }), 1);
  assert.equal(requests({ handler: 'manifest', status: '404', source: 'miss' }), 1);
  assert.equal(requests({}), 8);

  const bytes = (labels: Record<string, string>): number => sumSamples(scrape, 'mirra_http_response_bytes_total', labels);
  assert.equal(bytes({ handler: 'blob', source: 'local', from: 'client' }), 1010);
  assert.equal(bytes({ handler: 'blob', source: 'peer', from: 'client' }), 300);
  assert.equal(bytes({ handler: 'blob', source: 'local', from: 'peer' }), 1000);
  assert.equal(sumSamples(scrape, 'mirra_http_request_duration_seconds_count', { handler: 'blob' }), 6);

  assert.equal(sumSamples(scrape, 'mirra_resolve_total', { source: 'peer', result: 'found' }), 1);
  assert.equal(sumSamples(scrape, 'mirra_resolve_total', { source: 'none', result: 'not_found' }), 1);
  assert.equal(sumSamples(scrape, 'mirra_resolve_total'), 2);
});
