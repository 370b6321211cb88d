// The behaviour every ContentStore must have, as one node:test suite that runs
// against each implementation (memory-store.test.ts beside it, and the real
// containerd in internal/containerd/store.containerd.test.ts). Test support: product code
// never imports this folder.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, it, before, after } from 'node:test';
import { MediaType } from '../mediatype.ts';
import { NotFoundError, type ContentStore } from '../store.ts';

export interface TestBlob {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/** A single-platform image: manifest, config and layers, with the bytes of each. */
export interface TestImage {
  /** Fully qualified, e.g. docker.io/mirra-test/app:v1 */
  reference: string;
  manifest: TestBlob;
  config: TestBlob;
  layers: TestBlob[];
}

export function testBlob(bytes: Buffer, mediaType: string): TestBlob {
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, mediaType, bytes };
}

function descriptorOf(blob: TestBlob): { mediaType: string; digest: string; size: number } {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length };
}

/** An OCI image with random layers of the given sizes (random, so images never share content by accident). */
export function makeTestImage(reference: string, layerSizesBytes: number[] = [1024]): TestImage {
  const layers = layerSizesBytes.map((size) => testBlob(randomBytes(size), MediaType.ociLayerGzip));
  const configDoc = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    config: { Labels: { 'mirra.test': randomBytes(8).toString('hex') } },
  };
  const config = testBlob(Buffer.from(JSON.stringify(configDoc)), MediaType.ociConfig);
  const manifestDoc = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: descriptorOf(config),
    layers: layers.map(descriptorOf),
  };
  const manifest = testBlob(Buffer.from(JSON.stringify(manifestDoc)), MediaType.ociManifest);
  return { reference, manifest, config, layers };
}

export function imageBlobs(image: TestImage): TestBlob[] {
  return [image.manifest, image.config, ...image.layers];
}

export interface StoreFixture {
  store: ContentStore;
  /** Makes the image's content and its reference present in the store. */
  add(image: TestImage): Promise<void>;
  /** Removes one piece of content from the store, as garbage collection would. */
  remove(digest: string): Promise<void>;
  teardown(): Promise<void>;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

const ABSENT = `sha256:${'0'.repeat(64)}`;

export function runStoreConformance(name: string, setup: () => Promise<StoreFixture>): void {
  describe(`ContentStore conformance: ${name}`, () => {
    let fixture: StoreFixture;
    // A 2.5 MiB layer spans several read chunks.
    const image = makeTestImage('docker.io/mirra-test/app:v1', [2 * 1024 * 1024 + 512 * 1024, 777]);
    const other = makeTestImage('docker.io/mirra-test/other:v2', [300]);

    before(async () => {
      fixture = await setup();
      await fixture.add(image);
      await fixture.add(other);
    });
    after(async () => {
      await fixture?.teardown();
    });

    it('resolves a reference to its manifest digest', async () => {
      assert.equal(await fixture.store.resolve(image.reference), image.manifest.digest);
      assert.equal(await fixture.store.resolve(other.reference), other.manifest.digest);
    });

    it('resolves an unknown reference to undefined', async () => {
      assert.equal(await fixture.store.resolve('docker.io/mirra-test/app:nope'), undefined);
      assert.equal(await fixture.store.resolve('docker.io/mirra-test/never:v1'), undefined);
    });

    it('stats size and media type of manifest, config and layers', async () => {
      for (const blob of imageBlobs(image)) {
        const info = await fixture.store.stat(blob.digest);
        assert.deepEqual(info, { digest: blob.digest, size: blob.bytes.length, mediaType: blob.mediaType });
      }
    });

    it('stats absent or malformed digests as undefined', async () => {
      assert.equal(await fixture.store.stat(ABSENT), undefined);
      assert.equal(await fixture.store.stat('sha256:../../etc/passwd'), undefined);
      assert.equal(await fixture.store.stat('not a digest'), undefined);
    });

    it('reads all bytes of every blob', async () => {
      for (const blob of [...imageBlobs(image), ...imageBlobs(other)]) {
        const bytes = await readAll(await fixture.store.read(blob.digest));
        assert.ok(bytes.equals(blob.bytes), `bytes of ${blob.digest}`);
      }
    });

    it('reads inclusive byte ranges', async () => {
      const layer = image.layers[0];
      assert.ok(layer !== undefined);
      const size = layer.bytes.length;
      const ranges = [
        { start: 0, end: 0 },
        { start: 0, end: 99 },
        { start: 1024 * 1024 - 10, end: 1024 * 1024 + 10 },
        { start: 5, end: size - 1 },
        { start: size - 1, end: size - 1 },
      ];
      for (const range of ranges) {
        const bytes = await readAll(await fixture.store.read(layer.digest, range));
        assert.ok(bytes.equals(layer.bytes.subarray(range.start, range.end + 1)), `range ${range.start}-${range.end}`);
      }
    });

    it('clamps a range end past the end of the blob', async () => {
      const blob = image.config;
      const bytes = await readAll(await fixture.store.read(blob.digest, { start: 10, end: blob.bytes.length + 1000 }));
      assert.ok(bytes.equals(blob.bytes.subarray(10)));
    });

    it('rejects reads of absent content with NotFoundError', async () => {
      await assert.rejects(fixture.store.read(ABSENT), NotFoundError);
      await assert.rejects(fixture.store.read(ABSENT, { start: 0, end: 10 }), NotFoundError);
      await assert.rejects(fixture.store.read('sha256:../../etc/passwd'), NotFoundError);
    });

    it('forgets removed content at once', async () => {
      const layer = other.layers[0];
      assert.ok(layer !== undefined);
      assert.ok((await fixture.store.stat(layer.digest)) !== undefined);
      await fixture.remove(layer.digest);
      assert.equal(await fixture.store.stat(layer.digest), undefined);
      await assert.rejects(fixture.store.read(layer.digest), NotFoundError);
      // The rest of the image is still there.
      assert.equal((await fixture.store.stat(other.config.digest))?.size, other.config.bytes.length);
    });
  });
}
