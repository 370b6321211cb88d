// The node's keys as a view of the image inventory, on the in-memory
// containerd twin (no containerd needed). node-state.containerd.test.ts checks the same
// against the real containerd and its events.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createMemoryContainerd } from '../containerd/containerdtest/memory.ts';
import { createImageInventory } from '../containerd/inventory.ts';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, type TestImage } from '../oci/storetest/conformance.ts';
import { createNodeState, mirroredImages } from './node-state.ts';

const logger = createLogger('silent');
const keysOf = (image: TestImage): string[] => [image.reference, ...imageBlobs(image).map((b) => b.digest)];

it('mirrored registries: none listed means every image', () => {
  assert.equal(mirroredImages([])('private.example/x:v1'), true);
  assert.equal(mirroredImages(['Docker.IO'])('docker.io/library/nginx:1'), true);
  assert.equal(mirroredImages(['docker.io'])('ghcr.io/x:v1'), false);
});

it('keys: references and present digests of mirrored images; onChange only on a real change', async (t) => {
  const twin = createMemoryContainerd();
  const inventory = createImageInventory({ client: twin, logger, rewalkIntervalMs: 0, gcSettleMs: 10_000 });
  const a = makeTestImage('docker.io/t/a:v1', [10]);
  const g = makeTestImage('ghcr.io/t/g:v1', [10]);
  for (const image of [a, g]) await twin.putImage(image.reference, image.manifest, imageBlobs(image).slice(1));
  const seen: ReadonlySet<string>[] = [];
  const state = createNodeState({ inventory, mirroredRegistries: ['docker.io'], logger, onChange: (keys) => seen.push(keys) });
  t.after(() => {
    state.close();
    inventory.close();
  });
  await state.refresh();
  assert.deepEqual([...state.keys()].sort(), keysOf(a).sort());
  assert.equal(seen.length, 1);
  await state.refresh();
  assert.equal(seen.length, 1, 'no onChange when nothing changed');

  const layer = a.layers[0]!.digest;
  await twin.deleteContent(layer);
  inventory.observe({ kind: 'content-deleted', digest: layer });
  assert.ok(!state.keys().has(layer), 'dropped at once');
  twin.deleteImage(a.reference);
  inventory.observe({ kind: 'image-deleted', name: a.reference });
  assert.equal(state.keys().size, 0);

  state.close();
  const before = seen.length;
  await twin.putImage(a.reference, a.manifest, imageBlobs(a).slice(1));
  await inventory.refresh(true);
  assert.equal(seen.length, before, 'closed: no longer follows the inventory');
});
