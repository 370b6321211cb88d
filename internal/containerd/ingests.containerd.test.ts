// Aborting containerd's ingest of a blob, against a real containerd: a write
// that broke off (ctr content ingest with too few bytes) is left as an
// ingest; abortIngestsOf drops it and leaves the others.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { startTempContainerd } from '../../tests/support/containerd.ts';
import { createContainerdClient, type ContainerdClient } from './client.ts';
import { abortIngestsOf, isIngestOf } from './ingests.ts';

const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('abortIngestsOf (real containerd)', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;
  let client: ContainerdClient;

  before(async () => {
    ctd = await startTempContainerd('containerd-ingests');
    client = createContainerdClient({ socket: ctd.socket, namespace: 'k8s.io' });
  });
  after(async () => {
    client?.close();
    await ctd?.dispose();
  });

  /** Leaves an ingest named `layer-<digest>` holding the first half of `bytes`. */
  const brokenWrite = async (bytes: Buffer): Promise<string> => {
    const digest = digestOf(bytes);
    const half = bytes.subarray(0, bytes.length / 2);
    await assert.rejects(
      ctd.ctr(['content', 'ingest', '--expected-size', String(bytes.length), '--expected-digest', digest, `layer-${digest}`], 'k8s.io', half),
    );
    return digest;
  };

  it('lists the ingests a broken write left, and aborts only those of the digest', async () => {
    const one = await brokenWrite(Buffer.alloc(64 * 1024, 1));
    const two = await brokenWrite(Buffer.alloc(64 * 1024, 2));
    const before = await client.listIngests();
    const mine = before.find((status) => isIngestOf(status, one));
    assert.ok(mine !== undefined, JSON.stringify(before));
    assert.equal(mine.ref, `layer-${one}`);
    assert.equal(mine.offset, 32 * 1024);

    const refs = await abortIngestsOf(client, one, createLogger('silent'));
    assert.deepEqual(refs, [`layer-${one}`]);
    const left = await client.listIngests();
    assert.equal(
      left.some((status) => isIngestOf(status, one)),
      false,
    );
    assert.equal(
      left.some((status) => isIngestOf(status, two)),
      true,
      'the other ingest stays',
    );
    assert.match(await ctd.ctr(['content', 'active']), new RegExp(`layer-${two}`));
    assert.deepEqual(await abortIngestsOf(client, one, createLogger('silent')), [], 'nothing left to abort');
  });

  it('never rejects: containerd unreachable is a warning', async () => {
    const gone = createContainerdClient({ socket: `${ctd.dir}/no-such.sock`, namespace: 'k8s.io', unaryTimeoutMs: 300 });
    try {
      assert.deepEqual(await abortIngestsOf(gone, `sha256:${'0'.repeat(64)}`, createLogger('silent')), []);
    } finally {
      gone.close();
    }
  });
});
