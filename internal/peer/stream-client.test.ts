// The blob stream client against a real node:http server on loopback: bodies
// arrive whole and right, read into a few reused buffers when chunks are given
// back; connections are reused, a stale one is retried, a bad answer (no
// length, chunked, a cut) fails cleanly, timeouts and aborts hold; and a
// property: whatever the chunking and whenever chunks are given back, every
// chunk kept reads as the bytes sent (no buffer written under a lent view).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { createStreamClient, type BlobResponse, type StreamClient } from './stream-client.ts';
import type { Candidate } from './client.ts';

interface TestServer {
  candidate: Candidate;
  connections: Set<Socket>;
  accepted: () => number;
}

async function serve(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server: Server = createServer(handler);
  const connections = new Set<Socket>();
  let accepted = 0;
  server.on('connection', (socket) => {
    accepted++;
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { candidate: { name: 'peer-a', url: `http://127.0.0.1:${port}` }, connections, accepted: () => accepted };
}

function client(t: TestContext, maxSocketsPerPeer = 4): StreamClient {
  const c = createStreamClient({ maxSocketsPerPeer });
  t.after(() => c.close());
  return c;
}

interface Ask {
  path?: string;
  headersTimeoutMs?: number;
  signal?: AbortSignal;
}

const get = (c: StreamClient, s: TestServer, ask: Ask = {}): Promise<BlobResponse> =>
  c.request(s.candidate, { method: 'GET', path: ask.path ?? '/blob', headersTimeoutMs: ask.headersTimeoutMs ?? 2000, signal: ask.signal });

/**
 * Calls `onChunk` with each chunk as pushed ('data' events, as the registry
 * reads: an async iterator's read() would join buffered chunks into a copy).
 */
function eachChunk(res: BlobResponse, onChunk: (view: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    res.on('data', (chunk: Buffer) => onChunk(chunk));
    res.once('end', resolve);
    res.once('error', reject);
  });
}

/** Reads a body whole; gives every chunk back after copying it unless `keep`. */
async function readAll(c: StreamClient, res: BlobResponse, keep = false): Promise<Buffer> {
  const parts: Buffer[] = [];
  await eachChunk(res, (view) => {
    parts.push(keep ? view : Buffer.from(view));
    if (!keep) c.giveBack(view);
  });
  return Buffer.concat(parts);
}

test('a 32 MiB body arrives whole; given back, its chunks reuse a few buffers', async (t) => {
  const body = randomBytes(32 * 1024 * 1024);
  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': body.length, 'x-mirra-test': 'yes' });
    res.end(body);
  });
  const c = client(t);
  const res = await get(c, s);
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['x-mirra-test'], 'yes');
  const got = await readAll(c, res);
  assert.ok(res.complete);
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(body).digest('hex'));
  assert.ok(c.buffersAllocated() <= 8, `${c.buffersAllocated()} read buffers for 512 reads or more`);
});

/**
 * A server in a child process that answers every GET with `bytes` bytes of a
 * pattern (byte i is i % 251): it fills the socket as fast as the kernel
 * takes, whatever this process's event loop does.
 */
async function serveFromChild(t: TestContext, bytes: number): Promise<Candidate> {
  const script = `
    const body = Buffer.alloc(${bytes});
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    const server = require('node:http').createServer((req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  // Settles (with no error left unhandled) when the child exits, also after the test killed it.
  const exited = once(child, 'exit').then(([code]: unknown[]) => new Error(`the test server exited (${String(code)}) before it listened`));
  const first = await Promise.race([once(child.stdout, 'data'), exited]);
  if (first instanceof Error) throw first;
  const [line] = first as [Buffer];
  return { name: 'peer-child', url: `http://127.0.0.1:${line.toString().trim()}` };
}

test('a connection reads at most 256 KiB of a body per turn of the event loop, even for a reader that wants more at once', async (t) => {
  const bytes = 32 * 1024 * 1024;
  const candidate = await serveFromChild(t, bytes);
  const c = client(t);
  const res = await c.request(candidate, { method: 'GET', path: '/blob', headersTimeoutMs: 5000 });
  // Turns counted by a setImmediate chain; a flowing reader (as the peer path's) wants more after every chunk.
  let turn = 0;
  let ticking = true;
  const tick = (): void => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const perTurn = new Map<number, number>();
  let offset = 0;
  let wrong = -1;
  await eachChunk(res, (view) => {
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + view.length);
    for (let i = 0; i < view.length && wrong < 0; i++) if (view[i] !== (offset + i) % 251) wrong = offset + i;
    offset += view.length;
    c.giveBack(view);
  });
  ticking = false;
  assert.equal(offset, bytes);
  assert.equal(wrong, -1, `byte ${wrong} is wrong`);
  const most = Math.max(...perTurn.values());
  assert.ok(most <= 256 * 1024, `${most} bytes read in one turn`);
});

test('chunks kept (never given back) stay intact: the client takes new buffers', async (t) => {
  const body = randomBytes(4 * 1024 * 1024);
  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const c = client(t);
  const got = await readAll(c, await get(c, s), true);
  assert.ok(got.equals(body));
});

test('a finished body leaves its connection for the next request; a stale one is retried', async (t) => {
  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': 5 });
    res.end('hello');
  });
  const c = client(t);
  for (let i = 0; i < 3; i++) assert.equal((await readAll(c, await get(c, s))).toString(), 'hello');
  assert.equal(s.accepted(), 1, 'one connection for three requests');
  // The peer closes the idle connection: the next request goes on a new one.
  for (const socket of s.connections) socket.destroy();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal((await readAll(c, await get(c, s))).toString(), 'hello');
  assert.equal(s.accepted(), 2);
});

test('a body destroyed before its end closes its connection', async (t) => {
  const body = randomBytes(8 * 1024 * 1024);
  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const c = client(t);
  const res = await get(c, s);
  await new Promise<void>((resolve) => res.once('data', () => resolve()));
  res.destroy();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(s.connections.size, 0);
  assert.equal((await readAll(c, await get(c, s))).length, body.length, 'the next request works');
});

test('answers without a length or chunked are refused; a cut mid-body is an error', async (t) => {
  const s = await serve(t, (req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200);
      res.write('abc');
      res.end('def');
    } else if (req.url === '/cut') {
      res.writeHead(200, { 'content-length': 1000 });
      res.write(Buffer.alloc(100));
      setTimeout(() => res.socket?.destroy(), 20);
    } else {
      res.writeHead(404, { 'content-length': 2 });
      res.end('{}');
    }
  });
  const c = client(t);
  await assert.rejects(get(c, s, { path: '/chunked' }), /chunked body/);
  const missing = await get(c, s, { path: '/missing' });
  assert.equal(missing.statusCode, 404);
  missing.resume();
  const cut = await get(c, s, { path: '/cut' });
  await assert.rejects(readAll(c, cut), /closed mid-body/);
});

test('no answer within the headers timeout, or an abort: rejected, connection closed', async (t) => {
  const s = await serve(t, () => {});
  const c = client(t);
  await assert.rejects(get(c, s, { path: '/slow', headersTimeoutMs: 100 }), /no response headers within 100 ms/);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  await assert.rejects(get(c, s, { path: '/slow', headersTimeoutMs: 5000, signal: abort.signal }), /aborted/);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(s.connections.size, 0);
});

test('at most maxSocketsPerPeer connections; more requests wait for one', async (t) => {
  const s = await serve(t, (_req, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-length': 2 });
      res.end('ok');
    }, 30);
  });
  const c = client(t, 2);
  const bodies = await Promise.all(Array.from({ length: 6 }, async () => (await readAll(c, await get(c, s))).toString()));
  assert.deepEqual(bodies, Array(6).fill('ok'));
  assert.equal(s.accepted(), 2);
});

test('property: any chunking, chunks given back at any time, the bytes kept are the bytes sent', async (t) => {
  const body = randomBytes(512 * 1024);
  const s = await serve(t, (req, res) => {
    const sizes = (new URL(req.url ?? '/', 'http://x').searchParams.get('sizes') ?? '').split(',').map(Number);
    res.writeHead(200, { 'content-length': body.length });
    let at = 0;
    let i = 0;
    const next = (): void => {
      if (at >= body.length) return void res.end();
      const n = Math.min(body.length - at, sizes[i++ % sizes.length] ?? 1000);
      const more = res.write(body.subarray(at, at + n));
      at += n;
      if (more) setImmediate(next);
      else res.once('drain', next);
    };
    next();
  });
  const c = client(t);
  await checkProperty(
    t,
    fc.asyncProperty(
      fc.array(fc.integer({ min: 100, max: 200_000 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 16 }),
      async (sizes, plans) => {
        const res = await get(c, s, { path: `/blob?sizes=${sizes.join(',')}` });
        // A chunk is given back at once (0), after 1 or 2 more chunks, or never (3); while lent it must not change.
        const lent: Array<{ view: Buffer; copy: Buffer; until: number }> = [];
        const copies: Buffer[] = [];
        let index = 0;
        await eachChunk(res, (view) => {
          const copy = Buffer.from(view);
          copies.push(copy);
          const plan = plans[index % plans.length] ?? 0;
          lent.push({ view, copy, until: plan === 3 ? Infinity : index + plan });
          for (const entry of lent.filter((e) => e.until <= index)) {
            assert.ok(entry.view.equals(entry.copy), 'a lent chunk changed before it was given back');
            c.giveBack(entry.view);
            lent.splice(lent.indexOf(entry), 1);
          }
          index++;
        });
        for (const entry of lent) assert.ok(entry.view.equals(entry.copy), 'a chunk never given back changed');
        assert.ok(Buffer.concat(copies).equals(body));
      },
    ),
    20,
  );
});
