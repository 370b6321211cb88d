import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../log/logger.ts';
import { MediaType } from '../oci/mediatype.ts';
import { createMemoryStore, type MemoryStore } from '../oci/storetest/memory-store.ts';
import { createRegistryApp } from '../registry/app.ts';
import { PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { chainSources, storeSource } from '../content/source.ts';
import { captureLog, listen, sampleManifest, type CapturedLog } from '../../tests/support/registry/testkit.ts';
import type { Candidate } from './client.ts';
import { createPeerSource, type PeerSource } from './source.ts';
import { freePort } from '../../tests/support/process.ts';
import { bodyOf, startPeer, until, type TestPeer } from '../../tests/support/peer/testkit.ts';

/** A GET that counts the body bytes that arrive, and whether the response ended in an error. */
function rawDownload(url: string): Promise<{ status: number; bytes: number; failed: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, failed: false }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes, failed: true }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const BLOB_BYTES = 4 * 1024 * 1024 + 123;

/** The peers, some of them sick, and an agent whose registry chains its local store with the peer source. */
interface Fixture {
  good: TestPeer;
  other: TestPeer;
  slow: TestPeer;
  failing: TestPeer;
  wrong: TestPeer;
  stalling: TestPeer;
  oversized: TestPeer;
  peers: TestPeer[];
  local: MemoryStore;
  source: PeerSource;
  app: FastifyInstance;
  base: string;
  log: CapturedLog;
  /** key -> candidates, set by each test; anything else has none. */
  claims: Map<string, Candidate[]>;
  /** The keys the routing index was asked about. */
  asked: string[];
  /** Puts the bytes on the given peers and makes them the candidates of the digest, in that order. */
  share(bytes: Buffer, holders: TestPeer[], order?: TestPeer[]): string;
  accessLines(): Array<Record<string, unknown>>;
}

async function startPeers(): Promise<Pick<Fixture, 'good' | 'other' | 'slow' | 'failing' | 'wrong' | 'stalling' | 'oversized' | 'peers'>> {
  const good = await startPeer(2);
  const other = await startPeer(3);
  const slow = await startPeer(4, { kind: 'slow', delayMs: 1500 });
  const failing = await startPeer(5, { kind: 'fail-after', bytes: 1536 * 1024 });
  const wrong = await startPeer(6, { kind: 'wrong-bytes' });
  const stalling = await startPeer(7, { kind: 'stall-after', bytes: 1024 * 1024 });
  const oversized = await startPeer(8, { kind: 'oversized', extraBytes: 1024 * 1024, bytes: 1536 * 1024 });
  return { good, other, slow, failing, wrong, stalling, oversized, peers: [good, other, slow, failing, wrong, stalling, oversized] };
}

async function startFixture(): Promise<Fixture> {
  const peers = await startPeers();
  const claims = new Map<string, Candidate[]>();
  const asked: string[] = [];
  const local = createMemoryStore();
  const log = captureLog();
  const logger = createLogger('info', log);
  const source = createPeerSource({
    candidates: (key) => {
      asked.push(key);
      return claims.get(key) ?? [];
    },
    logger,
    resolveTags: true,
    hedge: { minDelayMs: 50, maxDelayMs: 50 },
    requestTimeoutMs: 3000,
    idleTimeoutMs: 300,
    // Blobs here are streamed (only the last chunk held back); holding whole blobs: verify.test.ts.
    verifyHoldBytes: 1024 * 1024,
  });
  const app = createRegistryApp({
    store: local,
    logger,
    mirroredRegistries: [],
    resolveTags: true,
    source: chainSources([storeSource(local), source]),
  });
  const base = await listen(app);
  const share = (bytes: Buffer, holders: TestPeer[], order: TestPeer[] = holders): string => {
    let digest = '';
    for (const peer of holders) digest = peer.store.put(bytes);
    claims.set(
      digest,
      order.map((peer) => peer.candidate),
    );
    return digest;
  };
  const accessLines = (): Array<Record<string, unknown>> => log.lines.filter((line) => line.msg === 'request');
  return { ...peers, local, source, app, base, log, claims, asked, share, accessLines };
}

/** A blob served from peers: HEAD and GET, a Range, a miss, an unreachable peer. */
function servingTests(fixture: () => Fixture): void {
  it('serves a blob from the first peer that has it, HEAD and GET, logged as peer', async () => {
    const { good, other, base, share, accessLines } = fixture();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [good, other]);
    const url = `${base}/v2/library/app/blobs/${digest}?ns=docker.io`;
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.length));
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(bytes.length));
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.equal(sha256(await bodyOf(res)), sha256(bytes));
    await until(() => accessLines().length === 2);
    for (const line of accessLines()) {
      assert.equal(line.source, 'peer');
      assert.equal(line.peer, good.name);
    }
    assert.equal(other.requests().length, 0, 'the second peer was not asked');
    assert.deepEqual(
      good.requests().map((line) => [line.method, line.status, line.fromPeer]),
      [
        ['HEAD', 200, true],
        ['GET', 200, true],
      ],
    );
  });

  it('a Range request is answered 200 with the whole blob, read and verified (a peer is never asked for a range it could get wrong)', async () => {
    const { good, base, share } = fixture();
    const bytes = randomBytes(100_000);
    const digest = share(bytes, [good]);
    for (const header of ['bytes=1000-1999', 'bytes=99000-', 'bytes=0-', 'bytes=0-0']) {
      good.log.lines.length = 0;
      const res = await fetch(`${base}/v2/library/app/blobs/${digest}`, { headers: { range: header } });
      assert.equal(res.status, 200, header);
      assert.equal(res.headers.get('content-range'), null);
      assert.equal(res.headers.get('accept-ranges'), 'none');
      assert.equal(res.headers.get('content-length'), String(bytes.length));
      assert.deepEqual(await bodyOf(res), bytes);
      assert.deepEqual(
        good.requests().map((line) => [line.method, line.status]),
        [['GET', 200]],
        `${header}: the peer sent the whole blob`,
      );
    }
  });

  it('a 404 from a peer (false positive) moves on to the next one at once', async () => {
    const { good, other, source, base, share } = fixture();
    const bytes = randomBytes(10_000);
    const digest = share(bytes, [good], [other, good]);
    const before = source.stats();
    const started = performance.now();
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await bodyOf(res), bytes);
    assert.ok(performance.now() - started < 45, 'no hedge delay was waited for');
    assert.equal(source.stats().misses - before.misses, 1);
    assert.equal(source.stats().hedges - before.hedges, 0);
    assert.equal(other.requests()[0]?.status, 404);
  });

  it('a peer that cannot be reached is skipped; none reachable: 404', async () => {
    const { good, base, claims, share } = fixture();
    const dead: Candidate = { name: 'dead', url: `http://127.0.0.9:${await freePort('127.0.0.9')}` };
    const bytes = randomBytes(10_000);
    const digest = share(bytes, [good]);
    claims.set(digest, [dead, good.candidate]);
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await bodyOf(res), bytes);
    claims.set(digest, [dead]);
    const miss = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(miss.status, 404);
    await bodyOf(miss);
  });
}

/** Slow, failing, stalling and wrong peers. */
function resumeTests(fixture: () => Fixture): void {
  it('a slow first peer is hedged: the second answers without waiting for the first', async () => {
    const { good, slow, source, base, share, accessLines } = fixture();
    const bytes = randomBytes(50_000);
    const digest = share(bytes, [slow, good]);
    const before = source.stats();
    const started = performance.now();
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await bodyOf(res), bytes);
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs < 600, `took ${elapsedMs} ms; the slow peer takes 1500 ms`);
    assert.equal(source.stats().hedges - before.hedges, 1);
    await until(() => accessLines().length === 1);
    assert.equal(accessLines()[0]?.peer, good.name);
  });

  it('a peer failing mid-stream: the rest comes from the next peer with a Range', async () => {
    const { good, failing, source, base, share } = fixture();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [failing, good]);
    const before = source.stats();
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(res.status, 200);
    const body = await bodyOf(res);
    assert.equal(body.length, bytes.length);
    assert.equal(sha256(body), sha256(bytes));
    assert.equal(source.stats().resumes - before.resumes, 1);
    const ranged = good.requests().find((line) => line.status === 206);
    assert.ok(ranged, 'the next peer was asked for the rest with a Range');
    assert.ok((ranged.bytesSent as number) < bytes.length && (ranged.bytesSent as number) >= bytes.length - 1536 * 1024);
  });

  it('a peer stalling mid-stream is given up on after the idle timeout, and resumed from', async () => {
    const { other, stalling, source, base, share } = fixture();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [stalling, other]);
    const before = source.stats();
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(sha256(await bodyOf(res)), sha256(bytes));
    assert.equal(source.stats().resumes - before.resumes, 1);
  });

  it('wrong bytes from a peer: the client never gets a complete response', async () => {
    const { wrong, source, base, share, accessLines } = fixture();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [wrong]);
    const before = source.stats();
    const received = await rawDownload(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(received.status, 200);
    assert.ok(received.failed, 'the connection failed');
    assert.ok(received.bytes < bytes.length, `got ${received.bytes} of ${bytes.length} bytes`);
    assert.equal(source.stats().digestMismatches - before.digestMismatches, 1);
    await until(() => accessLines().length === 1);
    assert.equal(accessLines()[0]?.aborted, true);
  });

  it('wrong bytes of a small blob: 404 before anything is sent', async () => {
    const { wrong, base, share } = fixture();
    const bytes = randomBytes(1000);
    const digest = share(bytes, [wrong]);
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(res.status, 404);
    await bodyOf(res);
  });
}

/** Every candidate failing, a lying size, requests from peers, no candidate. */
function failureTests(fixture: () => Fixture): void {
  it('every candidate failing mid-stream: the response is cut short', async () => {
    const { failing, base, share, accessLines } = fixture();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [failing]);
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(res.status, 200);
    await assert.rejects(bodyOf(res));
    await until(() => accessLines().length === 1);
    assert.equal(accessLines()[0]?.aborted, true);
    assert.ok((accessLines()[0]?.bytesSent as number) < bytes.length);
  });

  it('a peer lying about a size: its body fails, the honest holder is not penalised for disagreeing, and the next pull gets it whole', async () => {
    const { other, oversized, base, log, share } = fixture();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [oversized, other]);
    const penalised = (): unknown[] => log.lines.filter((line) => line.msg?.toString().startsWith('peer penalised')).map((line) => line.peer);
    const first = await rawDownload(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(first.status, 200);
    assert.ok(first.failed, 'sent with the lying size, the response is cut short');
    assert.equal(other.requests().at(-1)?.status, 206, 'the honest holder was asked for the rest');
    assert.ok(log.lines.some((line) => line.msg?.toString().startsWith('peer disagrees on the size') && line.peer === other.name));
    assert.deepEqual(penalised(), [oversized.name], 'only the peer whose body failed');
    const second = await fetch(`${base}/v2/library/app/blobs/${digest}`);
    assert.equal(second.status, 200);
    assert.equal(Number(second.headers.get('content-length')), bytes.length);
    assert.equal(sha256(await bodyOf(second)), sha256(bytes));
  });

  it('a request from a peer is answered from local content only', async () => {
    const { good, other, local, base, asked, share, accessLines } = fixture();
    const bytes = randomBytes(1000);
    const digest = share(bytes, [good, other]);
    const res = await fetch(`${base}/v2/library/app/blobs/${digest}`, { headers: { [PEER_REQUEST_HEADER]: '1' } });
    assert.equal(res.status, 404);
    await bodyOf(res);
    assert.deepEqual(asked, [], 'the routing index was not even asked');
    assert.equal(good.requests().length + other.requests().length, 0);
    local.put(bytes);
    const hit = await fetch(`${base}/v2/library/app/blobs/${digest}`, { headers: { [PEER_REQUEST_HEADER]: '1' } });
    assert.equal(hit.status, 200);
    assert.deepEqual(await bodyOf(hit), bytes);
    await until(() => accessLines().length === 2);
    assert.deepEqual(
      accessLines().map((line) => [line.source, line.fromPeer]),
      [
        ['local', true],
        ['local', true],
      ],
    );
    local.delete(digest);
  });

  it('no candidate: 404 without network I/O (latency: npm run bench:p2p)', async () => {
    const { peers, base, asked } = fixture();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL(base);
    const get = (path: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ agent, host: url.hostname, port: url.port, path }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      // Warm up (connection, JIT) before measuring.
      for (let i = 0; i < 50; i++) assert.equal(await get(`/v2/library/app/blobs/sha256:${'9'.repeat(64)}`), 404);
      asked.length = 0;
      for (let i = 0; i < 500; i++) {
        const digest = `sha256:${sha256(Buffer.from(String(i)))}`;
        const status = await get(`/v2/library/app/${i % 2 === 0 ? 'blobs' : 'manifests'}/${digest}?ns=docker.io`);
        assert.equal(status, 404);
      }
    } finally {
      agent.destroy();
    }
    assert.equal(asked.length, 500);
    for (const peer of peers) assert.equal(peer.requests().length, 0);
  });
}

/** Manifests by digest and tags. */
function manifestAndTagTests(fixture: () => Fixture): void {
  it('manifests by digest are fetched whole and verified', async () => {
    const { good, wrong, base, share } = fixture();
    const manifest = Buffer.from(sampleManifest(2));
    const digest = share(manifest, [good]);
    for (const peer of [good]) peer.store.put(manifest, MediaType.ociManifest);
    const res = await fetch(`${base}/v2/library/app/manifests/${digest}?ns=docker.io`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), MediaType.ociManifest);
    assert.deepEqual(await bodyOf(res), manifest);
    // A peer that names another media type: the verified body wins.
    const lying = Buffer.from(sampleManifest(4));
    const lyingDigest = share(lying, [good]);
    good.store.put(lying, MediaType.dockerManifestList);
    const told = await fetch(`${base}/v2/library/app/manifests/${lyingDigest}?ns=docker.io`);
    assert.equal(told.status, 200);
    assert.equal(told.headers.get('content-type'), MediaType.ociManifest);
    await bodyOf(told);
    const fromWrong = share(Buffer.from(sampleManifest(3)), [wrong]);
    const bad = await fetch(`${base}/v2/library/app/manifests/${fromWrong}?ns=docker.io`);
    assert.equal(bad.status, 404);
    await bodyOf(bad);
  });

  it('tags resolve through the peers that claim the reference', async () => {
    const { good, other, base, claims, asked, share } = fixture();
    const manifest = Buffer.from(sampleManifest(1));
    const digest = share(manifest, [other], [good, other]);
    other.store.put(manifest, MediaType.ociManifest);
    other.store.tag('docker.io/library/app:v1', digest);
    claims.set('docker.io/library/app:v1', [good.candidate, other.candidate]);
    const head = await fetch(`${base}/v2/library/app/manifests/v1?ns=docker.io`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), digest);
    assert.equal(head.headers.get('content-type'), MediaType.ociManifest);
    assert.equal(head.headers.get('content-length'), String(manifest.length));
    const get = await fetch(`${base}/v2/library/app/manifests/v1?ns=docker.io`);
    assert.equal(get.status, 200);
    assert.deepEqual(await bodyOf(get), manifest);
    assert.ok(asked.includes('docker.io/library/app:v1'));
    const unknown = await fetch(`${base}/v2/library/app/manifests/v2?ns=docker.io`);
    assert.equal(unknown.status, 404);
    await bodyOf(unknown);
  });

  it('concurrent resolves of one tag make one peer request; the next one asks again', async () => {
    const { other, source, claims } = fixture();
    const manifest = Buffer.from(sampleManifest(2));
    const digest = other.store.put(manifest, MediaType.ociManifest);
    other.store.tag('docker.io/library/app:v3', digest);
    claims.set('docker.io/library/app:v3', [other.candidate]);
    const request = { registry: 'docker.io', name: 'library/app', kind: 'manifest', method: 'HEAD' } as const;
    const tagHeads = (): number => other.requests().filter((line) => line.method === 'HEAD' && String(line.url).includes('/manifests/v3')).length;
    const resolved = await Promise.all(Array.from({ length: 10 }, () => source.resolveTag(request, 'v3')));
    assert.deepEqual(new Set(resolved.map((r) => r?.digest)), new Set([digest]));
    await until(() => tagHeads() >= 1);
    await new Promise((resolve) => setTimeout(resolve, 100)); // access-log lines of any other request would be in by now
    assert.equal(tagHeads(), 1);
    await source.resolveTag(request, 'v3');
    await until(() => tagHeads() === 2);
    // The manifest itself likewise: one GET for concurrent requests.
    claims.set(digest, [other.candidate]);
    const manifestGets = (): number => other.requests().filter((line) => line.method === 'GET' && String(line.url).includes(`/manifests/${digest}`)).length;
    const located = await Promise.all(Array.from({ length: 10 }, () => source.locate(request, digest)));
    assert.ok(located.every((l) => l?.info.size === manifest.length && l.info.mediaType === MediaType.ociManifest));
    await until(() => manifestGets() >= 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(manifestGets(), 1);
    assert.deepEqual(Buffer.concat(await (await located[9]!.read()).toArray()), manifest);
  });
}

describe('peer source', () => {
  let started: Fixture | undefined;
  const fixture = (): Fixture => {
    assert.ok(started, 'the peers and the agent are started');
    return started;
  };

  before(async () => {
    started = await startFixture();
  });

  after(async () => {
    await started?.app.close();
    started?.source.close();
    await Promise.all((started?.peers ?? []).map((peer) => peer.app.close()));
  });

  beforeEach(() => {
    const { claims, asked, log, peers } = fixture();
    claims.clear();
    asked.length = 0;
    log.lines.length = 0;
    for (const peer of peers) peer.log.lines.length = 0;
  });

  servingTests(fixture);
  resumeTests(fixture);
  failureTests(fixture);
  manifestAndTagTests(fixture);
});

describe('peer source with tag resolution off', () => {
  it('never asks peers about tags', async (t) => {
    const peer = await startPeer(2);
    const asked: string[] = [];
    const source = createPeerSource({
      candidates: (key) => {
        asked.push(key);
        return [peer.candidate];
      },
      logger: createLogger('silent'),
      resolveTags: false,
    });
    const local = createMemoryStore();
    const app = createRegistryApp({
      store: local,
      logger: createLogger('silent'),
      mirroredRegistries: [],
      resolveTags: true,
      source: chainSources([storeSource(local), source]),
    });
    t.after(async () => {
      await app.close();
      source.close();
      await peer.app.close();
    });
    const manifest = Buffer.from(sampleManifest(1));
    const digest = peer.store.put(manifest, MediaType.ociManifest);
    peer.store.tag('docker.io/library/app:v1', digest);
    const res = await app.inject({ url: '/v2/library/app/manifests/v1?ns=docker.io' });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(asked, []);
    assert.equal(peer.requests().length, 0);
    const byDigest = await app.inject({ url: `/v2/library/app/manifests/${digest}?ns=docker.io` });
    assert.equal(byDigest.statusCode, 200, 'content by digest still comes from peers');
    assert.deepEqual(asked, [digest]);
  });
});
