// discard(): small bodies are drained (the connection is reused), a stalled
// one is dropped after the drain timeout, large ones at once.
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { discard } from './client.ts';

function get(port: number, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, resolve);
    req.once('error', reject);
    req.end();
  });
}

test('discard drains small bodies, drops stalled and large ones', async () => {
  const server = createServer((req, res) => {
    if (req.url === '/small') res.end('x'.repeat(100));
    else if (req.url === '/large') {
      res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
      res.write(Buffer.alloc(1024));
    } else {
      res.writeHead(404, { 'content-length': '100' });
      res.write('only part of it');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const small = await get(port, '/small');
    const ended = new Promise<boolean>((resolve) => small.once('end', () => resolve(true)));
    discard(small, 'GET');
    assert.equal(await ended, true, 'drained to the end');

    const large = await get(port, '/large');
    discard(large, 'GET');
    assert.equal(large.destroyed, true, 'destroyed at once');

    const stalled = await get(port, '/stalled');
    const started = performance.now();
    const closed = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    discard(stalled, 'GET', 64 * 1024, 200);
    await closed;
    const tookMs = performance.now() - started;
    assert.ok(tookMs >= 150 && tookMs < 2000, `dropped after the drain timeout (${tookMs.toFixed(0)} ms)`);
    assert.equal(stalled.complete, false);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
