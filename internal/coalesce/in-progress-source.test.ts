// What peers may stream from this node's fetches (in-progress-source.ts): a
// fake content directory on disk (ingest/<dir>/{ref,data}, blobs/sha256/) and
// a LocalFetches stand-in that says which digests are fetched here.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import type { ContentRequest } from '../content/source.ts';
import { createInProgressSource, INGEST_SOURCE } from './in-progress-source.ts';
import type { IngestInfo, LocalFetches } from './local-fetches.ts';

const BLOB: ContentRequest = { registry: 'docker.io', name: 'library/app', kind: 'blob', method: 'GET' };
const NAMESPACE = 'k8s.io';
const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function contentDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-inprogress-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'ingest'), { recursive: true });
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  return dir;
}

/** An ingest as containerd's metadata store names it: the directory is the sha256 of `<ns>/<id>/<ref>`. */
async function writeIngest(dir: string, ref: string, data: Buffer): Promise<string> {
  const backing = `${NAMESPACE}/7/${ref}`;
  const ingestDir = join(dir, 'ingest', createHash('sha256').update(backing).digest('hex'));
  await mkdir(ingestDir);
  await writeFile(join(ingestDir, 'ref'), backing);
  await writeFile(join(ingestDir, 'data'), data);
  return join(ingestDir, 'data');
}

function fetchesOf(ingests: Map<string, IngestInfo | undefined>): LocalFetches {
  return {
    start() {},
    has: (digest) => ingests.has(digest),
    ingestOf: async (digest) => ingests.get(digest),
    size: () => ingests.size,
    close() {},
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('in-progress source', () => {
  it('serves a fetch from its ingest as it grows, head first, then through the commit', async (t) => {
    const dir = await contentDir(t);
    const bytes = randomBytes(300_000);
    const digest = digestOf(bytes);
    const ref = `layer-${digest}`;
    const data = await writeIngest(dir, ref, bytes.subarray(0, 100_000));
    let sent = 0;
    const source = createInProgressSource({
      fetches: fetchesOf(new Map([[digest, { ref, total: bytes.length }]])),
      contentPath: dir,
      namespace: NAMESPACE,
      stallMs: 2000,
      onIngestBytes: (n) => (sent += n),
    });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.equal(located.source, INGEST_SOURCE);
    assert.equal(located.headersFirst, true);
    assert.deepEqual(located.info, { digest, size: bytes.length });
    const reading = readAll(await located.read());
    await appendFile(data, bytes.subarray(100_000, 200_000));
    await rename(data, join(dir, 'blobs', 'sha256', digest.slice(7)));
    await appendFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes.subarray(200_000));
    assert.ok((await reading).equals(bytes));
    assert.equal(sent, bytes.length, 'every byte counted as sent from an ingest');
  });

  it('a committed fetch is served from the blob file (with a range); not fetched here, a manifest, or no total: not here', async (t) => {
    const dir = await contentDir(t);
    const bytes = randomBytes(50_000);
    const digest = digestOf(bytes);
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
    const other = digestOf(Buffer.from('other'));
    const unknownTotal = digestOf(Buffer.from('no total'));
    await writeIngest(dir, `layer-${unknownTotal}`, Buffer.from('no'));
    const source = createInProgressSource({
      fetches: fetchesOf(
        new Map<string, IngestInfo | undefined>([
          [digest, undefined],
          [unknownTotal, { ref: `layer-${unknownTotal}`, total: 0 }],
        ]),
      ),
      contentPath: dir,
      namespace: NAMESPACE,
      stallMs: 2000,
    });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.equal(located.info.size, bytes.length);
    assert.ok((await readAll(await located.read({ start: 10, end: 19 }))).equals(bytes.subarray(10, 20)));
    assert.equal(await source.locate(BLOB, other), undefined, 'not a fetch of this node');
    assert.equal(await source.locate({ ...BLOB, kind: 'manifest' }, digest), undefined, 'manifests are not coalesced');
    assert.equal(await source.locate(BLOB, unknownTotal), undefined, 'an ingest without its expected size is not served');
    assert.equal(await source.resolveTag(BLOB, 'v1'), undefined);
  });
});
