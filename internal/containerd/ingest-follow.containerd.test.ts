// Following an ingest against a real containerd: the layout ingest-follow.ts
// relies on (the ingest directory found by its `ref` file holding
// `<namespace>/<id>/<ref>`, `data` growing in order, the commit renaming it
// into blobs/) is containerd's, on every release the suite runs on
// (MIRRA_CONTAINERD: 2.1, 1.7, 1.6).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Readable } from 'node:stream';
import { startTempContainerd } from '../../tests/support/containerd.ts';
import { blobPath } from './blobs.ts';
import { findIngestData, followIngest } from './ingest-follow.ts';

const NAMESPACE = 'k8s.io';
const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function collectAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('following an ingest (real containerd)', () => {
  let ctd: Awaited<ReturnType<typeof startTempContainerd>>;

  before(async () => {
    ctd = await startTempContainerd('containerd-ingest-follow');
  });
  after(async () => {
    await ctd?.dispose();
  });

  /** `ctr content ingest` of `bytes` under `ref`, expecting `total` bytes of `digest`; rejects when short (the ingest stays). */
  const ingest = (ref: string, bytes: Buffer, total: number, digest: string): Promise<string> =>
    ctd.ctr(['content', 'ingest', '--expected-size', String(total), '--expected-digest', digest, ref], NAMESPACE, bytes);

  /** `ctr content ingest` resuming `ref` with all of `bytes` from a file (ctr seeks its stdin to the ingest's offset). */
  const resumeFromFile = async (ref: string, bytes: Buffer, digest: string): Promise<void> => {
    const file = join(ctd.dir, 'resume-input');
    await writeFile(file, bytes);
    const input = await open(file, 'r');
    try {
      const args = [
        '--address',
        ctd.socket,
        '--namespace',
        NAMESPACE,
        'content',
        'ingest',
        '--expected-size',
        String(bytes.length),
        '--expected-digest',
        digest,
        ref,
      ];
      const child = spawn(ctd.release.ctr, args, { stdio: [input.fd, 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      assert.equal(code, 0, `ctr content ingest (resume): ${stderr}`);
    } finally {
      await input.close();
    }
  };

  it('finds a broken write by its ref, follows it as it is completed, and through the commit', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 12)) & 0xff;
    const digest = digestOf(bytes);
    const ref = `layer-${digest}`;
    const third = bytes.length / 3;
    await assert.rejects(ingest(ref, bytes.subarray(0, third), bytes.length, digest));

    const path = await findIngestData(ctd.contentDir, NAMESPACE, ref);
    assert.ok(path !== undefined, 'the ingest directory is found by its ref file');
    assert.equal((await stat(path)).size, third, 'data holds what was written so far');
    assert.equal(await findIngestData(ctd.contentDir, 'other', ref), undefined, 'another namespace has no such ingest');
    assert.equal(await findIngestData(ctd.contentDir, NAMESPACE, `config-${digest}`), undefined, 'another ref has none');

    const following = collectAll(await followIngest({ path, start: 0, end: bytes.length - 1, stallMs: 10_000 }));
    // containerd resumes the ingest at its offset (ctr seeks its input past what is there: a file, not a pipe) and commits it.
    await resumeFromFile(ref, bytes, digest);
    const followed = await following;
    assert.equal(followed.length, bytes.length);
    assert.ok(followed.equals(bytes), 'every byte, in order, across the commit');
    assert.equal((await stat(blobPath(ctd.contentDir, digest))).size, bytes.length, 'committed');
    assert.equal(await findIngestData(ctd.contentDir, NAMESPACE, ref), undefined, 'no ingest once committed');
  });
});
