// drainServer against real sockets: a running response finishes within the
// grace period while new connections are refused; past the grace it is cut.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { createLogger } from '../log/logger.ts';
import type { ContentStore } from '../oci/store.ts';
import { drainServer, trackConnections } from './drain.ts';
import { captureLog, createTestApp, listen } from '../../tests/support/registry/testkit.ts';

const CHUNK_BYTES = 64 * 1024;

/** A store with one blob whose bytes come in `chunks` chunks, `delayMs` apart. */
function slowStore(chunks: number, delayMs: number): { store: ContentStore; digest: string; bytes: Buffer } {
  const bytes = Buffer.alloc(chunks * CHUNK_BYTES);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const store: ContentStore = {
    resolve: async () => undefined,
    stat: async (d) => (d === digest ? { digest, size: bytes.length } : undefined),
    read: async () =>
      Readable.from(
        (async function* () {
          for (let i = 0; i < chunks; i++) {
            if (i > 0) await sleep(delayMs);
            yield bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
          }
        })(),
      ),
  };
  return { store, digest, bytes };
}

function download(url: string): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', () => {});
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete }));
    });
    req.on('error', reject);
    req.end();
  });
}

function refused(base: string): Promise<boolean> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

test('a running stream finishes within the grace; new connections are refused at once', async () => {
  const { store, digest, bytes } = slowStore(10, 80);
  const { app } = createTestApp({ store });
  const connections = trackConnections(app.server);
  const base = await listen(app);
  const running = download(`${base}/v2/a/blobs/${digest}`);
  await sleep(150);
  const log = captureLog();
  const draining = drainServer(app, { graceMs: 5000, log: createLogger('info', log), connections });
  await sleep(20);
  assert.equal(await refused(base), true);
  const result = await running;
  assert.equal(result.status, 200);
  assert.equal(result.complete, true);
  assert.ok(result.body.equals(bytes));
  const outcome = await draining;
  assert.equal(outcome.ending, 'drained');
  assert.equal(outcome.connectionsAtStart, 1);
  assert.equal(outcome.connectionsCut, 0);
  assert.ok(outcome.durationMs < 2000, `${outcome.durationMs} ms`);
});

test('past the grace the stream is cut short; a hurry cuts at once', async () => {
  for (const mode of ['grace', 'hurry'] as const) {
    const { store, digest, bytes } = slowStore(100, 50);
    const { app } = createTestApp({ store });
    const connections = trackConnections(app.server);
    const base = await listen(app);
    const running = download(`${base}/v2/a/blobs/${digest}`);
    await sleep(150);
    let hurry: () => void = () => {};
    const started = performance.now();
    const outcome = drainServer(app, {
      connections,
      graceMs: mode === 'grace' ? 400 : 60_000,
      log: createLogger('silent'),
      hurry: new Promise<void>((resolve) => (hurry = resolve)),
    });
    if (mode === 'hurry') setTimeout(hurry, 200);
    const result = await running;
    assert.equal(result.complete, false);
    assert.ok(result.body.length < bytes.length);
    const { ending, connectionsCut } = await outcome;
    assert.equal(ending, mode === 'grace' ? 'grace-over' : 'hurried');
    assert.equal(connectionsCut, 1);
    assert.ok(performance.now() - started < 2000);
  }
});

test('idle keep-alive connections do not hold the drain up', async () => {
  const { app } = createTestApp({ timeouts: { keepAliveTimeoutMs: 60_000 } });
  const connections = trackConnections(app.server);
  const base = await listen(app);
  const url = new URL(base);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  socket.on('data', () => {});
  socket.on('error', () => {});
  socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(100);
  const outcome = await drainServer(app, { graceMs: 5000, log: createLogger('silent'), connections });
  assert.equal(outcome.ending, 'drained');
  assert.ok(outcome.durationMs < 1000, `${outcome.durationMs} ms`);
  socket.destroy();
});

test('a request pipelined behind a running stream during the drain gets an OCI 503 and Connection: close', async () => {
  const { store, digest, bytes } = slowStore(6, 60);
  const { app } = createTestApp({ store });
  const connections = trackConnections(app.server);
  const base = await listen(app);
  const url = new URL(base);
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`GET /v2/a/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await sleep(100);
  const outcome = drainServer(app, { graceMs: 5000, log: createLogger('silent'), connections });
  await sleep(20);
  socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
  await closed;
  const raw = Buffer.concat(received);
  const second = raw.indexOf('HTTP/1.1 503', bytes.length);
  assert.ok(raw.subarray(0, 20).toString('latin1').startsWith('HTTP/1.1 200'), 'the running stream went on');
  assert.ok(second > 0, 'the pipelined request was answered 503');
  const [head = '', body = ''] = raw.subarray(second).toString('latin1').split('\r\n\r\n');
  assert.match(head, /connection: close/i);
  assert.match(head, /retry-after: 1/i);
  const parsed = JSON.parse(body) as { errors: Array<{ code: string }> };
  assert.equal(parsed.errors[0]?.code, 'UNAVAILABLE');
  assert.equal((await outcome).ending, 'drained');
});
