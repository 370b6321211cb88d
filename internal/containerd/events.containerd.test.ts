import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, type TestImage } from '../oci/storetest/conformance.ts';
import { waitFor } from '../../tests/support/process.ts';
import { importImage, startTempContainerd } from '../../tests/support/containerd.ts';
import { createContainerdClient, type ContainerdClient } from './client.ts';
import { backoffMs, decodeChange, eventFilters, watchChanges, type ChangeWatcher, type ContainerdChange } from './events.ts';

const logger = createLogger('silent');

/** Collects changes; `next(pred)` waits for the first not yet taken that matches. */
function recorder(): {
  changes: ContainerdChange[];
  onChange(c: ContainerdChange): void;
  next(pred: (c: ContainerdChange) => boolean, timeoutMs?: number): Promise<ContainerdChange>;
} {
  const changes: ContainerdChange[] = [];
  let taken = 0;
  return {
    changes,
    onChange(c) {
      changes.push(c);
    },
    async next(pred, timeoutMs = 10_000) {
      let found: ContainerdChange | undefined;
      await waitFor(
        'a containerd change',
        async () => {
          const i = changes.findIndex((c, idx) => idx >= taken && pred(c));
          if (i < 0) return false;
          found = changes[i];
          taken = i + 1;
          return true;
        },
        timeoutMs,
        20,
      );
      return found!;
    },
  };
}

describe('containerd events', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
  let client: ContainerdClient;
  const add = (image: TestImage, namespace = 'k8s.io') =>
    importImage(ctd, { reference: image.reference, root: image.manifest, blobs: imageBlobs(image).slice(1) }, namespace);

  before(async () => {
    ctd = await startTempContainerd('containerd-events');
    client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
  });
  after(async () => {
    client?.close();
    await ctd?.dispose();
  });

  it('filters on the namespace and the image and content topics', () => {
    assert.deepEqual(eventFilters('k8s.io'), ['namespace=="k8s.io",topic~="/images/"', 'namespace=="k8s.io",topic~="/content/"']);
  });

  it('ignores other namespaces, unknown types and malformed payloads', () => {
    const imageCreate = { typeUrl: 'containerd.services.images.v1.ImageCreate', value: Buffer.from([10, 1, 97]) };
    assert.deepEqual(decodeChange(client, { namespace: 'k8s.io', topic: '/images/create', event: imageCreate }), { kind: 'image-created', name: 'a' });
    assert.equal(decodeChange(client, { namespace: 'moby', topic: '/images/create', event: imageCreate }), undefined);
    assert.equal(decodeChange(client, { namespace: 'k8s.io', topic: '/images/create' }), undefined);
    const garbage = { typeUrl: imageCreate.typeUrl, value: Buffer.from([10, 200]) };
    assert.equal(decodeChange(client, { namespace: 'k8s.io', topic: '/images/create', event: garbage }), undefined);
    const badDigest = { typeUrl: 'containerd.events.ContentDelete', value: Buffer.from([10, 3, 97, 98, 99]) };
    assert.equal(decodeChange(client, { namespace: 'k8s.io', topic: '/content/delete', event: badDigest }), undefined);
    const task = { typeUrl: 'containerd.events.TaskExit', value: Buffer.alloc(0) };
    assert.equal(decodeChange(client, { namespace: 'k8s.io', topic: '/tasks/exit', event: task }), undefined);
  });

  it('backs off exponentially with jitter, capped', () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const ms = backoffMs(attempt, 100, 5000);
      const ceiling = Math.min(5000, 100 * 2 ** attempt);
      assert.ok(ms >= ceiling / 2 - 1 && ms <= ceiling, `attempt ${attempt}: ${ms}`);
    }
  });

  it('emits resync, then image and content changes of its namespace', async () => {
    const rec = recorder();
    const watcher = watchChanges({ client, logger, onChange: rec.onChange, settleMs: 50 });
    try {
      await rec.next((c) => c.kind === 'resync');
      assert.ok(watcher.connected);
      const image = makeTestImage('docker.io/mirra-test/events:v1', [100]);
      await add(makeTestImage('docker.io/mirra-test/other-namespace:v1', [10]), 'default');
      await add(image);
      assert.deepEqual(await rec.next((c) => c.kind !== 'resync'), { kind: 'image-created', name: image.reference });

      await ctd.ctr(['images', 'tag', image.reference, 'docker.io/mirra-test/events:v2']);
      assert.deepEqual(await rec.next(() => true), { kind: 'image-created', name: 'docker.io/mirra-test/events:v2' });

      // Importing a new target under an existing name updates the image.
      await add(makeTestImage(image.reference, [10]));
      assert.deepEqual(await rec.next(() => true), { kind: 'image-updated', name: image.reference });

      await ctd.ctr(['content', 'rm', image.layers[0]!.digest]);
      assert.deepEqual(await rec.next(() => true), { kind: 'content-deleted', digest: image.layers[0]!.digest });

      await ctd.ctr(['images', 'rm', 'docker.io/mirra-test/events:v2']);
      assert.deepEqual(await rec.next(() => true), { kind: 'image-deleted', name: 'docker.io/mirra-test/events:v2' });
      assert.ok(!rec.changes.some((c) => 'name' in c && c.name.includes('other-namespace')));
    } finally {
      watcher.close();
    }
  });

  it('survives a containerd restart: resync, then events and calls work again', async () => {
    const rec = recorder();
    const watcher: ChangeWatcher = watchChanges({ client, logger, onChange: rec.onChange, initialBackoffMs: 50, maxBackoffMs: 400, settleMs: 50 });
    try {
      await rec.next((c) => c.kind === 'resync');
      await ctd.stop();
      await waitFor('the watcher to notice', async () => !watcher.connected, 5000, 20);
      await assert.rejects(client.listImages());
      await ctd.restart();
      await rec.next((c) => c.kind === 'resync');
      assert.ok(watcher.connected);
      const names = (await client.listImages()).map((i) => i.name);
      assert.ok(names.includes('docker.io/mirra-test/events:v1'), names.join(','));
      const image = makeTestImage('docker.io/mirra-test/after-restart:v1', [10]);
      await add(image);
      assert.deepEqual(await rec.next((c) => c.kind !== 'resync'), { kind: 'image-created', name: image.reference });
    } finally {
      watcher.close();
    }
  });

  it('retries until containerd comes up when started without it', async () => {
    await ctd.stop();
    const rec = recorder();
    const watcher = watchChanges({ client, logger, onChange: rec.onChange, initialBackoffMs: 50, maxBackoffMs: 200, settleMs: 50 });
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(rec.changes.length, 0);
      assert.equal(watcher.connected, false);
      await ctd.restart();
      await rec.next((c) => c.kind === 'resync');
    } finally {
      watcher.close();
    }
  });

  it('stops delivering after close, and leaves no timers or streams behind', async () => {
    const rec = recorder();
    const before = process.getActiveResourcesInfo().length;
    const watcher = watchChanges({ client, logger, onChange: rec.onChange, settleMs: 50 });
    await rec.next((c) => c.kind === 'resync');
    watcher.close();
    assert.equal(watcher.connected, false);
    const observer = recorder();
    const witness = watchChanges({ client, logger, onChange: observer.onChange, settleMs: 50 });
    await observer.next((c) => c.kind === 'resync');
    const image = makeTestImage('docker.io/mirra-test/after-close:v1', [10]);
    await add(image);
    await observer.next((c) => c.kind === 'image-created');
    witness.close();
    assert.deepEqual(rec.changes, [{ kind: 'resync' }]);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(process.getActiveResourcesInfo().length <= before, process.getActiveResourcesInfo().join(','));
  });
});
