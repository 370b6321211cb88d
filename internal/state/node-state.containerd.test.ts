// The node's keys against a real containerd (conformance of the inventory and its keys view; needs containerd).
import assert from 'node:assert/strict';
import { after, before, describe, it, test } from 'node:test';
import { createContainerdClient, type ContainerdClient } from '../containerd/client.ts';
import { createImageInventory, type ImageInventory } from '../containerd/inventory.ts';
import { watchChanges, type ChangeWatcher } from '../containerd/events.ts';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, type TestImage } from '../oci/storetest/conformance.ts';
import { importImage, startTempContainerd } from '../../tests/support/containerd.ts';
import { waitFor } from '../../tests/support/process.ts';
import { createNodeState, registryOfImage, type NodeState } from './node-state.ts';

const logger = createLogger('silent');
const keysOf = (image: TestImage): string[] => [image.reference, ...imageBlobs(image).map((b) => b.digest)];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('the registry of an image name is its first component', () => {
  assert.equal(registryOfImage('docker.io/library/nginx:1.27'), 'docker.io');
  assert.equal(registryOfImage('Registry.Example:5000/a/b@sha256:00'), 'registry.example:5000');
  assert.equal(registryOfImage('import-2024-01-01'), '');
});

// The fixture of the suite below (module level: the suite's body stays short).
let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
let client: ContainerdClient;
let inventory: ImageInventory;
let state: NodeState;
let watcher: ChangeWatcher;
/** Events pass to the state only while the gate is open (closed: events are lost, as while disconnected). */
let gateOpen = true;
let changes = 0;
const a = makeTestImage('docker.io/mirra-test/a:v1', [1000, 2000]);
const ghcr = makeTestImage('ghcr.io/mirra-test/g:v1', [500]);
const c = makeTestImage('docker.io/mirra-test/c:v1', [700]);
const d = makeTestImage('docker.io/mirra-test/d:v1', [300]);
const add = (image: TestImage): Promise<void> => importImage(ctd, { reference: image.reference, root: image.manifest, blobs: imageBlobs(image).slice(1) });
const has = (key: string): boolean => state.keys().has(key);
const eventually = (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> => waitFor(what, async () => check(), timeoutMs, 20);

/** containerd with images a and ghcr, the inventory and its keys fed by the events. */
async function startFixture(): Promise<void> {
  ctd = await startTempContainerd('containerd-state');
  client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
  await add(a);
  await add(ghcr);
  inventory = createImageInventory({ client, logger, contentPath: ctd.contentDir, gcSettleMs: 200 });
  state = createNodeState({ inventory, mirroredRegistries: ['docker.io'], logger, onChange: () => changes++ });
  watcher = watchChanges({ client, logger, onChange: (change) => gateOpen && inventory.observe(change) });
  await eventually('events connected', () => watcher.connected);
}

async function stopFixture(): Promise<void> {
  watcher?.close();
  state?.close();
  inventory?.close();
  client?.close();
  await ctd?.dispose();
}

describe('node state against containerd', () => {
  before(startFixture);
  after(stopFixture);

  it('holds the references and present digests of mirrored images only', async () => {
    await state.refresh();
    assert.deepEqual([...state.keys()].sort(), keysOf(a).sort());
    const before = changes;
    await state.refresh();
    assert.equal(changes, before, 'no onChange when nothing changed');
  });

  it('follows a new image', async () => {
    const before = changes;
    await add(c);
    await eventually('c keys', () => keysOf(c).every(has));
    assert.ok(changes > before);
    assert.ok(keysOf(a).every(has));
  });

  it('follows a re-tag and image deletions, keeping shared digests', async () => {
    await ctd.ctr(['images', 'tag', a.reference, 'docker.io/mirra-test/a:v2']);
    await eventually('a:v2', () => has('docker.io/mirra-test/a:v2'));
    await ctd.ctr(['images', 'rm', a.reference]);
    await eventually('a:v1 gone', () => !has(a.reference));
    assert.ok(
      imageBlobs(a).every((blob) => has(blob.digest)),
      'a:v2 still has the content',
    );
    await ctd.ctr(['images', 'rm', '--sync', 'docker.io/mirra-test/a:v2']);
    await eventually('a content gone', () => imageBlobs(a).every((blob) => !has(blob.digest)));
    assert.ok(keysOf(c).every(has), 'other images untouched');
    await sleep(400); // the follow-up re-walk after garbage collection
    assert.ok(keysOf(c).every(has));
    assert.ok(!has('docker.io/mirra-test/a:v2'));
  });

  it('drops deleted content', async () => {
    const layer = c.layers[0]!.digest;
    await ctd.ctr(['content', 'rm', layer]);
    await eventually('layer gone', () => !has(layer));
    assert.ok(has(c.reference) && has(c.manifest.digest));
  });

  it('catches up with lost events on the resync after containerd restarts', async () => {
    gateOpen = false;
    await add(d);
    await sleep(300);
    assert.ok(!has(d.reference), 'the event was lost');
    gateOpen = true;
    await ctd.restart();
    await eventually('d after resync', () => keysOf(d).every(has), 20_000);
  });

  it('a periodic re-walk catches what no event announced', async (t) => {
    let seen: ReadonlySet<string> = new Set();
    const periodicInventory = createImageInventory({ client, logger, rewalkIntervalMs: 200 });
    const periodic = createNodeState({ inventory: periodicInventory, mirroredRegistries: [], logger, onChange: (keys) => (seen = keys) });
    t.after(() => {
      periodic.close();
      periodicInventory.close();
    });
    await periodic.refresh();
    assert.ok(seen.has(ghcr.reference), 'empty filter: every registry');
    assert.ok(seen.has(d.reference));
    await ctd.ctr(['images', 'rm', d.reference]);
    await eventually('d gone without events', () => !seen.has(d.reference), 5000);
  });
});
