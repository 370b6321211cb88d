// streamFile against a real socket and real files in a temp dir.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { streamFile } from './send-file.ts';
import type { StreamOutcome } from './send-stream.ts';

async function tempFile(t: TestContext, bytes: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-send-file-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'blob');
  await writeFile(path, bytes);
  return path;
}

interface Served {
  url: string;
  outcome: Promise<StreamOutcome | Error>;
  handles: FileHandle[];
}

/** What one test server sends: `expectedBytes` of the file at `path` from `start`, in chunks of `chunkBytes` (default: the pool's). */
interface Slice {
  start: number;
  expectedBytes: number;
  chunkBytes?: number;
}

async function serve(t: TestContext, path: string, slice: Slice): Promise<Served> {
  const { start, expectedBytes, chunkBytes } = slice;
  let settle: (value: StreamOutcome | Error) => void = () => {};
  const outcome = new Promise<StreamOutcome | Error>((resolve) => {
    settle = resolve;
  });
  const handles: FileHandle[] = [];
  const server = createServer((req, res) => {
    void open(path, 'r').then((handle) => {
      handles.push(handle);
      const options = { expectedBytes, writeHead: () => res.writeHead(200, { 'content-length': String(expectedBytes) }) };
      return streamFile(res, handle, start, chunkBytes === undefined ? options : { ...options, chunkBytes }).then(settle, (err: Error) => {
        res.writeHead(500).end('failed before headers');
        settle(err);
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, outcome, handles };
}

function patterned(sizeBytes: number): Buffer {
  const bytes = Buffer.alloc(sizeBytes);
  for (let i = 0; i + 4 <= sizeBytes; i += 4) bytes.writeUInt32LE(i, i);
  return bytes;
}

function sha(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

test('a whole file in many reused buffers arrives intact, and the handle is closed', async (t) => {
  const bytes = patterned(5 * 1024 * 1024 + 123);
  const s = await serve(t, await tempFile(t, bytes), { start: 0, expectedBytes: bytes.length, chunkBytes: 256 * 1024 });
  const res = await fetch(s.url);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(sha(body), sha(bytes));
  assert.deepEqual(await s.outcome, { kind: 'complete', bytesSent: bytes.length });
  await assert.rejects(s.handles[0]?.stat() ?? Promise.resolve(), /closed|EBADF/);
});

test('a range from an offset, and an empty body', async (t) => {
  const bytes = patterned(100_000);
  const path = await tempFile(t, bytes);
  const s = await serve(t, path, { start: 1000, expectedBytes: 5000, chunkBytes: 1024 });
  assert.deepEqual(Buffer.from(await (await fetch(s.url)).arrayBuffer()), bytes.subarray(1000, 6000));
  const empty = await serve(t, path, { start: 0, expectedBytes: 0 });
  const res = await fetch(empty.url);
  assert.equal(res.status, 200);
  assert.equal((await res.arrayBuffer()).byteLength, 0);
  assert.deepEqual(await empty.outcome, { kind: 'complete', bytesSent: 0 });
});

test('a file shorter than announced: clean error before headers, aborted response after', async (t) => {
  const bytes = patterned(10_000);
  const path = await tempFile(t, bytes);
  const offEnd = await serve(t, path, { start: 10_000, expectedBytes: 10 });
  const res = await fetch(offEnd.url);
  assert.equal(res.status, 500);
  assert.equal(await res.text(), 'failed before headers');
  assert.ok((await offEnd.outcome) instanceof Error);

  const short = await serve(t, path, { start: 0, expectedBytes: 20_000, chunkBytes: 4096 });
  const partial = await fetch(short.url);
  assert.equal(partial.status, 200);
  await assert.rejects(partial.arrayBuffer());
  const outcome = await short.outcome;
  assert.ok(!(outcome instanceof Error));
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.bytesSent, 10_000);
});

test('a client that goes away stops the reads and the handle is closed', async (t) => {
  const bytes = patterned(64 * 1024 * 1024);
  const s = await serve(t, await tempFile(t, bytes), { start: 0, expectedBytes: bytes.length });
  const req = httpRequest(s.url);
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  await once(res, 'data');
  req.destroy();
  const outcome = await s.outcome;
  assert.ok(!(outcome instanceof Error));
  assert.equal(outcome.kind, 'client-gone');
  assert.ok(outcome.bytesSent < bytes.length);
  await assert.rejects(s.handles[0]?.stat() ?? Promise.resolve(), /closed|EBADF/);
});
