import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { imageBlobs, makeTestImage, readAll } from '../oci/storetest/conformance.ts';
import { NotFoundError } from '../oci/store.ts';
import { importImage, startTempContainerd } from '../../tests/support/containerd.ts';
import { InvalidDigestError, READ_CHUNK_BYTES, blobPath, clampRange, openBlob } from './blobs.ts';
import { createContainerdClient, type ContainerdClient } from './client.ts';
import { createContainerdStore } from './store.ts';

const HEX = 'ab'.repeat(32);

describe('blob paths', () => {
  it('maps a valid digest into the content directory', () => {
    assert.equal(blobPath('/var/lib/containerd/content', `sha256:${HEX}`), `/var/lib/containerd/content/blobs/sha256/${HEX}`);
    assert.equal(blobPath('/c', `sha512:${'0'.repeat(128)}`), `/c/blobs/sha512/${'0'.repeat(128)}`);
  });

  it('rejects anything else before it becomes a path', () => {
    const bad = [
      'sha256:../../etc/passwd',
      `sha256:../../../${HEX.slice(9)}`,
      `sha256:${HEX.toUpperCase()}`,
      `sha256:${HEX}/..`,
      `md5:${'0'.repeat(32)}`,
      `../sha256:${HEX}`,
      `sha256:${HEX.slice(1)}`,
      '',
      `sha256:${HEX}\0`,
    ];
    for (const digest of bad) assert.throws(() => blobPath('/c', digest), InvalidDigestError, JSON.stringify(digest));
  });

  it('clamps ranges to the blob', () => {
    assert.deepEqual(clampRange(undefined, 10), { start: 0, end: 9 });
    assert.deepEqual(clampRange({ start: 2, end: 100 }, 10), { start: 2, end: 9 });
    assert.equal(clampRange({ start: 10, end: 20 }, 10), undefined);
    assert.equal(clampRange(undefined, 0), undefined);
  });
});

describe('blob bytes from the content directory, gRPC as fallback', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
  let client: ContainerdClient;
  let scratch: string;
  const image = makeTestImage('docker.io/mirra-test/blobs:v1', [2 * READ_CHUNK_BYTES + 1000]);
  const layer = image.layers[0]!;

  before(async () => {
    ctd = await startTempContainerd('containerd-blobs');
    client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
    await importImage(ctd, { reference: image.reference, root: image.manifest, blobs: imageBlobs(image).slice(1) });
    scratch = await mkdtemp(join(tmpdir(), 'mirra-blobs-'));
  });
  after(async () => {
    client?.close();
    await ctd?.dispose();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it('reads the file, in large chunks', async () => {
    const stream = await openBlob({ client, contentPath: ctd.contentDir }, layer.digest, layer.bytes.length);
    const sizes: number[] = [];
    const chunks: Buffer[] = [];
    for await (const chunk of stream) {
      sizes.push((chunk as Buffer).length);
      chunks.push(chunk as Buffer);
    }
    assert.ok(Buffer.concat(chunks).equals(layer.bytes));
    assert.deepEqual(sizes, [READ_CHUNK_BYTES, READ_CHUNK_BYTES, 1000]);
  });

  it('serves what the file holds (it does not go through gRPC when the file opens)', async () => {
    const fake = join(scratch, 'content');
    const [, hex] = layer.digest.split(':');
    await mkdir(join(fake, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(fake, 'blobs', 'sha256', hex!), 'from the file');
    const bytes = await readAll(await openBlob({ client, contentPath: fake }, layer.digest, 13));
    assert.equal(bytes.toString(), 'from the file');
  });

  it('falls back to gRPC when the content directory is not there', async () => {
    const source = { client, contentPath: join(scratch, 'not-mounted') };
    assert.ok((await readAll(await openBlob(source, layer.digest, layer.bytes.length))).equals(layer.bytes));
    const range = { start: READ_CHUNK_BYTES - 5, end: READ_CHUNK_BYTES + 5 };
    const part = await readAll(await openBlob(source, layer.digest, layer.bytes.length, range));
    assert.ok(part.equals(layer.bytes.subarray(range.start, range.end + 1)));
  });

  it('a store whose content path is not mounted still serves everything', async () => {
    const store = createContainerdStore({ client, contentPath: join(scratch, 'not-mounted'), logger: createLogger('silent') });
    for (const blob of imageBlobs(image)) {
      assert.ok((await readAll(await store.read(blob.digest))).equals(blob.bytes));
      assert.equal((await store.stat(blob.digest))?.mediaType, blob.mediaType);
    }
  });

  it('a bad digest never reaches the filesystem or containerd', async () => {
    const store = createContainerdStore({ client, contentPath: ctd.contentDir, logger: createLogger('silent') });
    await assert.rejects(openBlob({ client, contentPath: ctd.contentDir }, 'sha256:../../etc/passwd', 10), InvalidDigestError);
    await assert.rejects(store.read('sha256:../../../../../../etc/passwd'), NotFoundError);
    assert.equal(await store.stat('sha256:../../../../../../etc/passwd'), undefined);
    await assert.rejects(store.read(layer.digest, { start: 5, end: 2 }), RangeError);
    await assert.rejects(store.read(layer.digest, { start: -1, end: 2 }), RangeError);
  });
});
