import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MediaType } from '../oci/mediatype.ts';
import { imageBlobs, makeTestImage, testBlob, type TestBlob, type TestImage } from '../oci/storetest/conformance.ts';
import { importImage, startTempContainerd } from '../../tests/support/containerd.ts';
import { createContainerdClient, type ContainerdClient } from './client.ts';
import { childDescriptors, walkImage } from './walk.ts';

function descriptor(blob: TestBlob): { mediaType: string; digest: string; size: number } {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length };
}

function indexOf(mediaType: string, images: { image: TestImage; architecture: string }[]): TestBlob {
  const doc = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map(({ image, architecture }) => ({
      ...descriptor(image.manifest),
      platform: { os: 'linux', architecture },
    })),
  };
  return testBlob(Buffer.from(JSON.stringify(doc)), mediaType);
}

const sortByDigest = <T extends { digest: string }>(list: T[]): T[] => [...list].sort((a, b) => a.digest.localeCompare(b.digest));

describe('walkImage', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
  let client: ContainerdClient;
  const amd64 = makeTestImage('docker.io/mirra-test/multi:amd64', [2000, 3000]);
  const arm64 = makeTestImage('docker.io/mirra-test/multi:arm64', [4000]);
  const index = indexOf(MediaType.ociIndex, [
    { image: amd64, architecture: 'amd64' },
    { image: arm64, architecture: 'arm64' },
  ]);
  const single = makeTestImage('docker.io/mirra-test/single:v1', [500]);

  before(async () => {
    ctd = await startTempContainerd('containerd-walk');
    client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
    await importImage(ctd, { reference: 'docker.io/mirra-test/multi:v1', root: index, blobs: [...imageBlobs(amd64), ...imageBlobs(arm64)] });
    await importImage(ctd, { reference: single.reference, root: single.manifest, blobs: imageBlobs(single).slice(1) });
  });
  after(async () => {
    client?.close();
    await ctd?.dispose();
  });

  it('walks an index to every manifest, config and layer', async () => {
    const found = await walkImage(client, descriptor(index));
    const expected = [index, ...imageBlobs(amd64), ...imageBlobs(arm64)].map(descriptor);
    assert.deepEqual(found[0], descriptor(index));
    assert.deepEqual(sortByDigest(found), sortByDigest(expected));
  });

  it('reads manifests from the content directory or over gRPC alike', async () => {
    const viaFiles = await walkImage(client, descriptor(index), { contentPath: ctd.contentDir });
    const viaGrpc = await walkImage(client, descriptor(index), { contentPath: '/nonexistent/content' });
    assert.deepEqual(sortByDigest(viaFiles), sortByDigest(viaGrpc));
    assert.equal(viaFiles.length, 1 + imageBlobs(amd64).length + imageBlobs(arm64).length);
  });

  it('skips content that is absent, and what only it references', async () => {
    // The arm64 platform was "not pulled": its manifest is gone, its config and layer linger.
    await ctd.ctr(['content', 'rm', arm64.manifest.digest]);
    await ctd.ctr(['content', 'rm', amd64.layers[1]!.digest]);
    const found = await walkImage(client, descriptor(index), { contentPath: ctd.contentDir });
    const expected = [index, amd64.manifest, amd64.config, amd64.layers[0]!].map(descriptor);
    assert.deepEqual(sortByDigest(found), sortByDigest(expected));
  });

  it('returns nothing for an absent target', async () => {
    assert.deepEqual(await walkImage(client, { mediaType: MediaType.ociIndex, digest: `sha256:${'3'.repeat(64)}`, size: 10 }), []);
  });

  it('keeps only valid child descriptors of a document', () => {
    const good = { mediaType: MediaType.ociLayerGzip, digest: `sha256:${'a'.repeat(64)}`, size: 5 };
    const doc = {
      config: { mediaType: MediaType.ociConfig, digest: 'sha256:../../etc/passwd', size: 1 },
      layers: [good, { digest: good.digest }, { ...good, size: -1 }, 'nope', null, { ...good, size: 1.5 }],
    };
    assert.deepEqual(childDescriptors(doc, 'manifest'), [good]);
    assert.deepEqual(childDescriptors({ manifests: 'x' }, 'index'), []);
    assert.deepEqual(childDescriptors(null, 'index'), []);
    assert.deepEqual(childDescriptors({ manifests: [good, good] }, 'index'), [good, good]);
  });
});
