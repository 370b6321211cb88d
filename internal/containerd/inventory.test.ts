// The image inventory against the in-memory containerd twin (no containerd
// needed): listing and walking shared per target, each kind of change, gc
// settle, deletions while a step runs, retries, the re-walk safety net and
// the single flight of refreshes. The real containerd checks the same
// behaviour through the node's keys (internal/state/node-state.containerd.test.ts).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, type TestImage } from '../oci/storetest/conformance.ts';
import { waitFor } from '../../tests/support/process.ts';
import { createMemoryContainerd, type MemoryContainerd } from './containerdtest/memory.ts';
import { createImageInventory, type ImageInventory, type ImageInventoryOptions } from './inventory.ts';

const logger = createLogger('silent');
const put = (twin: MemoryContainerd, image: TestImage, name = image.reference): Promise<void> =>
  twin.putImage(name, image.manifest, imageBlobs(image).slice(1));
const digestsOf = (inventory: ImageInventory, name: string): string[] => {
  const target = inventory.images().get(name);
  return target === undefined ? [] : (inventory.contentOf(target) ?? []).map((d) => d.digest);
};
const eventually = (what: string, check: () => boolean): Promise<void> => waitFor(what, async () => check(), 3000, 5);

function setup(options: Partial<ImageInventoryOptions> = {}): { twin: MemoryContainerd; inventory: ImageInventory; close(): void } {
  const twin = createMemoryContainerd();
  const inventory = createImageInventory({ client: twin, logger, rewalkIntervalMs: 0, gcSettleMs: 50, retryMs: 50, ...options });
  return { twin, inventory, close: () => inventory.close() };
}

it('lists and walks every image, one walk per target, with media types', async (t) => {
  const { twin, inventory, close } = setup();
  t.after(close);
  const a = makeTestImage('docker.io/t/a:v1', [10, 20]);
  await put(twin, a);
  await put(twin, a, 'docker.io/t/a:alias');
  let changes = 0;
  inventory.onChange(() => changes++);
  await inventory.refresh(true);
  assert.deepEqual([...inventory.images().keys()].sort(), ['docker.io/t/a:alias', 'docker.io/t/a:v1']);
  assert.deepEqual(
    digestsOf(inventory, a.reference).sort(),
    imageBlobs(a)
      .map((b) => b.digest)
      .sort(),
  );
  assert.equal(twin.calls.contentInfo, imageBlobs(a).length, 'two images with one target: one walk');
  assert.equal(inventory.mediaType(a.config.digest), a.config.mediaType);
  assert.ok(changes >= 1 && inventory.lastFullWalkMs() > 0);

  twin.resetCalls();
  await inventory.refresh();
  assert.equal(twin.calls.contentInfo, 0, 'a relist walks new targets only');
  await inventory.refresh(true);
  assert.equal(twin.calls.contentInfo, imageBlobs(a).length, 'force: every target again');
});

it('follows created, updated and deleted images; a full re-walk once gc settled', async (t) => {
  const { twin, inventory, close } = setup();
  t.after(close);
  const a = makeTestImage('docker.io/t/a:v1', [10]);
  const b = makeTestImage('docker.io/t/b:v1', [10]);
  await inventory.refresh(true);
  await put(twin, a);
  inventory.observe({ kind: 'image-created', name: a.reference });
  await eventually('a walked', () => digestsOf(inventory, a.reference).length === imageBlobs(a).length);

  // Same target, more content (another platform): an update walks it again.
  await twin.deleteContent(a.layers[0]!.digest);
  await inventory.refresh(true);
  assert.ok(!digestsOf(inventory, a.reference).includes(a.layers[0]!.digest));
  await twin.putBlobs([a.layers[0]!]);
  inventory.observe({ kind: 'image-updated', name: a.reference });
  await eventually('layer back', () => digestsOf(inventory, a.reference).includes(a.layers[0]!.digest));

  await put(twin, b);
  await inventory.refresh();
  twin.deleteImage(a.reference);
  twin.resetCalls();
  inventory.observe({ kind: 'image-deleted', name: a.reference });
  assert.ok(!inventory.images().has(a.reference), 'dropped at once');
  assert.equal(inventory.mediaType(a.config.digest), undefined);
  await eventually('full re-walk after gc settled', () => twin.calls.listImages >= 1);
  assert.ok(inventory.images().has(b.reference));
});

it('drops deleted content at once, and again when deleted while a step runs', async (t) => {
  const { twin, inventory, close } = setup();
  t.after(close);
  const a = makeTestImage('docker.io/t/a:v1', [10, 20]);
  await put(twin, a);
  await inventory.refresh(true);
  const [first, second] = a.layers.map((l) => l.digest) as [string, string];
  await twin.deleteContent(first);
  inventory.observe({ kind: 'content-deleted', digest: first });
  assert.ok(!digestsOf(inventory, a.reference).includes(first), 'dropped at once');

  // A walk that saw the content before the delete must not bring it back.
  let releaseManifest = (): void => undefined;
  let release = (): void => undefined;
  twin.hold(new Promise<void>((resolve) => (releaseManifest = resolve)), ['contentInfo']);
  twin.resetCalls();
  const relist = inventory.refresh(true);
  await eventually('manifest asked', () => twin.calls.contentInfo === 1);
  // The manifest's children are asked (and seen present) next, and answer once released.
  twin.hold(new Promise<void>((resolve) => (release = resolve)), ['contentInfo']);
  releaseManifest();
  await eventually('children asked', () => twin.calls.contentInfo === imageBlobs(a).length);
  await twin.deleteContent(second);
  inventory.observe({ kind: 'content-deleted', digest: second });
  twin.hold(undefined);
  release();
  await relist;
  assert.ok(!digestsOf(inventory, a.reference).includes(second), 'dropped again after the step');
  await eventually('image walked again', () => twin.calls.getImage >= 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(!digestsOf(inventory, a.reference).includes(second));
  assert.ok(digestsOf(inventory, a.reference).includes(a.manifest.digest));
});

it('rejects a refresh while containerd is away and retries on its own', async (t) => {
  const { twin, inventory, close } = setup();
  t.after(close);
  const a = makeTestImage('docker.io/t/a:v1', [10]);
  await put(twin, a);
  twin.failWith(new Error('containerd away'));
  await assert.rejects(inventory.refresh(true), /containerd away/);
  twin.failWith(undefined);
  await eventually('retried', () => inventory.images().has(a.reference));
});

it('re-walks every image periodically (safety net)', async (t) => {
  const { twin, inventory, close } = setup({ rewalkIntervalMs: 30 });
  t.after(close);
  const a = makeTestImage('docker.io/t/a:v1', [10]);
  await inventory.refresh(true);
  await put(twin, a);
  await eventually('found without an event', () => inventory.images().has(a.reference));
});

it('refreshes asked for while one runs share the next relist (single flight)', async (t) => {
  const { twin, inventory, close } = setup();
  t.after(close);
  await put(twin, makeTestImage('docker.io/t/a:v1', [10]));
  let release = (): void => undefined;
  twin.hold(new Promise<void>((resolve) => (release = resolve)));
  const first = inventory.refresh();
  await eventually('first waiting', () => twin.calls.listImages === 1);
  twin.hold(undefined);
  const others = Array.from({ length: 5 }, (_, i) => inventory.refresh(i === 2));
  release();
  await Promise.all([first, ...others]);
  assert.equal(twin.calls.listImages, 2, 'one run, then one more for all that came meanwhile');
});

it('a listener that throws does not stop the others; close() stops the timers and settles waiters', async () => {
  const { twin, inventory } = setup({ rewalkIntervalMs: 10 });
  let told = 0;
  inventory.onChange(() => {
    throw new Error('boom');
  });
  const off = inventory.onChange(() => told++);
  await inventory.refresh(true);
  assert.ok(told >= 1);
  off();
  inventory.close();
  twin.resetCalls();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(twin.calls.listImages, 0);
  await inventory.refresh(true);
});
