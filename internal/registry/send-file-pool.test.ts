// streamFile with one buffer pool shared by many streams, against real sockets.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { createBufferPool, type BufferPool } from './buffer-pool.ts';
import { streamFile } from './send-file.ts';
import type { StreamOutcome } from './send-stream.ts';

function patterned(sizeBytes: number): Buffer {
  const bytes = Buffer.alloc(sizeBytes);
  for (let i = 0; i + 4 <= sizeBytes; i += 4) bytes.writeUInt32LE(i, i);
  return bytes;
}

interface Served {
  url: string;
  outcomes: Array<Promise<StreamOutcome>>;
  counters: Array<{ bytesSent: number | undefined }>;
}

async function serve(t: TestContext, bytes: Buffer, pool: BufferPool): Promise<Served> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-send-pool-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'blob');
  await writeFile(path, bytes);
  const served: Served = { url: '', outcomes: [], counters: [] };
  const server = createServer((req, res) => {
    const counter = { bytesSent: undefined as number | undefined };
    served.counters.push(counter);
    served.outcomes.push(
      open(path, 'r').then((handle) =>
        streamFile(res, handle, 0, {
          expectedBytes: bytes.length,
          writeHead: () => res.writeHead(200, { 'content-length': String(bytes.length) }),
          counter,
          buffers: pool,
        }),
      ),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  served.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return served;
}

/** A GET whose body is not read: the response (paused) once headers are in, if any. */
function getPaused(url: string): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const req = httpRequest(url, { agent: false });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', (res) => {
      res.pause();
      resolve(res);
    });
    req.once('error', reject);
  });
  response.catch(() => {});
  req.end();
  return { req, response };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check(); await sleep(10)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

test('many streams share a pool of two buffers, every body intact, every buffer back', async (t) => {
  const bytes = patterned(2 * 1024 * 1024 + 5);
  const pool = createBufferPool({ bufferBytes: 64 * 1024, maxBuffers: 2 });
  const s = await serve(t, bytes, pool);
  const bodies = await Promise.all(Array.from({ length: 6 }, async () => Buffer.from(await (await fetch(s.url)).arrayBuffer())));
  for (const body of bodies) assert.ok(body.equals(bytes));
  for (const outcome of await Promise.all(s.outcomes)) assert.deepEqual(outcome, { kind: 'complete', bytesSent: bytes.length });
  await until('every buffer back', () => pool.stats().lent === 0);
  assert.deepEqual(pool.stats(), { bufferBytes: 64 * 1024, maxBuffers: 2, allocated: 0, lent: 0, waiting: 0, streams: 0 }, 'let go once idle');
});

test('a stalled client holds its buffer until it goes; a waiter that leaves takes none', async (t) => {
  const bytes = patterned(48 * 1024 * 1024);
  const pool = createBufferPool({ bufferBytes: 256 * 1024, maxBuffers: 1 });
  const s = await serve(t, bytes, pool);
  const stalled = getPaused(s.url);
  await stalled.response;
  // Stalled: the kernel's buffers are full and the only buffer is stuck in a write (the stream waits for that write, not in the queue).
  let last = -1;
  await until(
    'the first stream to stall',
    () => {
      const now = s.counters[0]?.bytesSent ?? 0;
      const still = now === last && pool.stats().lent === 1;
      last = now;
      return still;
    },
    10_000,
  );
  assert.ok(last < bytes.length);
  const waiter = getPaused(s.url);
  assert.equal(pool.stats().waiting, 0);
  await until('the second stream to wait', () => pool.stats().waiting === 1);
  waiter.req.destroy();
  await until('the second stream to start', () => s.outcomes.length === 2);
  assert.deepEqual(await s.outcomes[1], { kind: 'client-gone', bytesSent: 0 });
  assert.equal(pool.stats().waiting, 0);
  assert.equal(pool.stats().lent, 1);
  stalled.req.destroy();
  assert.equal((await s.outcomes[0])?.kind, 'client-gone');
  await until('the buffer back', () => pool.stats().lent === 0);
});
