// The ContentStore conformance suite against a real containerd.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { MediaType } from '../oci/mediatype.ts';
import { imageBlobs, makeTestImage, readAll, runStoreConformance, testBlob } from '../oci/storetest/conformance.ts';
import { waitFor } from '../../tests/support/process.ts';
import { importImage, startContainerd, startTempContainerd } from '../../tests/support/containerd.ts';
import { createContainerdClient, type ContainerdClient } from './client.ts';
import { watchChanges, type ChangeWatcher } from './events.ts';
import { createContainerdStore, type ContainerdStore } from './store.ts';

runStoreConformance('containerd store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-ctd-'));
  const ctd = await startContainerd({ dir, name: 'containerd-store' });
  const client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
  const store = createContainerdStore({ client, contentPath: ctd.contentDir, logger: createLogger('silent') });
  return {
    store,
    async add(image) {
      await importImage(ctd, { reference: image.reference, root: image.manifest, blobs: imageBlobs(image).slice(1) });
    },
    async remove(digest) {
      await ctd.ctr(['content', 'rm', digest]);
    },
    async teardown() {
      client.close();
      await ctd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** containerd's events fed to the store; resolves with the watcher once the first resync arrived. */
function followEvents(client: ContainerdClient, store: { observe: ContainerdStore['observe'] }): Promise<ChangeWatcher> {
  return new Promise((resolve) => {
    const watcher: ChangeWatcher = watchChanges({
      client,
      logger: createLogger('silent'),
      onChange: (c) => {
        store.observe(c);
        if (c.kind === 'resync') resolve(watcher);
      },
      settleMs: 20,
    });
  });
}

describe('containerd store media types follow containerd', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
  let client: ContainerdClient;
  let watcher: ChangeWatcher | undefined;

  before(async () => {
    ctd = await startTempContainerd('containerd-store-types');
    client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
  });
  after(async () => {
    watcher?.close();
    client?.close();
    await ctd?.dispose();
  });

  it('learns the media types of a platform pulled later into the same index', async () => {
    const amd64 = makeTestImage('docker.io/mirra-test/types:amd64', [100]);
    const arm64 = makeTestImage('docker.io/mirra-test/types:arm64', [200]);
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.dockerManifestList,
      manifests: [amd64, arm64].map((i) => ({ mediaType: i.manifest.mediaType, digest: i.manifest.digest, size: i.manifest.bytes.length })),
    };
    const index = testBlob(Buffer.from(JSON.stringify(doc)), MediaType.dockerManifestList);
    const reference = 'docker.io/mirra-test/types:v1';
    // Only amd64 is present at first.
    await importImage(ctd, { reference, root: index, blobs: [...imageBlobs(amd64), ...imageBlobs(arm64)] });
    await ctd.ctr(['content', 'rm', arm64.manifest.digest]);

    const store = createContainerdStore({ client, contentPath: ctd.contentDir, logger: createLogger('silent'), fullWalkIntervalMs: 3_600_000 });
    watcher = await followEvents(client, store);
    assert.equal(await store.resolve(reference), index.digest);
    assert.deepEqual(await store.stat(index.digest), { digest: index.digest, size: index.bytes.length, mediaType: MediaType.dockerManifestList });
    assert.equal((await store.stat(amd64.config.digest))?.mediaType, MediaType.ociConfig);
    assert.equal(await store.stat(arm64.manifest.digest), undefined);

    // Now arm64 arrives under the same image (same target): containerd sends /images/update.
    await importImage(ctd, { reference, root: index, blobs: [...imageBlobs(amd64), ...imageBlobs(arm64)] });
    await waitFor('arm64 media types', async () => (await store.stat(arm64.layers[0]!.digest))?.mediaType === MediaType.ociLayerGzip, 5000, 20);
    assert.equal((await store.stat(arm64.manifest.digest))?.mediaType, MediaType.ociManifest);
  });

  it('imagedOnly(): only content of the accepted images; other digests, tags and manifests without a gRPC call', async () => {
    let infoCalls = 0;
    let imageCalls = 0;
    const counting: ContainerdClient = {
      ...client,
      contentInfo: (digest) => {
        infoCalls++;
        return client.contentInfo(digest);
      },
      getImage: (name) => {
        imageCalls++;
        return client.getImage(name);
      },
    };
    const first = makeTestImage('docker.io/mirra-test/imaged:one', [300]);
    const second = makeTestImage('docker.io/mirra-test/imaged:two', [400]);
    const private_ = makeTestImage('private.example/team/secret:v1', [500]);
    await importImage(ctd, { reference: first.reference, root: first.manifest, blobs: imageBlobs(first).slice(1) });
    await importImage(ctd, { reference: private_.reference, root: private_.manifest, blobs: imageBlobs(private_).slice(1) });
    const store = createContainerdStore({ client: counting, contentPath: ctd.contentDir, logger: createLogger('silent') });
    const view = store.imagedOnly((name) => name.startsWith('docker.io/'));
    const layer = first.layers[0]!;

    // Before the first walk nothing is listed.
    assert.equal(await view.stat(layer.digest), undefined);

    await store.refresh();
    infoCalls = 0;
    imageCalls = 0;
    const nowhere = `sha256:${'ab'.repeat(32)}`;
    const secret = private_.layers[0]!.digest;
    for (const digest of [nowhere, secret]) {
      assert.equal(await view.stat(digest), undefined);
      assert.equal(await view.openFile(digest), undefined);
      await assert.rejects(view.read(digest), { name: 'NotFoundError' });
    }
    assert.equal(await view.resolve(private_.reference), undefined, 'no tag of an image that is not accepted');
    assert.equal(await view.resolve('docker.io/mirra-test/imaged:nowhere'), undefined, 'no tag no image had');
    assert.equal(infoCalls + imageCalls, 0, 'a miss costs no call to containerd');
    assert.equal((await store.stat(secret))?.size, private_.layers[0]!.bytes.length, 'the full store has it');

    // Accepted content is still checked with containerd, and read.
    infoCalls = 0;
    assert.equal((await view.stat(layer.digest))?.mediaType, layer.mediaType);
    assert.ok(infoCalls >= 1);
    const file = await view.openFile(layer.digest);
    assert.ok(file !== undefined);
    await file.close();
    // Tags and manifests: from the inventory and the manifest's file, without a gRPC call.
    infoCalls = 0;
    imageCalls = 0;
    const together = await Promise.all(Array.from({ length: 10 }, () => view.resolve(first.reference)));
    assert.deepEqual(new Set(together), new Set([first.manifest.digest]));
    assert.deepEqual(await view.stat(first.manifest.digest), {
      digest: first.manifest.digest,
      size: first.manifest.bytes.length,
      mediaType: first.manifest.mediaType,
    });
    assert.ok((await readAll(await view.read(first.manifest.digest))).equals(first.manifest.bytes));
    assert.equal(infoCalls + imageCalls, 0, 'a tag and its manifest cost no call to containerd');

    // Content that arrived since the last walk: present for the store, not for the view, until the next walk.
    await importImage(ctd, { reference: second.reference, root: second.manifest, blobs: imageBlobs(second).slice(1) });
    const fresh = second.layers[0]!;
    assert.equal(await view.stat(fresh.digest), undefined);
    assert.equal(await view.resolve(second.reference), undefined);
    assert.equal((await store.stat(fresh.digest))?.size, fresh.bytes.length);
    assert.equal(await store.resolve(second.reference), second.manifest.digest);
    await store.refresh();
    assert.equal((await view.stat(fresh.digest))?.size, fresh.bytes.length);
    assert.equal(await view.resolve(second.reference), second.manifest.digest);

    // With containerd's events followed, a deleted tag and deleted content are misses once their event arrived.
    watcher?.close();
    watcher = await followEvents(client, store);
    await store.refresh();
    await ctd.ctr(['images', 'rm', second.reference]);
    await waitFor('the deleted tag to miss', async () => (await view.resolve(second.reference)) === undefined, 5000, 10);
    assert.equal(await view.stat(second.manifest.digest), undefined, 'its manifest is no longer served');
    await ctd.ctr(['content', 'rm', first.manifest.digest]);
    await waitFor('the deleted manifest to miss', async () => (await view.stat(first.manifest.digest)) === undefined, 5000, 10);
    await assert.rejects(view.read(first.manifest.digest), { name: 'NotFoundError' });

    // Removed blobs are gone for both at once, event or not (containerd is asked for listed layers).
    await ctd.ctr(['content', 'rm', layer.digest]);
    assert.equal(await view.stat(layer.digest), undefined);
    assert.equal(await store.stat(layer.digest), undefined);
  });
});
