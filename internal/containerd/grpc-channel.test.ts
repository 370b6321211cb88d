// The gRPC client (grpc-channel.ts, grpc-call.ts, grpc-frames.ts) against a
// real HTTP/2 server on a unix socket, playing containerd byte by byte:
// unary calls, status in trailers and trailers-only, HTTP errors, deadlines,
// messages split over DATA frames and several in one, server streams with
// backpressure, cancel, a server that goes away, nothing listening, and a
// restart on the same socket.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, constants as h2, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createContainerdClient, isGrpcStatus } from './client.ts';
import type { GrpcCall } from './grpc-call.ts';
import { createGrpcChannel, type GrpcChannel } from './grpc-channel.ts';
import { grpcFrame } from './grpc-frames.ts';
import { GrpcStatus, type GrpcStatusCode } from './grpc-status.ts';
import { CONTENT_ABORT, CONTENT_INFO, CONTENT_READ, encodeInfoRequest, VERSION_VERSION } from './proto-codecs.ts';
import { encodeMessage, writeBytes, writeInt64, writeString } from './protowire.ts';

type Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, request: Promise<Buffer>) => void;

interface FakeServer {
  /** The streams' close codes (RST_STREAM codes; 0: ended normally). */
  readonly closeCodes: number[];
  /** Stops listening and drops every connection at once (containerd killed). */
  kill(): Promise<void>;
}

async function fakeServer(socket: string, handler: Handler): Promise<FakeServer> {
  const server: Http2Server = createServer();
  const sessions = new Set<Http2Session>();
  const closeCodes: number[] = [];
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.on('close', () => closeCodes.push(stream.rstCode ?? 0));
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const request = once(stream, 'end').then(() => Buffer.concat(chunks));
    request.catch(() => {});
    handler(stream, headers, request);
  });
  server.listen(socket);
  await once(server, 'listening');
  return {
    closeCodes,
    async kill() {
      const closed = once(server, 'close');
      server.close();
      for (const session of sessions) session.destroy();
      await closed;
    },
  };
}

/** A 200 response with the messages, then the status in trailers. */
function reply(stream: ServerHttp2Stream, messages: Buffer[], status = 0, message?: string): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(status), ...(message === undefined ? {} : { 'grpc-message': message }) }));
  stream.end(Buffer.concat(messages.map(grpcFrame)));
}

const versionResponse = (version: string): Buffer =>
  encodeMessage(version, (w, v) => {
    writeString(w, 1, v);
    writeString(w, 2, 'rev');
  });
const readResponse = (offset: number, data: Buffer): Buffer =>
  encodeMessage({ offset, data }, (w, m) => {
    writeInt64(w, 1, m.offset);
    writeBytes(w, 2, m.data);
  });

/** Resolves when the stream's write buffer drained (or it closed). */
async function drained(stream: ServerHttp2Stream): Promise<void> {
  if (stream.destroyed || !stream.writableNeedDrain) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

function collect(channel: GrpcChannel, request: { digest: string }): { call: GrpcCall; messages: unknown[]; end: Promise<Error | undefined> } {
  const messages: unknown[] = [];
  let call!: GrpcCall;
  const end = new Promise<Error | undefined>((resolve) => {
    call = channel.serverStream(CONTENT_READ, request, { onMessage: (m) => messages.push(m), onEnd: resolve });
  });
  return { call, messages, end };
}

/** A predicate for assert.rejects: a GrpcError of that code, one line. */
const code = (expected: GrpcStatusCode) => (err: unknown) => isGrpcStatus(err, expected) && !String((err as Error).message).includes('\n');

describe('gRPC over node:http2 on a unix socket', () => {
  let dir: string;
  let seq = 0;
  const sockets = (): string => join(dir, `s${++seq}.sock`);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mirra-grpc-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('unary: sends the request framed with the gRPC headers, resolves the decoded response', async () => {
    const socket = sockets();
    let seen: { headers: IncomingHttpHeaders; body: Buffer } | undefined;
    const server = await fakeServer(socket, (stream, headers, request) => {
      void request.then((body) => {
        seen = { headers, body };
        reply(stream, [String(headers[':path']).endsWith('/Info') ? Buffer.alloc(0) : versionResponse('v2.1.9')]);
      });
    });
    const channel = createGrpcChannel({ socket, metadata: { 'containerd-namespace': 'k8s.io' } });
    try {
      assert.equal(channel.isReady(), false, 'no session before the first call');
      assert.deepEqual(await channel.unary(VERSION_VERSION, {}, 5_000), { version: 'v2.1.9', revision: 'rev' });
      assert.equal(channel.isReady(), true);
      assert.deepEqual(await channel.unary(CONTENT_INFO, { digest: 'sha256:abc' }, 1_500), { info: null });
      assert.ok(seen !== undefined);
      assert.equal(seen.headers[':method'], 'POST');
      assert.equal(seen.headers[':path'], '/containerd.services.content.v1.Content/Info');
      assert.equal(seen.headers['content-type'], 'application/grpc');
      assert.equal(seen.headers.te, 'trailers');
      assert.equal(seen.headers['containerd-namespace'], 'k8s.io');
      assert.equal(seen.headers['grpc-accept-encoding'], 'identity');
      assert.equal(seen.headers['grpc-timeout'], '1500m');
      assert.deepEqual(seen.body, grpcFrame(encodeInfoRequest({ digest: 'sha256:abc' })));
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a status in the trailers rejects with its code and percent-decoded message', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream) => reply(stream, [], GrpcStatus.NOT_FOUND, 'content%20sha256:abc%3A%20not%20found%E2%9C%93%zz'));
    const channel = createGrpcChannel({ socket });
    try {
      await assert.rejects(channel.unary(VERSION_VERSION, {}, 5_000), (err: unknown) => {
        assert.ok(isGrpcStatus(err, GrpcStatus.NOT_FOUND));
        assert.equal((err as Error).message, '5 NOT_FOUND: content sha256:abc: not found\u2713%zz');
        return true;
      });
      // The client of the agent maps NOT_FOUND of Info to "absent".
      const client = createContainerdClient({ socket, namespace: 'k8s.io' });
      assert.equal(await client.contentInfo(`sha256:${'a'.repeat(64)}`), undefined);
      client.close();
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a trailers-only response (the status in the headers) and HTTP errors', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream, headers) => {
      const path = String(headers[':path']);
      if (path.endsWith('/Info')) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'denied' }, { endStream: true });
      } else if (path.endsWith('/Version')) {
        stream.respond({ ':status': 503 }, { endStream: true });
      } else {
        stream.respond({ ':status': 200, 'content-type': 'text/html' });
        stream.end('<html>');
      }
    });
    const channel = createGrpcChannel({ socket });
    try {
      await assert.rejects(channel.unary(CONTENT_INFO, {}, 5_000), /^GrpcError: 7 PERMISSION_DENIED: denied$/);
      await assert.rejects(channel.unary(VERSION_VERSION, {}, 5_000), /^GrpcError: 14 UNAVAILABLE: HTTP status 503 instead of 200$/);
      const read = collect(channel, { digest: 'x' });
      assert.match(String(await read.end), /^GrpcError: 2 UNKNOWN: unexpected content-type "text\/html"$/);
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a deadline: sent as grpc-timeout, enforced here, the stream cancelled', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, () => {});
    const channel = createGrpcChannel({ socket });
    try {
      const started = Date.now();
      await assert.rejects(channel.unary(VERSION_VERSION, {}, 150), /^GrpcError: 4 DEADLINE_EXCEEDED: deadline of 150 ms exceeded$/);
      const took = Date.now() - started;
      assert.ok(took >= 140 && took < 1_000, `${took} ms`);
      await waitUntil(() => server.closeCodes.length === 1);
      assert.deepEqual(server.closeCodes, [h2.NGHTTP2_CANCEL]);
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a message split over many DATA frames, several messages in one', async () => {
    const socket = sockets();
    const big = Buffer.alloc(100_000, 7);
    const server = await fakeServer(socket, (stream) => {
      void (async () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        const first = grpcFrame(readResponse(0, big));
        // The prefix alone, then its bytes in pieces, each its own DATA frame.
        for (const piece of [first.subarray(0, 2), first.subarray(2, 5), first.subarray(5, 6), first.subarray(6, 40_000), first.subarray(40_000)]) {
          stream.write(piece);
          await new Promise((r) => setTimeout(r, 5));
        }
        // Three messages (one empty) in one write, then one whose prefix ends the write.
        const three = Buffer.concat([grpcFrame(readResponse(1, Buffer.from('a'))), grpcFrame(Buffer.alloc(0)), grpcFrame(readResponse(3, Buffer.from('c')))]);
        const last = grpcFrame(readResponse(4, Buffer.from('dd')));
        stream.write(Buffer.concat([three, last.subarray(0, 3)]));
        await new Promise((r) => setTimeout(r, 5));
        stream.end(last.subarray(3));
      })();
    });
    const channel = createGrpcChannel({ socket });
    try {
      const read = collect(channel, { digest: 'x' });
      assert.equal(await read.end, undefined);
      assert.deepEqual(read.messages, [
        { offset: 0, data: big },
        { offset: 1, data: Buffer.from('a') },
        { offset: 0, data: Buffer.alloc(0) },
        { offset: 3, data: Buffer.from('c') },
        { offset: 4, data: Buffer.from('dd') },
      ]);
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a stream that ends inside a message, a compressed message, one above the limit', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream, headers, request) => {
      void request.then((body) => {
        const digest = body.subarray(7).toString();
        const frame = grpcFrame(readResponse(0, Buffer.from('abc')));
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        if (digest === 'cut') stream.end(frame.subarray(0, frame.length - 1));
        else if (digest === 'compressed') stream.end(Buffer.concat([Buffer.from([1]), frame.subarray(1)]));
        else stream.end(Buffer.from([0, 0x04, 0x00, 0x00, 0x01])); // 64 MiB + 1, and no bytes at all
      });
    });
    const channel = createGrpcChannel({ socket, maxMessageBytes: 64 * 1024 * 1024 });
    try {
      assert.match(String(await collect(channel, { digest: 'cut' }).end), /^GrpcError: 13 INTERNAL: the stream ended inside a message \(9 bytes left\)$/);
      assert.match(
        String(await collect(channel, { digest: 'compressed' }).end),
        /^GrpcError: 13 INTERNAL: received a compressed message, but no compression was negotiated$/,
      );
      assert.match(
        String(await collect(channel, { digest: 'large' }).end),
        /^GrpcError: 8 RESOURCE_EXHAUSTED: received a message of 67108865 bytes, above the limit of 67108864$/,
      );
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a server stream with backpressure: a paused reader holds the server back, readContent too', async (t) => {
    const socket = sockets();
    const chunk = Buffer.alloc(64 * 1024, 1);
    const total = 64;
    let written = 0;
    const server = await fakeServer(socket, (stream) => {
      void (async () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        for (let i = 0; i < total && !stream.destroyed; i++) {
          stream.write(grpcFrame(readResponse(i * chunk.length, chunk)));
          written++;
          await drained(stream);
        }
        stream.end();
      })();
    });
    const channel = createGrpcChannel({ socket });
    try {
      const messages: unknown[] = [];
      let resolveEnd!: (err: Error | undefined) => void;
      const end = new Promise<Error | undefined>((resolve) => (resolveEnd = resolve));
      const call: GrpcCall = channel.serverStream(
        CONTENT_READ,
        { digest: 'x' },
        {
          onMessage(m) {
            messages.push(m);
            if (messages.length === 1) call.pause();
          },
          onEnd: resolveEnd,
        },
      );
      await waitUntil(() => messages.length === 1);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(messages.length, 1, 'no message while paused');
      t.diagnostic(`paused: the server wrote ${written} of ${total} messages`);
      assert.ok(written < 16, `the server wrote ${written} of ${total} messages of 64 KiB while the reader was paused`);
      call.resume();
      assert.equal(await end, undefined);
      assert.equal(messages.length, total);

      // The client's readContent: a Readable that reads the stream only as it is read.
      written = 0;
      const client = createContainerdClient({ socket, namespace: 'k8s.io' });
      const readable = client.readContent(`sha256:${'b'.repeat(64)}`);
      await new Promise((r) => setTimeout(r, 300));
      t.diagnostic(`unread: the server wrote ${written} of ${total} messages`);
      assert.ok(written < 40, `the server wrote ${written} of ${total} messages with nobody reading`);
      let bytes = 0;
      for await (const data of readable) bytes += (data as Buffer).length;
      assert.equal(bytes, total * chunk.length);
      client.close();
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('cancel resets the stream (CANCEL) and reports nothing', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream) => {
      void (async () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        while (!stream.destroyed) {
          stream.write(grpcFrame(readResponse(0, Buffer.alloc(1024))));
          await drained(stream);
        }
      })();
    });
    const channel = createGrpcChannel({ socket });
    try {
      let ended = false;
      let call!: GrpcCall;
      await new Promise<void>((resolve) => {
        call = channel.serverStream(CONTENT_READ, { digest: 'x' }, { onMessage: () => resolve(), onEnd: () => (ended = true) });
      });
      call.cancel();
      await waitUntil(() => server.closeCodes.length === 1);
      assert.deepEqual(server.closeCodes, [h2.NGHTTP2_CANCEL]);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(ended, false);
      // The session carries on.
      assert.equal(channel.isReady(), true);
    } finally {
      channel.close();
      await server.kill();
    }
  });

  it('a server that goes away mid-stream fails the open calls (UNAVAILABLE), and the next call reconnects', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream, headers) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      if (String(headers[':path']).endsWith('/Read')) stream.write(grpcFrame(readResponse(0, Buffer.from('x'))));
    });
    const channel = createGrpcChannel({ socket });
    try {
      const read = collect(channel, { digest: 'x' });
      const unary = channel.unary(VERSION_VERSION, {}, 10_000);
      unary.catch(() => {});
      await waitUntil(() => read.messages.length === 1);
      const started = Date.now();
      await server.kill();
      assert.match(String(await read.end), new RegExp(`^GrpcError: 14 UNAVAILABLE: connection to ${escape(socket)} (closed|failed: .+)$`));
      await assert.rejects(unary, code(GrpcStatus.UNAVAILABLE));
      assert.ok(Date.now() - started < 1_000);
      assert.equal(channel.isReady(), false);

      await assert.rejects(channel.unary(VERSION_VERSION, {}, 5_000), code(GrpcStatus.UNAVAILABLE));
      const restarted = await fakeServer(socket, (stream) => reply(stream, [versionResponse('again')]));
      try {
        assert.deepEqual(await channel.unary(VERSION_VERSION, {}, 5_000), { version: 'again', revision: 'rev' });
        assert.equal(channel.isReady(), true);
      } finally {
        await restarted.kill();
      }
    } finally {
      channel.close();
    }
  });

  it('nothing listening (no socket file, or a dead listener): fails at once, UNAVAILABLE', async () => {
    const absent = sockets();
    const channel = createGrpcChannel({ socket: absent });
    const started = Date.now();
    await assert.rejects(channel.unary(VERSION_VERSION, {}, 10_000), (err: unknown) => {
      assert.ok(code(GrpcStatus.UNAVAILABLE)(err), String(err));
      assert.equal((err as Error).message, `14 UNAVAILABLE: connection to ${absent} failed: connect ENOENT ${absent}`);
      return true;
    });
    const read = collect(channel, { digest: 'x' });
    assert.ok(code(GrpcStatus.UNAVAILABLE)(await read.end));
    assert.ok(Date.now() - started < 1_000);
    channel.close();

    // A listener killed with SIGKILL leaves its socket file behind: ECONNREFUSED.
    const stale = sockets();
    const child = spawn(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", stale], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    const refused = createGrpcChannel({ socket: stale });
    await assert.rejects(
      refused.unary(VERSION_VERSION, {}, 10_000),
      new RegExp(`^GrpcError: 14 UNAVAILABLE: connection to ${escape(stale)} failed: connect ECONNREFUSED`),
    );
    refused.close();
  });

  it('after close(): not ready, and calls fail', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream) => reply(stream, [versionResponse('v')]));
    const channel = createGrpcChannel({ socket });
    try {
      await channel.unary(VERSION_VERSION, {}, 5_000);
      channel.close();
      assert.equal(channel.isReady(), false);
      await assert.rejects(channel.unary(VERSION_VERSION, {}, 5_000), new RegExp(`^GrpcError: 14 UNAVAILABLE: channel to ${escape(socket)} is closed$`));
    } finally {
      await server.kill();
    }
  });

  it('a unary call answered with two messages, none, or one that does not decode fails', async () => {
    const socket = sockets();
    const server = await fakeServer(socket, (stream, headers) => {
      const path = String(headers[':path']);
      if (path.endsWith('/Info')) reply(stream, []);
      else if (path.endsWith('/Abort')) reply(stream, [Buffer.from([0x0a, 0x05, 0x61])]);
      else reply(stream, [versionResponse('a'), versionResponse('b')]);
    });
    const channel = createGrpcChannel({ socket });
    try {
      await assert.rejects(
        channel.unary(VERSION_VERSION, {}, 5_000),
        /^GrpcError: 12 UNIMPLEMENTED: \/containerd\.services\.version\.v1\.Version\/Version: more than one response message to a unary call$/,
      );
      await assert.rejects(
        channel.unary(CONTENT_INFO, {}, 5_000),
        /^GrpcError: 12 UNIMPLEMENTED: \/containerd\.services\.content\.v1\.Content\/Info: no response message$/,
      );
      await assert.rejects(
        channel.unary(CONTENT_ABORT, {}, 5_000),
        /^GrpcError: 13 INTERNAL: cannot decode a response: google\.protobuf\.Empty: length 5 at byte 1 runs past the end of the message \(1 bytes left\)$/,
      );
    } finally {
      channel.close();
      await server.kill();
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
