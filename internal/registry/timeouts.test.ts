// The registry server's limits for slow clients, against real sockets.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FileBackedStore } from '../content/source.ts';
import { createTestApp, listen } from '../../tests/support/registry/testkit.ts';
import { fastifyTimeoutOptions, resolveTimeouts } from './timeouts.ts';

const FAST = { headersTimeoutMs: 300, requestTimeoutMs: 300, keepAliveTimeoutMs: 300, idleTimeoutMs: 500, connectionsCheckingIntervalMs: 50 };

/** Milliseconds until the server closes a raw connection after `send` was written. */
async function closedAfterMs(base: string, send: string): Promise<number> {
  const url = new URL(base);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  await once(socket, 'connect');
  const start = performance.now();
  socket.on('data', () => {});
  socket.on('error', () => {});
  socket.write(send);
  await once(socket, 'close');
  return performance.now() - start;
}

test('defaults fill in what is left out; headers timeout never above the request timeout', () => {
  const timeouts = resolveTimeouts({ idleTimeoutMs: 1234, headersTimeoutMs: undefined });
  assert.equal(timeouts.idleTimeoutMs, 1234);
  assert.equal(timeouts.headersTimeoutMs, 10_000);
  const options = fastifyTimeoutOptions({ ...timeouts, headersTimeoutMs: 20_000, requestTimeoutMs: 5000 });
  assert.equal(options.requestTimeout, 20_000);
  assert.equal(options.connectionTimeout, 1234);
});

test('a request head that never completes, and an idle keep-alive connection, are closed', async (t) => {
  const { app } = createTestApp({ timeouts: FAST });
  t.after(() => app.close());
  const base = await listen(app);
  const slowHead = await closedAfterMs(base, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n');
  assert.ok(slowHead >= 250 && slowHead < 3000, `closed after ${slowHead} ms`);
  const idle = await closedAfterMs(base, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.ok(idle >= 250 && idle < 3000, `closed after ${idle} ms`);
});

test('a client that reads nothing of a blob is cut after the idle timeout', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-timeouts-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bytes = Buffer.alloc(48 * 1024 * 1024, 7);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(join(dir, 'blob'), bytes);
  const store: FileBackedStore = {
    resolve: async () => undefined,
    stat: async (d) => (d === digest ? { digest, size: bytes.length } : undefined),
    read: async () => {
      throw new Error('not used');
    },
    openFile: async (d) => (d === digest ? open(join(dir, 'blob'), 'r') : undefined),
  };
  const { app, log } = createTestApp({ store, timeouts: FAST });
  t.after(() => app.close());
  const base = await listen(app);
  const req = httpRequest(`${base}/v2/a/blobs/${digest}`, { agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.pause();
  // The server cuts the stalled connection (the client, paused, does not see it until it reads on).
  const start = performance.now();
  for (let i = 0; i < 1000 && !log.lines.some((line) => line.handler === 'blob'); i++) await new Promise((r) => setTimeout(r, 10));
  const cutMs = performance.now() - start;
  const line = log.lines.find((l) => l.handler === 'blob');
  assert.equal(line?.aborted, true);
  assert.ok(typeof line?.bytesSent === 'number' && line.bytesSent < bytes.length);
  assert.ok(cutMs >= 400 && cutMs < 8000, `cut after ${cutMs} ms`);
  let received = 0;
  res.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  res.on('error', () => {});
  const closed = new Promise((resolve) => res.once('close', resolve));
  res.resume();
  await closed;
  assert.equal(res.complete, false);
  assert.ok(received < bytes.length, `${received} bytes of ${bytes.length}`);
});
