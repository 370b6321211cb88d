// How the routes use their content sources (routes.ts, ../content/source.ts):
// a request with the peer marker is answered from the local source only, and
// every source gets the kind and method hints and has what it located released.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { storeSource, type ContentRequest, type ContentSource } from '../content/source.ts';
import { createTestApp } from '../../tests/support/registry/testkit.ts';

/** A source over another store ("the peers") that records what it was asked and what was released. */
function recordingSource() {
  const store = createMemoryStore();
  const inner = storeSource(store, 'peer');
  const asked: Array<{ request: ContentRequest; digest: string }> = [];
  let released = 0;
  const source: ContentSource = {
    resolveTag: (request, tag) => inner.resolveTag(request, tag),
    async locate(request, digest) {
      asked.push({ request, digest });
      const located = await inner.locate(request, digest);
      if (located === undefined) return undefined;
      return { ...located, peer: 'peer-a', release: () => released++ };
    },
  };
  return { store, source, asked, released: () => released };
}

test('a marked request is answered from the local source only', async (t) => {
  const peers = recordingSource();
  const { app, store } = createTestApp({ source: peers.source });
  t.after(() => app.close());
  const digest = peers.store.put('from a peer');
  const url = `/v2/library/nginx/blobs/${digest}?ns=docker.io`;
  assert.equal((await app.inject({ url })).statusCode, 200, 'unmarked: the configured source');
  assert.equal(peers.asked.length, 1);
  const marked = await app.inject({ url, headers: { [PEER_REQUEST_HEADER]: '1' } });
  assert.equal(marked.statusCode, 404);
  assert.equal(peers.asked.length, 1, 'the peer source was not asked');
  store.put('from a peer');
  assert.equal((await app.inject({ url, headers: { [PEER_REQUEST_HEADER]: '1' } })).statusCode, 200);
});

test('sources get kind and method hints, and located content is always released', async (t) => {
  const peers = recordingSource();
  const { app, log } = createTestApp({ source: peers.source });
  t.after(() => app.close());
  const digest = peers.store.put(Buffer.alloc(100, 1));
  const url = `/v2/a/blobs/${digest}`;
  const requests = [
    { method: 'GET' as const, headers: {} },
    { method: 'HEAD' as const, headers: {} },
    { method: 'GET' as const, headers: { 'if-none-match': `"${digest}"` } },
    { method: 'GET' as const, headers: { range: 'bytes=1-2' } },
    { method: 'GET' as const, headers: { range: 'bytes=500-' } },
  ];
  for (const r of requests) await app.inject({ url, method: r.method, headers: r.headers });
  assert.deepEqual(
    peers.asked.map((a) => [a.request.kind, a.request.method]),
    requests.map((r) => ['blob', r.method]),
  );
  assert.equal(peers.released(), requests.length);
  const manifest = await app.inject({ url: `/v2/a/manifests/${digest}`, method: 'HEAD' });
  assert.equal(manifest.statusCode, 404, 'not a manifest');
  assert.deepEqual(peers.asked.at(-1)?.request.kind, 'manifest');
  assert.equal(peers.released(), requests.length + 1);
  const lines = log.lines.filter((line) => line.msg === 'request');
  assert.equal(lines[0]?.source, 'peer');
  assert.equal(lines[0]?.peer, 'peer-a');
});
