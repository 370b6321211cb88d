// The cold-rollout path of the peer source (fetch-path.ts): no candidate
// claims a blob, `follow` names the agent fetching it, and a plain HTTP server
// on 127.0.0.1 plays that agent.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import type { ContentRequest } from '../content/source.ts';
import { createLogger } from '../log/logger.ts';
import { NotFoundError } from '../oci/store.ts';
import { captureLog, type CapturedLog } from '../../tests/support/registry/testkit.ts';
import { freePort } from '../../tests/support/process.ts';
import { startFakePeer } from '../../tests/support/peer/testkit.ts';
import type { Candidate } from './client.ts';
import { PEER_FETCH_SOURCE } from './fetch-path.ts';
import { DigestMismatchError } from './resume.ts';
import { createPeerSource, type PeerSource, type PeerSourceOptions } from './source.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const BLOB: ContentRequest = { registry: 'docker.io', name: 'library/app', kind: 'blob', method: 'GET' };

/** A plain HTTP server as the fetcher agent `name`, answering with `handler`. */
const startFetcher = startFakePeer;

/** Serves `bytes` (200, content-length), in `parts` pieces `delayMs` apart. */
function serveBlob(bytes: Buffer, parts = 1, delayMs = 0): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
    void (async () => {
      const step = Math.ceil(bytes.length / parts);
      for (let offset = 0; offset < bytes.length; offset += step) {
        if (offset > 0) await sleep(delayMs);
        if (res.destroyed) return;
        res.write(bytes.subarray(offset, offset + step));
      }
      res.end();
    })();
  };
}

function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown","detail":null}]}');
}

interface FollowCall {
  digest: string;
  failed: string | undefined;
}

/** A peer source without candidates whose `follow` answers from `answers` in turn (undefined when they run out). */
function sourceWith(
  t: TestContext,
  answers: Array<Candidate | undefined>,
  extra: Partial<PeerSourceOptions> = {},
): { source: PeerSource; calls: FollowCall[]; log: CapturedLog } {
  const calls: FollowCall[] = [];
  const log = captureLog();
  const source = createPeerSource({
    candidates: () => [],
    logger: createLogger('debug', log),
    resolveTags: true,
    requestTimeoutMs: 1000,
    idleTimeoutMs: 500,
    follow: async (digest, failed) => {
      calls.push({ digest, failed });
      return answers[calls.length - 1];
    },
    ...extra,
  });
  t.after(() => source.close());
  return { source, calls, log };
}

async function readAll(read: () => Promise<NodeJS.ReadableStream>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await read()) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe('peer source, blob GETs that no candidate claims (cold rollout)', () => {
  it('streams the blob from the fetcher named by follow: source peer-fetch, the right bytes, counted as coalesced', async (t) => {
    const bytes = randomBytes(300_000);
    const digest = digestOf(bytes);
    const fetcher = await startFetcher(t, 'fetcher-a', serveBlob(bytes));
    const { source, calls } = sourceWith(t, [fetcher.candidate]);
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined, 'located');
    assert.equal(located.source, PEER_FETCH_SOURCE);
    assert.equal(located.source, 'peer-fetch');
    assert.equal(located.peer, 'fetcher-a');
    assert.deepEqual(located.info, { digest, size: bytes.length });
    assert.ok((await readAll(() => located.read())).equals(bytes));
    located.release?.();
    assert.deepEqual(calls, [{ digest, failed: undefined }]);
    assert.deepEqual(fetcher.asked, [{ method: 'GET', url: `/v2/library/app/blobs/${digest}?ns=docker.io`, peerMarker: '1' }]);
    const stats = source.stats();
    assert.equal(stats.coalesced, 1);
    assert.equal(stats.noCandidates, 1);
    assert.equal(stats.digestMismatches, 0);
  });

  it('a fetcher still writing (bytes in pieces, a little apart) is streamed to the end', async (t) => {
    const bytes = randomBytes(2 * 1024 * 1024 + 17);
    const digest = digestOf(bytes);
    const fetcher = await startFetcher(t, 'fetcher-a', serveBlob(bytes, 8, 15));
    const { source } = sourceWith(t, [fetcher.candidate], { verifyHoldBytes: 0 });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.ok((await readAll(() => located.read())).equals(bytes));
    assert.equal(source.stats().coalesced, 1);
  });

  it('the fetcher answering 404: follow is asked again with failed=<fetcher>; undefined then: not found', async (t) => {
    const digest = digestOf(randomBytes(100));
    const fetcher = await startFetcher(t, 'fetcher-a', notFound);
    const { source, calls } = sourceWith(t, [fetcher.candidate, undefined]);
    assert.equal(await source.locate(BLOB, digest), undefined);
    assert.deepEqual(calls, [
      { digest, failed: undefined },
      { digest, failed: 'fetcher-a' },
    ]);
    assert.equal(fetcher.asked.length, 1);
    assert.equal(source.stats().coalesced, 0);
  });

  it('the fetcher answering 404: the second fetcher follow names is streamed from', async (t) => {
    const bytes = randomBytes(50_000);
    const digest = digestOf(bytes);
    const gone = await startFetcher(t, 'fetcher-a', notFound);
    const good = await startFetcher(t, 'fetcher-b', serveBlob(bytes));
    const { source, calls } = sourceWith(t, [gone.candidate, good.candidate]);
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.equal(located.source, 'peer-fetch');
    assert.equal(located.peer, 'fetcher-b');
    assert.ok((await readAll(() => located.read())).equals(bytes));
    assert.deepEqual(
      calls.map((call) => call.failed),
      [undefined, 'fetcher-a'],
    );
    assert.equal(source.stats().coalesced, 1);
  });

  it('follow is asked at most twice: two fetchers without the blob are not found', async (t) => {
    const digest = digestOf(randomBytes(100));
    const a = await startFetcher(t, 'fetcher-a', notFound);
    const b = await startFetcher(t, 'fetcher-b', notFound);
    const c = await startFetcher(t, 'fetcher-c', serveBlob(randomBytes(100)));
    const { source, calls } = sourceWith(t, [a.candidate, b.candidate, c.candidate]);
    assert.equal(await source.locate(BLOB, digest), undefined);
    assert.deepEqual(
      calls.map((call) => call.failed),
      [undefined, 'fetcher-a'],
    );
    assert.equal(c.asked.length, 0);
  });

  it('a fetcher that refuses connections is marked failed too', async (t) => {
    const bytes = randomBytes(10_000);
    const digest = digestOf(bytes);
    const dead: Candidate = { name: 'fetcher-dead', url: `http://127.0.0.1:${await freePort('127.0.0.1')}` };
    const server = await startFetcher(t, 'fetcher-b', serveBlob(bytes));
    const { source, calls } = sourceWith(t, [dead, server.candidate, dead, server.candidate]);
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.equal(located.peer, 'fetcher-b');
    assert.ok((await readAll(() => located.read())).equals(bytes));
    assert.deepEqual(
      calls.map((call) => call.failed),
      [undefined, 'fetcher-dead'],
    );
    assert.equal(source.stats().failures, 1);
    // Penalised now: named again, it is not tried again (no second failed attempt).
    const again = await source.locate(BLOB, digest);
    assert.ok(again !== undefined);
    assert.equal(again.peer, 'fetcher-b');
    assert.ok((await readAll(() => again.read())).equals(bytes));
    assert.deepEqual(
      calls.map((call) => call.failed),
      [undefined, 'fetcher-dead', undefined, 'fetcher-dead'],
    );
    assert.equal(source.stats().failures, 1, 'the penalised fetcher was not connected to again');
  });

  it('follow answering undefined (fetch it upstream): not found, asked once, no request made', async (t) => {
    const digest = digestOf(randomBytes(100));
    const { source, calls } = sourceWith(t, [undefined]);
    assert.equal(await source.locate(BLOB, digest), undefined);
    assert.deepEqual(calls, [{ digest, failed: undefined }]);
  });

  it('HEAD, manifests and invalid digests never call follow', async (t) => {
    const bytes = randomBytes(1000);
    const digest = digestOf(bytes);
    const fetcher = await startFetcher(t, 'fetcher-a', serveBlob(bytes));
    const { source, calls } = sourceWith(t, [fetcher.candidate, fetcher.candidate, fetcher.candidate, fetcher.candidate]);
    const requests: ContentRequest[] = [
      { ...BLOB, method: 'HEAD' },
      { ...BLOB, kind: 'manifest', method: 'GET' },
      { ...BLOB, kind: 'manifest', method: 'HEAD' },
    ];
    for (const request of requests) assert.equal(await source.locate(request, digest), undefined, JSON.stringify(request));
    assert.equal(await source.locate(BLOB, 'sha256:nothex'), undefined);
    assert.deepEqual(calls, []);
    assert.deepEqual(fetcher.asked, []);
    assert.equal(source.stats().coalesced, 0);
  });

  it('a blob some candidate claims is asked of the candidates, not of follow', async (t) => {
    const bytes = randomBytes(1000);
    const digest = digestOf(bytes);
    const holder = await startFetcher(t, 'holder', serveBlob(bytes));
    const { source, calls } = sourceWith(t, [holder.candidate], { candidates: () => [holder.candidate] });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.equal(located.source, 'peer');
    assert.ok((await readAll(() => located.read())).equals(bytes));
    assert.deepEqual(calls, []);
    assert.equal(source.stats().coalesced, 0);
  });

  it('wrong bytes from the fetcher (held back whole): the stream errors, nothing wrong delivered', async (t) => {
    const bytes = randomBytes(100_000);
    const digest = digestOf(bytes);
    const fetcher = await startFetcher(t, 'fetcher-a', serveBlob(randomBytes(bytes.length)));
    let wrongDelivered = 0;
    const { source } = sourceWith(t, [fetcher.candidate], { onWrongBytesDelivered: () => wrongDelivered++ });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    const stream = await located.read();
    const chunks: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
      })(),
      (err: unknown) => err instanceof NotFoundError && err.cause instanceof Error && /do not match/.test(err.cause.message),
    );
    assert.equal(Buffer.concat(chunks).length, 0, 'no byte of the wrong blob went out');
    assert.equal(source.stats().digestMismatches, 1);
    assert.equal(wrongDelivered, 0);
  });

  it('a fetcher that sent wrong bytes lately is not asked again: follow is asked for another one', async (t) => {
    const bytes = randomBytes(20_000);
    const digest = digestOf(bytes);
    const liar = await startFetcher(t, 'fetcher-a', serveBlob(randomBytes(bytes.length)));
    const good = await startFetcher(t, 'fetcher-b', serveBlob(bytes));
    // A penalty of 1 ms: what keeps the liar out afterwards is its distrust for this digest.
    const { source, calls } = sourceWith(t, [liar.candidate, liar.candidate, good.candidate], { penalty: { baseMs: 1, maxMs: 60_000 } });
    const first = await source.locate(BLOB, digest);
    assert.ok(first !== undefined);
    await assert.rejects(
      readAll(() => first.read()),
      NotFoundError,
    );
    assert.equal(liar.asked.length, 1);
    await sleep(10);
    const second = await source.locate(BLOB, digest);
    assert.ok(second !== undefined);
    assert.equal(second.peer, 'fetcher-b');
    assert.ok((await readAll(() => second.read())).equals(bytes));
    assert.equal(liar.asked.length, 1, 'the fetcher that sent wrong bytes was not asked again');
    assert.deepEqual(
      calls.map((call) => call.failed),
      [undefined, undefined, 'fetcher-a'],
    );
    assert.equal(source.stats().coalesced, 2);
  });

  it('wrong bytes from the fetcher (streamed): the stream errors before its last bytes, and the agent is told', async (t) => {
    const bytes = randomBytes(3 * 1024 * 1024);
    const digest = digestOf(bytes);
    const fetcher = await startFetcher(t, 'fetcher-a', serveBlob(randomBytes(bytes.length), 6, 5));
    const told: string[] = [];
    const { source } = sourceWith(t, [fetcher.candidate], { verifyHoldBytes: 0, onWrongBytesDelivered: (d) => told.push(d) });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    const stream = await located.read();
    let received = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) received += (chunk as Buffer).length;
      })(),
      DigestMismatchError,
    );
    assert.ok(received < bytes.length, `never the full length (${received} of ${bytes.length})`);
    assert.equal(source.stats().digestMismatches, 1);
    assert.deepEqual(told, [digest]);
  });
});

describe('freeing a download slot (yieldWaitingFollow)', () => {
  it('cuts the oldest follow with no byte yet once it has waited minWaitMs, each digest once; never a started one', async (t) => {
    const bytes = randomBytes(64 * 1024);
    const digest = digestOf(bytes);
    // A fetcher whose download has not started: headers now, no body.
    const fetcher = await startFetcher(t, 'fetcher-slow', (_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.flushHeaders();
    });
    const { source } = sourceWith(t, [fetcher.candidate, fetcher.candidate], { followIdleTimeoutMs: 10_000, idleTimeoutMs: 5_000 });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    assert.equal(located.headersFirst, true, 'the head goes to containerd at once: a cut is a short body, not a 404');
    const stream = await located.read();
    const ended = new Promise<unknown>((resolve) => {
      stream.on('error', resolve);
      stream.on('end', () => resolve(undefined));
      stream.resume();
    });
    assert.equal(source.yieldWaitingFollow(200), false, 'not before it has waited minWaitMs');
    await sleep(250);
    assert.equal(source.yieldWaitingFollow(200), true);
    const err = await ended;
    assert.ok(err instanceof Error && /download slots/.test(err.message), String(err));
    assert.equal(source.stats().yielded, 1);
    // The same digest again (containerd asked again): not cut a second time within a minute.
    const again = await source.locate(BLOB, digest);
    assert.ok(again !== undefined);
    const second = await again.read();
    second.on('error', () => {});
    second.resume();
    await sleep(250);
    assert.equal(source.yieldWaitingFollow(200), false, 'each digest is cut once');
    second.destroy();
  });

  it('a follow that got its first bytes is not cut', async (t) => {
    const bytes = randomBytes(256 * 1024);
    const digest = digestOf(bytes);
    const fetcher = await startFetcher(t, 'fetcher-started', serveBlob(bytes, 4, 400));
    const { source } = sourceWith(t, [fetcher.candidate], { followIdleTimeoutMs: 10_000, idleTimeoutMs: 5_000, verifyHoldBytes: 0 });
    const located = await source.locate(BLOB, digest);
    assert.ok(located !== undefined);
    const reading = readAll(() => located.read());
    await sleep(250);
    assert.equal(source.yieldWaitingFollow(100), false, 'its first bytes came: nothing to cut');
    assert.ok((await reading).equals(bytes));
  });
});
