import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { NotFoundError, type ContentStore } from '../oci/store.ts';
import type { FileBackedStore } from '../content/source.ts';
import { createTestApp, listen } from '../../tests/support/registry/testkit.ts';

const BODY = Buffer.from('0123456789abcdefghij');

function errorCode(body: string): unknown {
  const parsed: unknown = JSON.parse(body);
  assert.ok(typeof parsed === 'object' && parsed !== null && 'errors' in parsed && Array.isArray(parsed.errors));
  const first: unknown = parsed.errors[0];
  assert.ok(typeof first === 'object' && first !== null && 'code' in first);
  return first.code;
}

test('GET and HEAD of a blob', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(BODY, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const url = `/v2/library/nginx/blobs/${digest}?ns=docker.io`;
  const get = await app.inject({ url });
  assert.equal(get.statusCode, 200);
  assert.deepEqual(get.rawPayload, BODY);
  assert.equal(get.headers['content-type'], 'application/octet-stream');
  assert.equal(get.headers['content-length'], String(BODY.length));
  assert.equal(get.headers['docker-content-digest'], digest);
  assert.equal(get.headers.etag, `"${digest}"`);
  assert.equal(get.headers['accept-ranges'], 'bytes');
  assert.equal(get.headers['docker-distribution-api-version'], 'registry/2.0');
  const head = await app.inject({ method: 'HEAD', url, headers: { range: 'bytes=0-1' } });
  assert.equal(head.statusCode, 200);
  assert.equal(head.body, '');
  for (const name of ['content-type', 'content-length', 'docker-content-digest', 'etag', 'accept-ranges']) {
    assert.equal(head.headers[name], get.headers[name], name);
  }
});

test('an empty blob', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(Buffer.alloc(0));
  const res = await app.inject({ url: `/v2/a/blobs/${digest}` });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-length'], '0');
  assert.equal(res.body, '');
});

test('Range: closed, open-ended, suffix, clamped', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(BODY);
  const url = `/v2/a/blobs/${digest}`;
  const cases: Array<[string, string, string]> = [
    ['bytes=2-4', '234', 'bytes 2-4/20'],
    ['bytes=15-', 'fghij', 'bytes 15-19/20'],
    ['bytes=-3', 'hij', 'bytes 17-19/20'],
    ['bytes=18-100', 'ij', 'bytes 18-19/20'],
    ['bytes=0-0', '0', 'bytes 0-0/20'],
  ];
  for (const [range, body, contentRange] of cases) {
    const res = await app.inject({ url, headers: { range } });
    assert.equal(res.statusCode, 206, range);
    assert.equal(res.body, body, range);
    assert.equal(res.headers['content-range'], contentRange, range);
    assert.equal(res.headers['content-length'], String(body.length), range);
  }
});

test('Range: unsatisfiable and reversed are 416, multi-range and malformed are ignored', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(BODY);
  const url = `/v2/a/blobs/${digest}`;
  for (const range of ['bytes=20-', 'bytes=30-40', 'bytes=-0', 'bytes=5-3']) {
    const res = await app.inject({ url, headers: { range } });
    assert.equal(res.statusCode, 416, range);
    assert.equal(res.headers['content-range'], 'bytes */20', range);
    assert.equal(errorCode(res.body), 'RANGE_INVALID');
    assert.equal(res.headers.etag, undefined);
  }
  for (const range of ['bytes=0-1,3-4', 'bytes=abc', 'lines=1-2', 'bytes=-']) {
    const res = await app.inject({ url, headers: { range } });
    assert.equal(res.statusCode, 200, range);
    assert.equal(res.body, BODY.toString(), range);
    assert.equal(res.headers['content-range'], undefined);
  }
});

test('If-Range and If-None-Match', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put(BODY);
  const url = `/v2/a/blobs/${digest}`;
  const honoured = await app.inject({ url, headers: { range: 'bytes=0-1', 'if-range': `"${digest}"` } });
  assert.equal(honoured.statusCode, 206);
  const ignored = await app.inject({ url, headers: { range: 'bytes=0-1', 'if-range': '"sha256:other"' } });
  assert.equal(ignored.statusCode, 200);
  assert.equal(ignored.body.length, BODY.length);
  for (const method of ['GET', 'HEAD'] as const) {
    const notModified = await app.inject({ method, url, headers: { 'if-none-match': `"${digest}"` } });
    assert.equal(notModified.statusCode, 304);
    assert.equal(notModified.body, '');
    assert.equal(notModified.headers.etag, `"${digest}"`);
  }
});

test('unknown blobs, unmirrored registries, blobs gone between stat and read', async (t) => {
  const real = createMemoryStore();
  const digest = real.put(BODY);
  const gone = real.put('gone');
  const racy: ContentStore = {
    resolve: (ref) => real.resolve(ref),
    stat: (d) => real.stat(d),
    read: async (d, range) => {
      if (d === gone) throw new NotFoundError(d);
      return real.read(d, range);
    },
  };
  const { app } = createTestApp({ store: racy, mirroredRegistries: ['docker.io'] });
  t.after(() => app.close());
  const cases: Array<[string, number, string]> = [
    [`/v2/a/blobs/sha256:${'2'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
    [`/v2/a/blobs/${digest}?ns=quay.io`, 404, 'BLOB_UNKNOWN'],
    [`/v2/a/blobs/${gone}`, 404, 'BLOB_UNKNOWN'],
    [`/v2/a/blobs/${digest}?ns=docker.io`, 200, ''],
    [`/v2/a/blobs/${digest}`, 200, ''],
  ];
  for (const [url, status, code] of cases) {
    const res = await app.inject({ url });
    assert.equal(res.statusCode, status, url);
    if (code !== '') assert.equal(errorCode(res.body), code, url);
  }
});

test('a source failing on open (ENOENT) is a clean 404', async (t) => {
  const real = createMemoryStore();
  const digest = real.put(BODY);
  const store: ContentStore = {
    resolve: async () => undefined,
    stat: (d) => real.stat(d),
    read: async () =>
      new Readable({
        read() {
          this.destroy(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' }));
        },
      }),
  };
  const { app } = createTestApp({ store });
  t.after(() => app.close());
  const res = await app.inject({ url: `/v2/a/blobs/${digest}` });
  assert.equal(res.statusCode, 404);
  assert.equal(errorCode(res.body), 'BLOB_UNKNOWN');
});

test('a large blob streams intact over a real socket', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const big = Buffer.alloc(32 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  const digest = store.put(big);
  const base = await listen(app);
  const res = await fetch(`${base}/v2/a/blobs/${digest}`);
  assert.equal(res.status, 200);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, digest);
  const partial = await fetch(`${base}/v2/a/blobs/${digest}`, { headers: { range: 'bytes=4096-8191' } });
  assert.equal(partial.status, 206);
  assert.deepEqual(Buffer.from(await partial.arrayBuffer()), big.subarray(4096, 8192));
});

test('a stream error mid-body aborts the response', async (t) => {
  const real = createMemoryStore();
  const digest = real.put(Buffer.alloc(100_000, 1));
  const store: ContentStore = {
    resolve: async () => undefined,
    stat: (d) => real.stat(d),
    read: async () => {
      const source = new PassThrough();
      source.write(Buffer.alloc(10_000, 1));
      setTimeout(() => source.destroy(new Error('EIO: read failed')), 20);
      return source;
    },
  };
  const { app, log } = createTestApp({ store });
  t.after(() => app.close());
  const base = await listen(app);
  const res = await fetch(`${base}/v2/a/blobs/${digest}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), '100000');
  await assert.rejects(res.arrayBuffer());
  // The server stays healthy.
  assert.equal((await fetch(`${base}/v2/`)).status, 200);
  // The server logs as the socket closes; give the log lines a moment.
  for (let i = 0; i < 100 && !log.lines.some((line) => line.msg === 'request' && line.handler === 'blob'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const warn = log.lines.find((line) => line.msg === 'blob stream failed mid-body');
  assert.ok(warn);
  assert.equal(warn.bytesSent, 10_000);
  const access = log.lines.find((line) => line.msg === 'request' && line.handler === 'blob');
  assert.equal(access?.aborted, true);
  assert.equal(access?.bytesSent, 10_000);
});

test('file-backed stores are served through the file fast path', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-blobs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(join(dir, 'blob'), bytes);
  let opened = 0;
  const store: FileBackedStore = {
    resolve: async () => undefined,
    stat: async (d) => (d === digest ? { digest, size: bytes.length } : undefined),
    read: async () => {
      throw new Error('read() must not be used when a file is offered');
    },
    openFile: async (d) => {
      opened += 1;
      return d === digest ? open(join(dir, 'blob'), 'r') : undefined;
    },
  };
  const { app, log } = createTestApp({ store });
  t.after(() => app.close());
  const base = await listen(app);
  const full = await fetch(`${base}/v2/a/blobs/${digest}`);
  assert.equal(full.status, 200);
  assert.equal(full.headers.get('content-length'), String(bytes.length));
  assert.deepEqual(Buffer.from(await full.arrayBuffer()), bytes);
  const part = await fetch(`${base}/v2/a/blobs/${digest}`, { headers: { range: 'bytes=-1000' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes ${bytes.length - 1000}-${bytes.length - 1}/${bytes.length}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(bytes.length - 1000));
  const head = await fetch(`${base}/v2/a/blobs/${digest}`, { method: 'HEAD' });
  assert.equal(head.headers.get('content-length'), String(bytes.length));
  assert.equal(opened, 2, 'HEAD does not open the file');
  for (let i = 0; i < 100 && log.lines.filter((line) => line.handler === 'blob').length < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const blobLines = log.lines.filter((line) => line.handler === 'blob');
  assert.deepEqual(
    blobLines.map((line) => line.bytesSent),
    [bytes.length, 1000, 0],
  );
});
