import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { generateImage, hostPlatform, type GeneratedImage } from './image.ts';
import { readTar } from './tar.ts';

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const blobPath = (layoutDir: string, digest: string): string => join(layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length));

async function readJson(path: string): Promise<Record<string, unknown>> {
  const doc: unknown = JSON.parse(await readFile(path, 'utf8'));
  assert.ok(typeof doc === 'object' && doc !== null && !Array.isArray(doc), `${path} is not a JSON object`);
  return doc as Record<string, unknown>;
}

describe('generateImage', () => {
  let workDir = '';
  let image: GeneratedImage;
  const payloads = [1_000_000, 0, 3 * 1024 * 1024 + 7];

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'mirra-image-test-'));
    image = await generateImage({ dir: join(workDir, 'a'), layers: payloads, seed: 'test' });
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it('writes an OCI layout whose index.json points at the manifest', async () => {
    assert.deepEqual(await readJson(join(image.layoutDir, 'oci-layout')), { imageLayoutVersion: '1.0.0' });
    const index = await readJson(join(image.layoutDir, 'index.json'));
    assert.deepEqual(index.manifests, [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: image.manifestDigest,
        size: image.manifestSize,
        annotations: { 'org.opencontainers.image.ref.name': 'latest' },
      },
    ]);
    assert.equal(image.rootDigest, image.manifestDigest);
    assert.equal(image.indexDigest, undefined);
  });

  it('stores every blob under its digest, and totalBytes is their sum', async () => {
    const names = (await readdir(join(image.layoutDir, 'blobs', 'sha256'))).sort();
    const digests = [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
    assert.deepEqual(names, digests.map((d) => d.slice('sha256:'.length)).sort());
    let sum = 0;
    for (const digest of digests) {
      const bytes = await readFile(blobPath(image.layoutDir, digest));
      assert.equal(sha256(bytes), digest);
      sum += bytes.length;
    }
    assert.equal(image.totalBytes, sum);
  });

  it('writes a manifest and a config that describe the layers and the host platform', async () => {
    const manifest = await readJson(blobPath(image.layoutDir, image.manifestDigest));
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(manifest.config, { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.configDigest, size: image.configSize });
    assert.deepEqual(
      manifest.layers,
      image.layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    );
    const config = await readJson(blobPath(image.layoutDir, image.configDigest));
    assert.equal(config.architecture, process.arch === 'x64' ? 'amd64' : hostPlatform().architecture);
    assert.equal(config.os, 'linux');
    assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: image.layers.map((l) => l.diffId) });
  });

  it('makes every layer a valid gzip of a ustar archive with one file of the requested size', async () => {
    for (const [index, layer] of image.layers.entries()) {
      const blob = await readFile(blobPath(image.layoutDir, layer.digest));
      assert.equal(blob.length, layer.size);
      const tar = gunzipSync(blob);
      assert.equal(sha256(tar), layer.diffId, 'diff_id is the sha256 of the uncompressed tar');
      const entries = readTar(tar);
      assert.equal(entries.length, 1);
      assert.deepEqual({ ...entries[0], dataOffset: 0 }, { name: `layer-${index}.bin`, mode: 0o644, type: '0', sizeBytes: payloads[index], dataOffset: 0 });
      const corrupt = Buffer.from(tar);
      corrupt[0] = 0x41;
      assert.throws(() => readTar(corrupt), /bad header checksum/, 'the reader checks header checksums');
      assert.throws(() => readTar(tar.subarray(0, tar.length - 512)), /end block/, 'the reader wants two end blocks');
    }
  });

  it('produces archives that GNU tar reads', async () => {
    for (const [index, layer] of image.layers.entries()) {
      const { stdout } = await promisify(execFile)('tar', ['-tvzf', blobPath(image.layoutDir, layer.digest)]);
      assert.match(stdout, new RegExp(`^-rw-r--r-- root/root +${payloads[index]} \\S+ \\S+ layer-${index}\\.bin\\n$`));
    }
  });

  it('is deterministic in the seed', async () => {
    const again = await generateImage({ dir: join(workDir, 'b'), layers: payloads, seed: 'test' });
    assert.equal(again.manifestDigest, image.manifestDigest);
    const other = await generateImage({ dir: join(workDir, 'c'), layers: payloads, seed: 'other' });
    assert.notEqual(other.manifestDigest, image.manifestDigest);
    assert.notEqual(other.layers[0]?.digest, image.layers[0]?.digest);
  });

  it('wraps one image per platform in an image index on request', async () => {
    const platforms = [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ];
    const multi = await generateImage({ dir: join(workDir, 'multi'), layers: [1000, 2000], platforms });
    assert.ok(multi.indexDigest !== undefined && multi.indexSize !== undefined);
    assert.equal(multi.rootDigest, multi.indexDigest);
    assert.equal(multi.images.length, 2);
    const layoutIndex = await readJson(join(multi.layoutDir, 'index.json'));
    assert.deepEqual(layoutIndex.manifests, [
      {
        mediaType: 'application/vnd.oci.image.index.v1+json',
        digest: multi.indexDigest,
        size: multi.indexSize,
        annotations: { 'org.opencontainers.image.ref.name': 'latest' },
      },
    ]);
    const index = await readJson(blobPath(multi.layoutDir, multi.indexDigest));
    assert.deepEqual(
      index.manifests,
      multi.images.map((m, i) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: m.manifestDigest,
        size: m.manifestSize,
        platform: platforms[i],
      })),
    );
    const armConfig = await readJson(blobPath(multi.layoutDir, multi.images[1]?.configDigest ?? ''));
    assert.equal(armConfig.architecture, 'arm64');
    assert.equal(armConfig.variant, 'v8');
    const blobBytes = multi.indexSize + multi.images.reduce((sum, m) => sum + m.totalBytes, 0);
    assert.equal(multi.totalBytes, blobBytes);
    const single = await generateImage({ dir: join(workDir, 'wrapped'), layers: [10], index: true });
    assert.ok(single.indexDigest !== undefined);
    assert.equal((await stat(blobPath(single.layoutDir, single.indexDigest))).size, single.indexSize);
  });

  it('rejects bad input with a clear error', async () => {
    const dir = join(workDir, 'bad');
    await assert.rejects(generateImage({ dir, layers: [-1] }), /bad layer size -1/);
    await assert.rejects(generateImage({ dir, layers: [1.5] }), /bad layer size/);
    await assert.rejects(generateImage({ dir, layers: [1], gzipLevel: 10 }), /bad gzipLevel/);
    await assert.rejects(generateImage({ dir, layers: [1], platforms: [] }), /platforms must not be empty/);
    await assert.rejects(
      generateImage({ dir, layers: [1], index: false, platforms: [hostPlatform(), { os: 'linux', architecture: 'arm64' }] }),
      /need index: true/,
    );
  });
});
