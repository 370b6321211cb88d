// Test support for the peer tests: real registry apps (memory stores) as
// peers on 127.0.0.2.., each with its access log captured, and stores with a
// fault (slow to answer, failing or stalling mid-body, wrong bytes) so that
// the real registry misbehaves the way a sick peer does; and a plain HTTP
// server that plays an agent answering whatever a test wants (startFakePeer).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../../internal/log/logger.ts';
import { createMemoryStore, type MemoryStore } from '../../../internal/oci/storetest/memory-store.ts';
import type { ContentStore } from '../../../internal/oci/store.ts';
import { createRegistryApp } from '../../../internal/registry/app.ts';
import { captureLog, type CapturedLog } from '../registry/testkit.ts';
import type { Candidate } from '../../../internal/peer/client.ts';
import { PEER_REQUEST_HEADER } from '../../../internal/auth/peer-request.ts';

export interface TestPeer {
  name: string;
  candidate: Candidate;
  store: MemoryStore;
  app: FastifyInstance;
  log: CapturedLog;
  /** Access-log lines of the requests this peer answered. */
  requests(): Array<Record<string, unknown>>;
}

export type Fault =
  | { kind: 'none' }
  /** stat() (so the response headers) waits this long. */
  | { kind: 'slow'; delayMs: number }
  /** read() sends `bytes` bytes, then fails (the registry resets the connection). */
  | { kind: 'fail-after'; bytes: number }
  /** read() sends `bytes` bytes, then sends nothing more and never ends. */
  | { kind: 'stall-after'; bytes: number }
  /** read() sends other bytes of the same length. */
  | { kind: 'wrong-bytes' }
  /** stat() claims `extraBytes` more than there are; read() sends the first `bytes` bytes, then fails. */
  | { kind: 'oversized'; extraBytes: number; bytes: number };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function faulty(store: MemoryStore, fault: Fault): ContentStore {
  if (fault.kind === 'none') return store;
  return {
    resolve: (reference) => store.resolve(reference),
    async stat(digest) {
      if (fault.kind === 'slow') await sleep(fault.delayMs);
      const info = await store.stat(digest);
      return fault.kind === 'oversized' && info !== undefined ? { ...info, size: info.size + fault.extraBytes } : info;
    },
    async read(digest, range) {
      const bytes = Buffer.concat(await (await store.read(digest, range)).toArray());
      if (fault.kind === 'slow') return Readable.from([bytes]);
      if (fault.kind === 'wrong-bytes') return Readable.from([randomBytes(bytes.length)]);
      const head = bytes.subarray(0, fault.bytes);
      if (fault.kind === 'fail-after' || fault.kind === 'oversized') {
        return Readable.from(
          (async function* () {
            yield head;
            await sleep(5);
            throw new Error('disk on fire');
          })(),
        );
      }
      const stalled = new Readable({ read() {} });
      stalled.push(head);
      return stalled;
    },
  };
}

/** A real registry app on 127.0.0.<host>, answering from its memory store (through `fault`). */
export async function startPeer(host: number, fault: Fault = { kind: 'none' }): Promise<TestPeer> {
  const store = createMemoryStore();
  const log = captureLog();
  const app = createRegistryApp({ store: faulty(store, fault), logger: createLogger('info', log), mirroredRegistries: [], resolveTags: true });
  const ip = `127.0.0.${host}`;
  await app.listen({ host: ip, port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const name = `peer-${host}`;
  return {
    name,
    candidate: { name, url: `http://${ip}:${port}` },
    store,
    app,
    log,
    requests: () => log.lines.filter((line) => line.msg === 'request'),
  };
}

/** Reads a whole response body; rejects when the connection fails before the end. */
export async function bodyOf(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

export async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

/** What a fake peer was asked. */
export interface AskedOfFake {
  method: string;
  url: string;
  /** The peer marker header's value, if any. */
  peerMarker: string | undefined;
}

export interface FakePeer {
  candidate: Candidate;
  asked: AskedOfFake[];
}

/** A plain HTTP server on 127.0.0.1 playing the agent `name`: every request is answered by `handler` and kept in `asked`; closed after the test. */
export async function startFakePeer(t: TestContext, name: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakePeer> {
  const asked: AskedOfFake[] = [];
  const server: Server = createServer((req, res) => {
    const marker = req.headers[PEER_REQUEST_HEADER];
    asked.push({ method: req.method ?? '', url: req.url ?? '', peerMarker: typeof marker === 'string' ? marker : undefined });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { candidate: { name, url: `http://127.0.0.1:${port}` }, asked };
}

/** How long `promise` took to reject, and with what (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<{ err: unknown; elapsedMs: number }> {
  const started = performance.now();
  try {
    await promise;
  } catch (err) {
    return { err, elapsedMs: performance.now() - started };
  }
  assert.fail('expected a rejection');
}
