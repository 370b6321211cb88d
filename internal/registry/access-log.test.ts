import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MediaType } from '../oci/mediatype.ts';
import { createTestApp, listen, rawGet, sampleManifest } from '../../tests/support/registry/testkit.ts';

test('one line per request with the access fields', async (t) => {
  const { app, store, log } = createTestApp();
  t.after(() => app.close());
  const manifest = sampleManifest();
  const manifestDigest = store.put(manifest, MediaType.ociManifest);
  store.tag('docker.io/library/nginx:1.27', manifestDigest);
  const blob = store.put(Buffer.alloc(1000, 9));
  const requests: Array<{
    method: 'GET' | 'HEAD' | 'PUT';
    url: string;
    status: number;
    handler: string;
    bytesSent?: number;
    headers?: Record<string, string>;
  }> = [
    { method: 'GET', url: '/v2/', status: 200, handler: 'base', bytesSent: 2 },
    { method: 'HEAD', url: '/v2/library/nginx/manifests/1.27?ns=docker.io', status: 200, handler: 'manifest', bytesSent: 0 },
    { method: 'GET', url: `/v2/library/nginx/manifests/${manifestDigest}?ns=docker.io`, status: 200, handler: 'manifest', bytesSent: manifest.length },
    { method: 'GET', url: `/v2/library/nginx/blobs/${blob}`, status: 200, handler: 'blob', bytesSent: 1000 },
    { method: 'GET', url: `/v2/library/nginx/blobs/${blob}`, status: 206, handler: 'blob', bytesSent: 10, headers: { range: 'bytes=0-9' } },
    { method: 'GET', url: `/v2/library/nginx/blobs/sha256:${'4'.repeat(64)}`, status: 404, handler: 'blob' },
    { method: 'PUT', url: `/v2/library/nginx/blobs/${blob}`, status: 405, handler: 'unknown' },
    { method: 'GET', url: '/nowhere', status: 404, handler: 'unknown' },
  ];
  for (const r of requests) {
    const res = await app.inject({ method: r.method, url: r.url, headers: r.headers ?? {} });
    assert.equal(res.statusCode, r.status, r.url);
  }
  const lines = log.lines.filter((line) => line.msg === 'request');
  assert.equal(log.lines.length, requests.length, 'nothing but access lines (no Fastify request logging)');
  assert.equal(lines.length, requests.length);
  requests.forEach((r, i) => {
    const line = lines[i];
    assert.ok(line);
    assert.equal(line.component, 'registry');
    assert.equal(line.level, 30);
    assert.equal(line.status, r.status);
    assert.equal(line.method, r.method);
    assert.equal(line.url, r.url.split('?')[0], 'path only');
    assert.equal(line.handler, r.handler);
    assert.equal(line.source, 'local');
    assert.equal(line.remoteIp, '127.0.0.1');
    assert.equal(typeof line.latencyMs, 'number');
    assert.ok((line.latencyMs as number) >= 0);
    if (r.bytesSent !== undefined) assert.equal(line.bytesSent, r.bytesSent, r.url);
    assert.equal(line.aborted, undefined);
  });
  assert.equal(lines[1]?.registry, 'docker.io');
});

test('requests Fastify rejects before routing are logged too', async (t) => {
  const { app, log } = createTestApp();
  t.after(() => app.close());
  const base = await listen(app);
  const res = await rawGet(base, '/v2/%zz/manifests/v1');
  assert.equal(res.status, 400);
  const lines = log.lines.filter((line) => line.msg === 'request');
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.status, 400);
  assert.equal(lines[0]?.url, '/v2/%zz/manifests/v1');
  assert.equal(lines[0]?.remoteIp, '127.0.0.1');
});

test('a download the client abandons is logged once, as aborted', async (t) => {
  const { app, store, log } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(Buffer.alloc(64 * 1024 * 1024));
  const base = await listen(app);
  const controller = new AbortController();
  const res = await fetch(`${base}/v2/a/blobs/${digest}`, { signal: controller.signal });
  const reader = res.body?.getReader();
  await reader?.read();
  controller.abort();
  for (let i = 0; i < 100 && log.lines.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(log.lines.length, 1);
  assert.equal(log.lines[0]?.aborted, true);
  assert.equal(log.lines[0]?.status, 200);
  // Bytes handed to the socket (one 64 MiB chunk from the memory store), not bytes received.
  assert.equal(typeof log.lines[0]?.bytesSent, 'number');
});

test('bodies Fastify sends (manifests, /v2/, errors) count their bytes on a real socket, not only under inject()', async (t) => {
  const { app, store, log } = createTestApp();
  t.after(() => app.close());
  const manifest = sampleManifest();
  const manifestDigest = store.put(manifest, MediaType.ociManifest);
  const base = await listen(app);
  const bodies: number[] = [];
  for (const path of [
    '/v2/',
    `/v2/library/nginx/manifests/${manifestDigest}?ns=docker.io`,
    `/v2/library/nginx/manifests/sha256:${'5'.repeat(64)}?ns=docker.io`,
  ]) {
    const res = await fetch(`${base}${path}`);
    bodies.push((await res.arrayBuffer()).byteLength);
  }
  for (let i = 0; i < 100 && log.lines.length < bodies.length; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const lines = log.lines.filter((line) => line.msg === 'request');
  assert.deepEqual(
    lines.map((line) => line.bytesSent),
    bodies,
  );
  assert.equal(lines[1]?.bytesSent, manifest.length);
});
