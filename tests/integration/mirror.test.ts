// The data plane against the real components: docker-registry upstream, a
// containerd "node A" with the image, A's agent, and a containerd "node B"
// that pulls through A's agent.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestAgent } from '../support/agent.ts';
import type { TestContainerd } from '../support/containerd.ts';
import { writeMirrorHosts } from '../support/hosts.ts';
import type { GeneratedImage } from '../support/image.ts';
import { startNodePair, type NodePair } from '../support/node-pair.ts';
import { waitFor } from '../support/process.ts';
import type { Upstream } from '../support/upstream.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function ociCode(response: Response): Promise<string | undefined> {
  const body: unknown = await response.json();
  const errors = (body as { errors?: Array<{ code?: unknown }> }).errors;
  const code = errors?.[0]?.code;
  return typeof code === 'string' ? code : undefined;
}

describe('mirror served from a real containerd', { timeout: 180_000 }, () => {
  let pair: NodePair;
  let upstream: Upstream;
  let image: GeneratedImage;
  let nodeA: TestContainerd;
  let nodeB: TestContainerd;
  let agent: TestAgent;
  const url = (path: string): string => `${agent.url}${path}${path.includes('?') ? '&' : '?'}ns=${encodeURIComponent(upstream.host)}`;

  before(async () => {
    pair = await startNodePair({ prefix: 'mirra-it-mirror-', images: [{ repository: 'team/app', layers: [1 * MiB, 3 * MiB + 17], seed: 'it-mirror' }] });
    ({ upstream, nodeA, nodeB, agent } = pair);
    image = pair.images[0]!;
  });

  after(async () => {
    await pair?.stop();
  });

  test('GET /v2/ answers with the API version header', async () => {
    const response = await fetch(`${agent.url}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await response.arrayBuffer();
  });

  test('HEAD and GET of a manifest by tag and by digest', async () => {
    const head = await fetch(url('/v2/team/app/manifests/v1'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), image.manifestDigest);
    assert.equal(head.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(head.headers.get('content-length'), String(image.manifestSize));
    assert.equal(head.headers.get('etag'), `"${image.manifestDigest}"`);

    const get = await fetch(url(`/v2/team/app/manifests/${image.manifestDigest}`));
    assert.equal(get.status, 200);
    const body = Buffer.from(await get.arrayBuffer());
    assert.equal(sha256(body), image.manifestDigest);
    assert.equal(get.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
  });

  test('GET of blobs, whole and by range', async () => {
    const layer = image.layers[1];
    assert.ok(layer !== undefined);
    const whole = await fetch(url(`/v2/team/app/blobs/${layer.digest}`));
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-length'), String(layer.size));
    assert.equal(whole.headers.get('docker-content-digest'), layer.digest);
    const bytes = Buffer.from(await whole.arrayBuffer());
    assert.equal(sha256(bytes), layer.digest);

    const middle = await fetch(url(`/v2/team/app/blobs/${layer.digest}`), { headers: { range: 'bytes=1000-1999' } });
    assert.equal(middle.status, 206);
    assert.equal(middle.headers.get('content-range'), `bytes 1000-1999/${layer.size}`);
    assert.deepEqual(Buffer.from(await middle.arrayBuffer()), bytes.subarray(1000, 2000));

    const suffix = await fetch(url(`/v2/team/app/blobs/${layer.digest}`), { headers: { range: 'bytes=-100' } });
    assert.equal(suffix.status, 206);
    assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), bytes.subarray(layer.size - 100));

    const beyond = await fetch(url(`/v2/team/app/blobs/${layer.digest}`), { headers: { range: `bytes=${layer.size}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${layer.size}`);
    await beyond.arrayBuffer();

    const config = await fetch(url(`/v2/team/app/blobs/${image.configDigest}`));
    assert.equal(sha256(Buffer.from(await config.arrayBuffer())), image.configDigest);
  });

  test('errors are OCI error bodies with the spec codes', async () => {
    const absent = `sha256:${'0'.repeat(64)}`;
    const cases: Array<[string, RequestInit, number, string]> = [
      [url(`/v2/team/app/blobs/${absent}`), {}, 404, 'BLOB_UNKNOWN'],
      [url(`/v2/team/app/manifests/${absent}`), {}, 404, 'MANIFEST_UNKNOWN'],
      [url('/v2/team/app/manifests/v2'), {}, 404, 'MANIFEST_UNKNOWN'],
      [url('/v2/team/app/blobs/sha256:xyz'), {}, 400, 'DIGEST_INVALID'],
      [url('/v2/Team/App/manifests/v1'), {}, 400, 'NAME_INVALID'],
      [url('/v2/team/app/manifests/-bad-tag'), {}, 400, 'TAG_INVALID'],
      [url('/v2/team/app/manifests/v1'), { method: 'PUT', body: '{}' }, 405, 'UNSUPPORTED'],
      [url(`/v2/team/app/blobs/${image.configDigest}`), { method: 'DELETE' }, 405, 'UNSUPPORTED'],
      // Not a mirrored registry: its content is not served, even when present.
      [`${agent.url}/v2/team/app/blobs/${image.configDigest}?ns=ghcr.io`, {}, 404, 'BLOB_UNKNOWN'],
    ];
    for (const [target, init, status, code] of cases) {
      const response = await fetch(target, init);
      assert.equal(response.status, status, `${init.method ?? 'GET'} ${target}`);
      assert.equal(await ociCode(response), code, `${init.method ?? 'GET'} ${target}`);
    }
  });

  test("containerd B pulls through A's agent and upstream serves no blob", async () => {
    await writeMirrorHosts(pair.nodeBHostsDir, upstream.host, agent.url);
    upstream.resetCounts();
    await nodeB.criPull(`${upstream.host}/team/app:v1`);
    const counts = upstream.counts();
    assert.equal(counts.blobGets, 0, JSON.stringify(counts.requests));
    assert.equal(counts.manifestGets, 0, JSON.stringify(counts.requests));

    const lines = await agent.accessLines();
    for (const layer of image.layers) {
      assert.ok(
        lines.some((line) => line.handler === 'blob' && line.status === 200 && String(line.url).includes(layer.digest) && line.source === 'local'),
        `agent served ${layer.digest}`,
      );
    }
    // containerd B now has every blob, with the digests it verified itself.
    const listed = await nodeB.ctr(['content', 'ls', '-q']);
    for (const digest of [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)]) assert.ok(listed.includes(digest), digest);
  });

  test('a blob deleted from containerd disappears from the API', async () => {
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    const before = await fetch(url(`/v2/team/app/blobs/${layer.digest}`), { method: 'HEAD' });
    assert.equal(before.status, 200);
    await nodeA.ctr(['content', 'rm', layer.digest]);
    const after = await fetch(url(`/v2/team/app/blobs/${layer.digest}`));
    assert.equal(after.status, 404);
    assert.equal(await ociCode(after), 'BLOB_UNKNOWN');
  });

  test('containerd restarted under a running agent: not ready while down, serves again after', async () => {
    await nodeA.stop();
    await waitFor('agent not ready', async () => (await fetch(`${agent.url}/readyz`)).status === 503, 10_000);
    // Down: manifests are answered from memory and their verified files; blobs need containerd's Info.
    const manifest = await fetch(url('/v2/team/app/manifests/v1'));
    assert.equal(manifest.status, 200);
    assert.equal(sha256(Buffer.from(await manifest.arrayBuffer())), image.manifestDigest);
    const down = await fetch(url(`/v2/team/app/blobs/${image.configDigest}`));
    assert.notEqual(down.status, 200);
    await down.arrayBuffer();
    await nodeA.restart();
    await waitFor('agent ready', async () => (await fetch(`${agent.url}/readyz`)).status === 200, 20_000);
    const again = await fetch(url('/v2/team/app/manifests/v1'));
    assert.equal(again.status, 200);
    assert.equal(sha256(Buffer.from(await again.arrayBuffer())), image.manifestDigest);
  });
});
