// "Never a file outside the content store": the registry on a file-backed
// store laid out like containerd's content directory (blobs/sha256/<hex>,
// paths from containerd's blobPath, served through the file fast path), with
// a secret file next to it, inside it but outside blobs/, and in blobs/. Raw
// requests with traversal in every encoding and absolute paths aimed at the
// secret; the secret's bytes never appear in any response, every path the
// store touches is inside blobs/, and only the real blob is ever served.
// Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { blobPath, InvalidDigestError } from '../containerd/blobs.ts';
import { NotFoundError } from '../oci/store.ts';
import { anyTargetArb, encodeSegment, rangeCaseArb, segmentEncodingArb } from '../../tests/support/fuzz/registry-arbitraries.ts';
import { assertAnswer } from '../../tests/support/fuzz/registry-fixture.ts';
import { expectFor, type Fixture } from '../../tests/support/fuzz/registry-oracle.ts';
import { rawExchange } from '../../tests/support/registry/raw-http.ts';
import type { FileBackedStore } from '../content/source.ts';
import { createTestApp } from '../../tests/support/registry/testkit.ts';

/** A FileBackedStore over a content directory, naming files with blobPath only; records every path it touches. */
function contentDirStore(contentPath: string, touched: string[]): FileBackedStore {
  const pathOf = (digest: string): string | undefined => {
    try {
      const path = blobPath(contentPath, digest);
      touched.push(path);
      return path;
    } catch (err) {
      if (err instanceof InvalidDigestError) return undefined;
      throw err;
    }
  };
  return {
    resolve: async () => undefined,
    async stat(digest) {
      const path = pathOf(digest);
      if (path === undefined) return undefined;
      const info = await stat(path).catch(() => undefined);
      return info?.isFile() === true ? { digest, size: info.size } : undefined;
    },
    async read(digest, range) {
      const path = pathOf(digest);
      if (path === undefined) throw new NotFoundError(digest);
      return createReadStream(path, range === undefined ? {} : { start: range.start, end: range.end });
    },
    async openFile(digest) {
      const path = pathOf(digest);
      return path === undefined ? undefined : open(path, 'r').catch(() => undefined);
    },
  };
}

test('file-backed store: traversal never reaches a file outside blobs/, and the secret is never sent', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'mirra-contain-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const content = join(root, 'content');
  const layer = randomBytes(5000);
  const hex = createHash('sha256').update(layer).digest('hex');
  const digest = `sha256:${hex}`;
  const secret = Buffer.from(`MIRRA-SECRET-${randomBytes(16).toString('hex')}`);
  await mkdir(join(content, 'blobs', 'sha256'), { recursive: true });
  await mkdir(join(content, 'ingest'), { recursive: true });
  await writeFile(join(content, 'blobs', 'sha256', hex), layer);
  for (const path of [join(root, 'secret'), join(content, 'secret'), join(content, 'blobs', 'secret'), join(content, 'ingest', 'secret')]) {
    await writeFile(path, secret);
  }
  const secretDigest = `sha256:${createHash('sha256').update(secret).digest('hex')}`;

  const touched: string[] = [];
  const { app } = createTestApp({ store: contentDirStore(content, touched) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const port = (app.server.address() as AddressInfo).port;
  const fixture: Fixture = {
    blobs: new Map([[digest, { bytes: layer, manifest: false }]]),
    tags: new Map(),
    mirrored: new Set(),
    defaultRegistry: 'docker.io',
  };

  // References aimed at the secret: relative, absolute, encoded, with and without an algorithm.
  const toSecret = fc
    .tuple(
      fc.constantFrom('sha256:', 'sha512:', '', 'sha256:../', 'sha256/'),
      fc.constantFrom(
        '../../../secret',
        '../../secret',
        '../secret',
        'secret',
        '../ingest/secret',
        join(root, 'secret'),
        join(content, 'blobs', 'secret'),
        `${hex}/../../secret`,
        `${hex}/../../../../secret`,
      ),
      segmentEncodingArb,
      fc.constantFrom('blobs', 'manifests'),
    )
    .map(([prefix, path, encoding, endpoint]) => `/v2/library/x/${endpoint}/${encodeSegment(prefix + path, encoding)}`);
  const rawToSecret = fc.constantFrom(
    `/v2/library/x/blobs/sha256:../../../secret`,
    `/v2/library/x/blobs/sha256:${hex}/../../../../secret`,
    `/v2/../../../${root}/secret`,
    `/v2/library/x/blobs/sha256:%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret`,
    `/v2/library/x/blobs/..%2f..%2f..%2fsecret`,
    `/v2/library/x/blobs/${secretDigest}`,
    `/v2/library/x/blobs/sha256:..\\..\\..\\secret`,
    `/v2/library/x/blobs/%2F${root.slice(1)}%2Fsecret`,
    `/v2/library/x/blobs/${digest}%00/../../../secret`,
  );
  const target = fc.oneof(anyTargetArb({ digests: [digest, secretDigest], tags: [] }), toSecret, rawToSecret);
  const range = fc.option(
    rangeCaseArb(layer.length).map((r) => r.header),
    { nil: undefined },
  );

  await checkProperty(
    t,
    fc.asyncProperty(fc.constantFrom('GET', 'GET', 'HEAD'), target, range, async (method, path, rangeHeader) => {
      fc.pre(!/[\r\n ]/.test(path));
      touched.length = 0;
      const headers = rangeHeader === undefined ? '' : `Range: ${rangeHeader}\r\n`;
      const res = await rawExchange(port, Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: mirra\r\n${headers}Connection: close\r\n\r\n`, 'utf8'), {
        head: method === 'HEAD',
      });
      const where = `${method} ${JSON.stringify(path.slice(0, 300))} range ${JSON.stringify(rangeHeader)}`;
      // An oversized request may be reset while it is still being written; anything else gets an answer.
      if (res === undefined && Buffer.byteLength(path) > 15 * 1024) return;
      assert.ok(res !== undefined, `closed without an answer: ${where}`);
      assert.ok(!res.raw.includes(secret), `the secret was sent: ${where}`);
      assert.ok(res.status < 500, `${where}: ${res.status}`);
      for (const file of touched) assert.ok(resolve(file).startsWith(join(content, 'blobs') + sep), `${where} touched ${file}`);
      if (res.status === 200 || res.status === 206) {
        const known = ['{}', 'ok\n'].includes(res.body.toString('latin1')) || layer.includes(res.body);
        assert.ok(method === 'HEAD' || known, `${where}: served bytes that are not the blob's`);
      }
      if (rangeHeader === undefined && /^\/[\x21-\x7e]*$/.test(path) && Buffer.byteLength(path) < 15 * 1024) {
        assertAnswer({ status: res.status, headers: res.headers, body: res.body }, expectFor(method, path, fixture), method, where);
      }
    }),
    1000,
  );

  // The untampered request is served, through the same store.
  const ok = await rawExchange(port, `GET /v2/library/x/blobs/${digest} HTTP/1.1\r\nHost: mirra\r\nConnection: close\r\n\r\n`);
  assert.equal(ok?.status, 200);
  assert.ok(ok.body.equals(layer));
});
