// The served view (imaged-view.ts) behind the registry app, on the in-memory
// containerd twin writing a real content directory: tags and manifests
// answered without a gRPC call; a deleted tag, deleted content, a corrupted
// or vanished manifest file are 404s (MANIFEST_UNKNOWN), never wrong bytes or
// a 500; a content directory that is not there falls back to containerd.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout } from 'node:timers/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, type TestImage } from '../oci/storetest/conformance.ts';
import { waitFor } from '../../tests/support/process.ts';
import { captureLog, createTestApp, type CapturedLog } from '../../tests/support/registry/testkit.ts';
import { blobPath } from './blobs.ts';
import { createMemoryContainerd, type MemoryContainerd } from './containerdtest/memory.ts';
import { createImageInventory, type ImageInventory } from './inventory.ts';
import { createContainerdStore } from './store.ts';

const logger = createLogger('silent');

interface Fixture {
  twin: MemoryContainerd;
  inventory: ImageInventory;
  app: FastifyInstance;
  log: CapturedLog;
  image: TestImage;
  contentPath: string;
  /** Calls to containerd since the last resetCalls(). */
  calls(): number;
}

interface FixtureOptions {
  /** The agent's --containerd-content-path (default: where the twin writes). */
  contentPath?: string;
  manifestCacheBytes?: number;
}

async function setup(t: { after(fn: () => Promise<void>): void }, options: FixtureOptions = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-view-'));
  const twin = createMemoryContainerd({ contentPath: dir });
  const contentPath = options.contentPath ?? dir;
  const log = captureLog();
  const logged = createLogger('info', log);
  const inventory = createImageInventory({ client: twin, contentPath, logger, rewalkIntervalMs: 0, gcSettleMs: 50, retryMs: 50 });
  const store = createContainerdStore({ client: twin, contentPath, logger: logged, inventory, manifestCacheBytes: options.manifestCacheBytes });
  const view = store.imagedOnly((name) => name.startsWith('docker.io/'));
  const { app } = createTestApp({ store: view, logger: logged });
  t.after(async () => {
    await app.close();
    inventory.close();
    await rm(dir, { recursive: true, force: true });
  });
  const image = makeTestImage('docker.io/t/app:v1', [64]);
  await twin.putImage(image.reference, image.manifest, imageBlobs(image).slice(1));
  await inventory.refresh(true);
  twin.resetCalls();
  const calls = (): number => Object.values(twin.calls).reduce((a, b) => a + b, 0);
  return { twin, inventory, app, log, image, contentPath: dir, calls };
}

const byTag = '/v2/t/app/manifests/v1?ns=docker.io';
const byDigest = (image: TestImage): string => `/v2/t/app/manifests/${image.manifest.digest}?ns=docker.io`;

async function codeOf(app: FastifyInstance, url: string, method: 'GET' | 'HEAD' = 'GET'): Promise<number> {
  return (await app.inject({ method, url })).statusCode;
}

for (const manifestCacheBytes of [undefined, 0]) {
  const label = manifestCacheBytes === 0 ? ' (no cache)' : '';

  it(`a tag and a manifest are answered without any call to containerd${label}`, async (t) => {
    const { app, image, calls } = await setup(t, { manifestCacheBytes });
    for (let i = 0; i < 3; i++) {
      for (const url of [byTag, byDigest(image)]) {
        const get = await app.inject({ url });
        assert.equal(get.statusCode, 200, url);
        assert.ok(get.rawPayload.equals(image.manifest.bytes));
        assert.equal(get.headers['content-type'], image.manifest.mediaType);
        assert.equal(get.headers['docker-content-digest'], image.manifest.digest);
        const head = await app.inject({ method: 'HEAD', url });
        assert.equal(head.statusCode, 200);
        assert.equal(head.headers['content-length'], String(image.manifest.bytes.length));
      }
    }
    assert.equal(calls(), 0, 'no images Get, no content Info, no Read');
    // Blobs keep their path: containerd is asked.
    assert.equal((await app.inject({ url: `/v2/t/app/blobs/${image.layers[0]!.digest}?ns=docker.io` })).statusCode, 200);
    assert.ok(calls() >= 1);
  });

  it(`a deleted image's tag is a 404 once its event arrived${label}`, async (t) => {
    const { twin, inventory, app, image } = await setup(t, { manifestCacheBytes });
    assert.equal(await codeOf(app, byTag), 200);
    twin.deleteImage(image.reference);
    inventory.observe({ kind: 'image-deleted', name: image.reference });
    for (const method of ['GET', 'HEAD'] as const) assert.equal(await codeOf(app, byTag, method), 404);
    // The manifest is no longer held by an image the view serves: by digest too.
    assert.equal(await codeOf(app, byDigest(image)), 404);
  });

  it(`deleted content is a 404 once its event arrived${label}`, async (t) => {
    const { twin, inventory, app, image, calls } = await setup(t, { manifestCacheBytes });
    assert.equal(await codeOf(app, byDigest(image)), 200);
    await twin.deleteContent(image.manifest.digest);
    inventory.observe({ kind: 'content-deleted', digest: image.manifest.digest });
    const misses = async (): Promise<void> => {
      for (const url of [byTag, byDigest(image)]) {
        const res = await app.inject({ url });
        assert.equal(res.statusCode, 404, url);
        assert.match(res.body, /MANIFEST_UNKNOWN/);
      }
    };
    await misses();
    // Once the inventory has walked the image again (its event asked for that), a miss costs no call.
    await inventory.refresh();
    twin.resetCalls();
    await misses();
    assert.equal(calls(), 0, 'the view answers from memory');
  });

  it(`a manifest whose file vanished (no event) is a 404 from 5 ms after${label}`, async (t) => {
    const { app, image, contentPath } = await setup(t, { manifestCacheBytes });
    assert.equal(await codeOf(app, byDigest(image)), 200, 'cached when the cache is on');
    await rm(blobPath(contentPath, image.manifest.digest));
    // A look that the file is there counts for 5 ms (manifest-files.ts, LOOK_VALID_MS).
    await setTimeout(10);
    for (const url of [byTag, byDigest(image)]) {
      for (const method of ['GET', 'HEAD'] as const) assert.equal(await codeOf(app, url, method), 404, `${method} ${url}`);
    }
  });

  it(`a manifest file corrupted on disk is a 404, never wrong bytes${label}`, async (t) => {
    const { app, log, image, contentPath } = await setup(t, { manifestCacheBytes });
    const path = blobPath(contentPath, image.manifest.digest);
    // Same size, other bytes; then another size.
    const flipped = Buffer.from(image.manifest.bytes);
    flipped[10] = flipped[10] === 0x20 ? 0x21 : 0x20;
    for (const bytes of [flipped, Buffer.concat([image.manifest.bytes, Buffer.from(' ')])]) {
      await writeFile(path, bytes);
      for (const url of [byTag, byDigest(image)]) {
        for (const method of ['GET', 'HEAD'] as const) {
          const res = await app.inject({ method, url });
          assert.equal(res.statusCode, 404, `${method} ${url}`);
          assert.equal(res.headers['docker-content-digest'], undefined);
        }
      }
    }
    assert.ok(log.lines.some((line) => line.level === 40 && typeof line.msg === 'string' && line.msg.includes('does not match')));
    // Repaired: served again.
    await writeFile(path, image.manifest.bytes);
    assert.equal(await codeOf(app, byDigest(image)), 200);
  });
}

it('a content directory that is not there (not mounted): manifests are asked of containerd', async (t) => {
  const { app, image, calls } = await setup(t, { contentPath: join(tmpdir(), 'mirra-view-not-mounted') });
  const get = await app.inject({ url: byTag });
  assert.equal(get.statusCode, 200);
  assert.ok(get.rawPayload.equals(image.manifest.bytes));
  assert.ok(calls() >= 2, 'content Info and Read');
});

it('a tag that moved is answered with its new target once the image was walked again', async (t) => {
  const { twin, inventory, app, image } = await setup(t);
  const next = makeTestImage('docker.io/t/app:v2', [32]);
  await twin.putImage(image.reference, next.manifest, imageBlobs(next).slice(1));
  assert.equal((await app.inject({ url: byTag })).headers['docker-content-digest'], image.manifest.digest, 'the previous target until the walk');
  inventory.observe({ kind: 'image-updated', name: image.reference });
  await waitFor('the moved tag', async () => (await app.inject({ url: byTag })).headers['docker-content-digest'] === next.manifest.digest, 3000, 5);
  const moved = await app.inject({ url: byTag });
  assert.equal(moved.statusCode, 200);
  assert.ok(moved.rawPayload.equals(next.manifest.bytes));
});
