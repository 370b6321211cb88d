import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { startCountingProxy } from './counting-proxy.ts';
import { generateImage, type GeneratedImage } from './image.ts';
import { freePort, portOpen } from './process.ts';
import { readTar } from './tar.ts';
import { startUpstream, type Upstream } from './upstream.ts';

const MiB = 1024 * 1024;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function proxyPort(host: string): number {
  return Number(host.split(':')[1]);
}

describe('upstream registry behind the counting proxy', () => {
  let workDir = '';
  let upstream: Upstream;
  let image: GeneratedImage;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'mirra-upstream-test-'));
    [upstream, image] = await Promise.all([
      startUpstream({ dir: join(workDir, 'upstream') }),
      generateImage({ dir: join(workDir, 'image'), layers: [1 * MiB, 4 * MiB], seed: 'upstream-test' }),
    ]);
  });
  after(async () => {
    await upstream.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  it('pushes with skopeo, keeping the digests, without touching the counts', async () => {
    const pushed = await upstream.push(image.layoutDir, 'library/test', 'v1');
    assert.equal(pushed, image.manifestDigest);
    assert.equal(upstream.counts().requests.length, 0, 'a direct push bypasses the proxy');
    const { stdout } = await promisify(execFile)('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${upstream.host}/library/test:v1`]);
    const inspected: unknown = JSON.parse(stdout);
    assert.ok(typeof inspected === 'object' && inspected !== null);
    assert.equal((inspected as Record<string, unknown>).Digest, image.manifestDigest);
    assert.deepEqual(
      (inspected as Record<string, unknown>).Layers,
      image.layers.map((l) => l.digest),
    );
    assert.ok(upstream.counts().manifestGets >= 1, 'skopeo inspect went through the proxy');
    upstream.resetCounts();
    assert.deepEqual(upstream.counts(), { requests: [], blobGets: 0, manifestGets: 0, manifestHeads: 0, bytes: 0 });
  });

  it('serves the manifest and the blobs through the proxy, and counts them', async () => {
    const manifest = await get(`http://${upstream.host}/v2/library/test/manifests/v1`, { headers: { accept: ACCEPT } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifestDigest);
    assert.equal(sha256(manifest.body), image.manifestDigest);

    const config = await get(`http://${upstream.host}/v2/library/test/blobs/${image.configDigest}`);
    assert.equal(sha256(config.body), image.configDigest);
    const diffIds: unknown = (JSON.parse(config.body.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
    for (const [index, layer] of image.layers.entries()) {
      const blob = await get(`http://${upstream.host}/v2/library/test/blobs/${layer.digest}`);
      assert.equal(blob.status, 200);
      assert.equal(sha256(blob.body), layer.digest);
      const tar = gunzipSync(blob.body);
      assert.equal(sha256(tar), layer.diffId);
      assert.equal(readTar(tar)[0]?.sizeBytes, layer.payloadBytes);
      assert.equal(Array.isArray(diffIds) ? diffIds[index] : undefined, layer.diffId);
    }

    const counts = upstream.counts();
    assert.equal(counts.manifestGets, 1);
    assert.equal(counts.blobGets, 3);
    assert.equal(counts.bytes, image.totalBytes);
    assert.deepEqual(
      counts.requests.map((r) => [r.method, r.kind, r.status, r.bytes]),
      [['GET', 'manifest', 200, image.manifestSize], ['GET', 'blob', 200, image.configSize], ...image.layers.map((l) => ['GET', 'blob', 200, l.size])],
    );
    assert.equal(counts.requests[0]?.path, '/v2/library/test/manifests/v1');
  });

  it('counts HEADs, misses and other requests by kind and status', async () => {
    upstream.resetCounts();
    const head = await fetch(`http://${upstream.host}/v2/library/test/manifests/${image.manifestDigest}?ns=docker.io`, {
      method: 'HEAD',
      headers: { accept: ACCEPT },
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(image.manifestSize));
    const missing = await get(`http://${upstream.host}/v2/library/test/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(missing.status, 404);
    const base = await get(`http://${upstream.host}/v2/`);
    assert.equal(base.status, 200);
    const counts = upstream.counts();
    assert.equal(counts.manifestHeads, 1);
    assert.equal(counts.manifestGets, 0);
    assert.equal(counts.blobGets, 1);
    assert.deepEqual(
      counts.requests.map((r) => [r.method, r.kind, r.status, r.bytes]),
      [
        ['HEAD', 'manifest', 200, 0],
        ['GET', 'blob', 404, missing.body.length],
        ['GET', 'other', 200, base.body.length],
      ],
    );
    assert.equal(counts.requests[0]?.url, `/v2/library/test/manifests/${image.manifestDigest}?ns=docker.io`);
    assert.equal(counts.requests[0]?.path, `/v2/library/test/manifests/${image.manifestDigest}`);
  });

  it('pushes through the proxy too, keeping clients on the proxy for uploads', async () => {
    upstream.resetCounts();
    const pushed = await upstream.push(image.layoutDir, 'library/other', 'v2', { viaProxy: true });
    assert.equal(pushed, image.manifestDigest);
    const methods = new Set(upstream.counts().requests.map((r) => r.method));
    assert.ok(methods.has('PUT'), 'the manifest PUT went through the proxy');
    const manifest = await get(`http://${upstream.directHost}/v2/library/other/manifests/v2`, { headers: { accept: ACCEPT } });
    assert.equal(sha256(manifest.body), image.manifestDigest);
  });

  it('limits bandwidth when asked, shared across connections', async () => {
    const layer = image.layers[1];
    assert.ok(layer !== undefined && layer.size > 4 * MiB);
    const url = `http://${upstream.host}/v2/library/test/blobs/${layer.digest}`;
    upstream.setBandwidth(8_000_000);
    let started = performance.now();
    const both = await Promise.all([get(url), get(url)]);
    const sharedMs = performance.now() - started;
    for (const blob of both) assert.equal(sha256(blob.body), layer.digest);
    // 2 x 4.2 MB at 8 MB/s: about 1.05 s (one 400 kB burst allowed).
    assert.ok(sharedMs >= 900, `two limited downloads took ${sharedMs.toFixed(0)} ms`);
    assert.ok(sharedMs < 5000, `two limited downloads took ${sharedMs.toFixed(0)} ms`);
    upstream.setBandwidth(undefined);
    started = performance.now();
    await get(url);
    const freeMs = performance.now() - started;
    assert.ok(freeMs < 500, `an unlimited download took ${freeMs.toFixed(0)} ms`);
  });

  it('survives a client that goes away mid-download', async () => {
    const layer = image.layers[1];
    assert.ok(layer !== undefined);
    upstream.setBandwidth(4_000_000);
    upstream.resetCounts();
    const abort = new AbortController();
    const res = await fetch(`http://${upstream.host}/v2/library/test/blobs/${layer.digest}`, { signal: abort.signal });
    assert.equal(res.status, 200);
    setTimeout(() => abort.abort(), 100);
    await assert.rejects(res.arrayBuffer());
    upstream.setBandwidth(undefined);
    const partial = upstream.counts().requests[0];
    assert.ok(partial !== undefined && partial.bytes > 0 && partial.bytes < layer.size, `partial download counted ${partial?.bytes} bytes`);
    const again = await get(`http://${upstream.host}/v2/library/test/blobs/${layer.digest}`);
    assert.equal(sha256(again.body), layer.digest);
  });
});

describe('counting proxy', () => {
  it('answers 502 when nothing listens behind it', async () => {
    const proxy = await startCountingProxy({ target: `127.0.0.1:${await freePort()}` });
    try {
      const res = await get(`http://${proxy.host}/v2/`);
      assert.equal(res.status, 502);
      assert.match(res.body.toString('utf8'), /proxy error/);
      assert.deepEqual(
        proxy.counts().requests.map((r) => [r.kind, r.status]),
        [['other', 502]],
      );
    } finally {
      await proxy.stop();
    }
  });
});

describe('startUpstream with a bandwidth limit', () => {
  it('limits from the start, and stop() ends the registry and the proxy', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'mirra-upstream-test-'));
    const upstream = await startUpstream({ dir: join(workDir, 'upstream'), bandwidthBytesPerSec: 4_000_000 });
    try {
      const image = await generateImage({ dir: join(workDir, 'image'), layers: [4 * MiB], seed: 'limited' });
      assert.equal(await upstream.push(image.layoutDir, 'limited', 'latest'), image.manifestDigest);
      const layer = image.layers[0];
      assert.ok(layer !== undefined);
      const started = performance.now();
      const blob = await get(`http://${upstream.host}/v2/limited/blobs/${layer.digest}`);
      const elapsedMs = performance.now() - started;
      assert.equal(sha256(blob.body), layer.digest);
      // 4.2 MB at 4 MB/s: about 1.0 s.
      assert.ok(elapsedMs >= 800, `4 MiB at 4 MB/s took ${elapsedMs.toFixed(0)} ms`);
      assert.ok(elapsedMs < 5000, `4 MiB at 4 MB/s took ${elapsedMs.toFixed(0)} ms`);
      assert.ok(processAlive(upstream.pid));
    } finally {
      await upstream.stop();
      await rm(workDir, { recursive: true, force: true });
    }
    assert.equal(processAlive(upstream.pid), false, 'docker-registry is gone');
    assert.equal(await portOpen('127.0.0.1', proxyPort(upstream.host)), false, 'the proxy port is closed');
    assert.equal(await portOpen('127.0.0.1', proxyPort(upstream.directHost)), false, 'the registry port is closed');
  });
});
