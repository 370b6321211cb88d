// The containerd store on the in-memory containerd twin (no containerd
// needed): the ContentStore conformance suite, and imagedOnly()'s misses from
// memory, tags and manifests from memory (imaged-view.test.ts has the rest).
// store.containerd.test.ts runs the same against the real containerd (the
// conformance check of the twin).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, runStoreConformance } from '../oci/storetest/conformance.ts';
import { createMemoryContainerd } from './containerdtest/memory.ts';
import { createImageInventory } from './inventory.ts';
import { createContainerdStore } from './store.ts';

const logger = createLogger('silent');

runStoreConformance('containerd store on the in-memory twin', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-twin-'));
  const twin = createMemoryContainerd({ contentPath: dir });
  const store = createContainerdStore({ client: twin, contentPath: dir, logger });
  return {
    store,
    add: (image) => twin.putImage(image.reference, image.manifest, imageBlobs(image).slice(1)),
    remove: (digest) => twin.deleteContent(digest),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('containerd store on the in-memory twin: imagedOnly()', () => {
  it('serves only listed content of accepted images; misses cost no call', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'mirra-twin-'));
    const twin = createMemoryContainerd({ contentPath: dir });
    const inventory = createImageInventory({ client: twin, contentPath: dir, logger, rewalkIntervalMs: 0 });
    t.after(async () => {
      inventory.close();
      await rm(dir, { recursive: true, force: true });
    });
    const store = createContainerdStore({ client: twin, contentPath: dir, logger, inventory });
    const view = store.imagedOnly((name) => name.startsWith('docker.io/'));
    const mine = makeTestImage('docker.io/t/mine:v1', [50]);
    const secret = makeTestImage('private.example/t/secret:v1', [60]);
    for (const image of [mine, secret]) await twin.putImage(image.reference, image.manifest, imageBlobs(image).slice(1));
    const layer = mine.layers[0]!;
    assert.equal(await view.stat(layer.digest), undefined, 'before the first walk nothing is listed');

    await inventory.refresh(true);
    twin.resetCalls();
    for (const digest of [secret.layers[0]!.digest, `sha256:${'ab'.repeat(32)}`]) {
      assert.equal(await view.stat(digest), undefined);
      assert.equal(await view.openFile(digest), undefined);
      await assert.rejects(view.read(digest), { name: 'NotFoundError' });
    }
    assert.equal(await view.resolve(secret.reference), undefined);
    assert.equal(await view.resolve('docker.io/t/mine:nowhere'), undefined);
    assert.equal(twin.calls.contentInfo + twin.calls.getImage, 0, 'a miss costs no call');

    assert.equal((await view.stat(layer.digest))?.mediaType, layer.mediaType);
    const file = await view.openFile(layer.digest);
    assert.ok(file !== undefined);
    await file.close();
    twin.resetCalls();
    const together = await Promise.all(Array.from({ length: 10 }, () => view.resolve(mine.reference)));
    assert.deepEqual(new Set(together), new Set([mine.manifest.digest]));
    assert.equal(twin.calls.getImage, 0, 'tags resolve from the inventory, without an images Get');
    const manifest = await view.stat(mine.manifest.digest);
    assert.deepEqual(manifest, { digest: mine.manifest.digest, size: mine.manifest.bytes.length, mediaType: mine.manifest.mediaType });
    assert.equal(twin.calls.contentInfo, 0, 'manifests from the inventory and their file, without a content Info');

    // Deleted content (with its event) is a miss from memory at once.
    await twin.deleteContent(layer.digest);
    inventory.observe({ kind: 'content-deleted', digest: layer.digest });
    twin.resetCalls();
    assert.equal(await view.stat(layer.digest), undefined);
    assert.equal(twin.calls.contentInfo, 0);
  });
});
