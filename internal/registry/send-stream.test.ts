// streamBody against a real socket: complete bodies, backpressure, failures
// mid-body (the client must see an error) and clients that go away.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, IncomingMessage, ServerResponse, type Server } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { streamBody, type StreamOutcome } from './send-stream.ts';

interface Harness {
  url: string;
  outcome: Promise<StreamOutcome | Error>;
  server: Server;
}

async function serve(t: TestContext, makeSource: () => Readable, expectedBytes: number): Promise<Harness> {
  let settle: (value: StreamOutcome | Error) => void = () => {};
  const outcome = new Promise<StreamOutcome | Error>((resolve) => {
    settle = resolve;
  });
  const server = createServer((req, res) => {
    streamBody(res, makeSource(), {
      expectedBytes,
      writeHead: () => res.writeHead(200, { 'content-length': String(expectedBytes) }),
    }).then(settle, (err: Error) => {
      res.writeHead(500).end('failed before headers');
      settle(err);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => close(server));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, outcome, server };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

test('a complete body, in many chunks, with backpressure', async (t) => {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const totalBytes = 32 * chunk.length;
  const h = await serve(t, () => Readable.from(Array.from({ length: 32 }, () => chunk)), totalBytes);
  const res = await fetch(h.url);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200);
  assert.equal(body.length, totalBytes);
  assert.deepEqual(await h.outcome, { kind: 'complete', bytesSent: totalBytes });
});

test('an error before the first chunk rejects before any header is sent', async (t) => {
  const h = await serve(
    t,
    () =>
      new Readable({
        read() {
          this.destroy(Object.assign(new Error('open failed'), { code: 'ENOENT' }));
        },
      }),
    10,
  );
  const res = await fetch(h.url);
  assert.equal(res.status, 500);
  assert.equal(await res.text(), 'failed before headers');
  const outcome = await h.outcome;
  assert.ok(outcome instanceof Error);
});

test('an error mid-body destroys the response: the client sees an error, not a short body', async (t) => {
  const h = await serve(
    t,
    () => {
      const source = new PassThrough();
      source.write(Buffer.alloc(1000, 1));
      setTimeout(() => source.destroy(new Error('disk gone')), 20);
      return source;
    },
    5000,
  );
  const res = await fetch(h.url);
  assert.equal(res.status, 200);
  await assert.rejects(res.arrayBuffer());
  const outcome = await h.outcome;
  assert.ok(!(outcome instanceof Error));
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.bytesSent, 1000);
});

test('a source that ends short or runs long is an error too', async (t) => {
  for (const [bytes, expected] of [
    [10, 20],
    [30, 20],
  ] as const) {
    const h = await serve(t, () => Readable.from([Buffer.alloc(bytes)]), expected);
    // Either the headers never make it (nothing flushed yet) or the body fails.
    await assert.rejects(fetch(h.url).then((res) => res.arrayBuffer()));
    const outcome = await h.outcome;
    assert.ok(!(outcome instanceof Error) && outcome.kind === 'failed', `${bytes} of ${expected}`);
  }
});

test('a client that goes away destroys the source', async (t) => {
  let source: Readable | undefined;
  const h = await serve(
    t,
    () => {
      // An endless source: only a destroy stops it.
      source = new Readable({
        read() {
          this.push(Buffer.alloc(64 * 1024));
        },
      });
      return source;
    },
    1024 * 1024 * 1024,
  );
  const req = httpRequest(h.url);
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  await once(res, 'data');
  req.destroy();
  const outcome = await h.outcome;
  assert.ok(!(outcome instanceof Error));
  assert.equal(outcome.kind, 'client-gone');
  assert.ok(source?.destroyed, 'source destroyed');
});

test('a client that goes away before the first chunk destroys the source', async (t) => {
  let source: PassThrough | undefined;
  const h = await serve(
    t,
    () => {
      source = new PassThrough();
      return source;
    },
    10,
  );
  const controller = new AbortController();
  const pending = fetch(h.url, { signal: controller.signal }).catch(() => undefined);
  while (source === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
  controller.abort();
  await pending;
  const outcome = await h.outcome;
  assert.ok(!(outcome instanceof Error));
  assert.equal(outcome.kind, 'client-gone');
  assert.ok(source.destroyed);
});

test('a response already closed before streaming starts releases the source at once', async () => {
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  res.destroy();
  const source = new PassThrough();
  let wroteHead = false;
  const outcome = await streamBody(res, source, {
    expectedBytes: 1,
    writeHead: () => {
      wroteHead = true;
    },
  });
  assert.deepEqual(outcome, { kind: 'client-gone', bytesSent: 0 });
  assert.equal(wroteHead, false);
  assert.ok(source.destroyed);
});

test('headFirst: the head goes out before the first chunk, and a failure before it is a body cut short', async (t) => {
  const source = new Readable({ read() {} });
  const fail = (err: Error): void => void source.destroy(err);
  let settle: (value: StreamOutcome | Error) => void = () => {};
  const outcome = new Promise<StreamOutcome | Error>((resolve) => {
    settle = resolve;
  });
  const server = createServer((req, res) => {
    streamBody(res, source, { expectedBytes: 100, headFirst: true, writeHead: () => res.writeHead(200, { 'content-length': '100' }) }).then(settle, settle);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => close(server));
  const req = httpRequest(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  assert.equal(res.statusCode, 200, 'the head came while the source had nothing yet');
  const bodyError = new Promise<unknown>((resolve) => {
    res.on('error', resolve);
    res.on('aborted', () => resolve(new Error('aborted')));
    res.on('end', () => resolve(undefined));
    res.resume();
  });
  fail(new Error('the fetch ended before its first byte'));
  assert.ok((await bodyError) !== undefined, 'the client sees the body cut short, not a complete one');
  const result = await outcome;
  assert.ok(!(result instanceof Error) && result.kind === 'failed' && result.bytesSent === 0, JSON.stringify(result));
});
