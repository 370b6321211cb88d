import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { imageBlobs, makeTestImage, readAll } from '../oci/storetest/conformance.ts';
import { importImage, startTempContainerd } from '../../tests/support/containerd.ts';
import { createContainerdClient, type ContainerdClient } from './client.ts';

describe('containerd client', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
  let client: ContainerdClient;
  let other: ContainerdClient;
  const image = makeTestImage('docker.io/mirra-test/client:v1', [3 * 1024 * 1024 + 17, 10]);
  const elsewhere = makeTestImage('docker.io/mirra-test/elsewhere:v1', [100]);

  before(async () => {
    ctd = await startTempContainerd('containerd-client');
    client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
    other = createContainerdClient({ socket: ctd.socket, namespace: 'default' });
    await importImage(ctd, { reference: image.reference, root: image.manifest, blobs: imageBlobs(image).slice(1) });
    await importImage(ctd, { reference: elsewhere.reference, root: elsewhere.manifest, blobs: imageBlobs(elsewhere).slice(1) }, 'default');
  });
  after(async () => {
    client?.close();
    other?.close();
    await ctd?.dispose();
  });

  it('lists and gets images of its namespace only', async () => {
    const images = await client.listImages();
    assert.deepEqual(
      images.map((i) => [i.name, i.target]),
      [[image.reference, { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.bytes.length }]],
    );
    assert.equal((await client.getImage(image.reference))?.target.digest, image.manifest.digest);
    assert.equal(await client.getImage(elsewhere.reference), undefined);
    assert.equal((await other.getImage(elsewhere.reference))?.target.digest, elsewhere.manifest.digest);
    assert.equal(await client.getImage('docker.io/mirra-test/client:nope'), undefined);
    assert.equal(await client.getImage(''), undefined);
    assert.equal(await client.getImage('Not A Reference!'), undefined);
  });

  it('reports content info, undefined when absent in the namespace', async () => {
    const layer = image.layers[0]!;
    assert.equal((await client.contentInfo(layer.digest))?.size, layer.bytes.length);
    assert.equal(await client.contentInfo(elsewhere.config.digest), undefined);
    assert.equal((await other.contentInfo(elsewhere.config.digest))?.size, elsewhere.config.bytes.length);
    assert.equal(await client.contentInfo(`sha256:${'1'.repeat(64)}`), undefined);
  });

  it('rejects malformed digests before calling containerd', async () => {
    await assert.rejects(client.contentInfo('sha256:../../etc/passwd'), /invalid digest/);
    assert.throws(() => client.readContent('sha256:../../etc/passwd'), /invalid digest/);
  });

  it('lists content info', async () => {
    const digests = new Set((await client.listContentInfo()).map((i) => i.digest));
    for (const blob of imageBlobs(image)) assert.ok(digests.has(blob.digest), blob.digest);
    assert.ok(!digests.has(elsewhere.config.digest));
  });

  it('reads content over gRPC, whole and by offset and size', async () => {
    const layer = image.layers[0]!;
    assert.ok((await readAll(client.readContent(layer.digest))).equals(layer.bytes));
    const part = await readAll(client.readContent(layer.digest, 1024 * 1024 - 3, 2 * 1024 * 1024));
    assert.ok(part.equals(layer.bytes.subarray(1024 * 1024 - 3, 3 * 1024 * 1024 - 3)));
  });

  it('fails a read of absent content with NOT_FOUND', async () => {
    await assert.rejects(readAll(client.readContent(`sha256:${'2'.repeat(64)}`)), (err: unknown) => {
      assert.equal((err as { code?: number }).code, 5);
      return true;
    });
  });

  it('cancels the gRPC read when the stream is destroyed early', async () => {
    const layer = image.layers[0]!;
    const stream = client.readContent(layer.digest);
    for await (const chunk of stream) {
      assert.ok(Buffer.isBuffer(chunk));
      break;
    }
    assert.ok(stream.destroyed);
    // The client still works.
    assert.equal((await client.contentInfo(layer.digest))?.size, layer.bytes.length);
  });

  it('decodes only the event payloads it knows', () => {
    assert.equal(client.decodeEvent({ typeUrl: 'containerd.events.TaskExit', value: Buffer.alloc(0) }), undefined);
    const decoded = client.decodeEvent({ typeUrl: 'types.example/containerd.events.ContentDelete', value: Buffer.from([10, 3, 97, 98, 99]) });
    assert.deepEqual(decoded, { type: 'containerd.events.ContentDelete', message: { digest: 'abc' } });
  });
});
