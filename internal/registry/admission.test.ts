// Peer auth and --local-only on a real listening server: the app on 127.0.0.2
// (the "node IP"), clients connecting from 127.0.0.1 (loopback), 127.0.0.2 and
// 127.0.0.3 (another host, by localAddress), signed requests made by the real
// signer and by the real peer client.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createAddressAllowList } from '../auth/allow.ts';
import { createPeerSigner, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../auth/sign.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { createPeerSource } from '../peer/source.ts';
import { PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { chainSources, storeSource } from '../content/source.ts';
import { createTestApp, rawRequest, type CapturedLog, type RawRequestOptions, type RawResponse } from '../../tests/support/registry/testkit.ts';
import { createLogger } from '../log/logger.ts';

const KEY = Buffer.from('a-shared-secret-of-32-characters');
const SELF = 'mirra-self';
const NODE_IP = '127.0.0.2';

function get(port: number, path: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  return rawRequest(`http://${NODE_IP}:${port}`, path, options);
}

function errorCode(answer: RawResponse): string | undefined {
  const parsed: unknown = JSON.parse(answer.body);
  if (typeof parsed !== 'object' || parsed === null || !('errors' in parsed) || !Array.isArray(parsed.errors)) return undefined;
  const first: unknown = parsed.errors[0];
  return typeof first === 'object' && first !== null && 'code' in first ? String(first.code) : undefined;
}

describe('admission: peer auth and --local-only', () => {
  let app: FastifyInstance;
  let log: CapturedLog;
  let port: number;
  let localBlob: string;
  let peerBlob: string;
  let peerAsked = 0;
  const sign = createPeerSigner({ key: KEY, self: 'mirra-other' });
  const signed = (path: string, method = 'GET', audience = SELF) => sign({ method, path, audience });

  before(async () => {
    const local = createMemoryStore();
    const peers = createMemoryStore();
    localBlob = local.put('on this node');
    peerBlob = peers.put('on another node');
    const peerSource = storeSource(peers, 'peer');
    const test = createTestApp({
      store: local,
      localSource: storeSource(local),
      source: chainSources([
        storeSource(local),
        {
          resolveTag: (request, tag) => peerSource.resolveTag(request, tag),
          locate: (request, digest) => {
            peerAsked++;
            return peerSource.locate(request, digest);
          },
        },
      ]),
      peerVerifier: createPeerVerifier({ keys: [KEY], audience: SELF }),
      // Loopback narrowed to 127.0.0.1 so that 127.0.0.3 can play another host.
      localClients: createAddressAllowList(['127.0.0.1', NODE_IP]),
    });
    app = test.app;
    log = test.log;
    await app.listen({ host: NODE_IP, port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  after(() => app.close());

  const blobPath = (digest: string) => `/v2/library/nginx/blobs/${digest}?ns=docker.io`;

  it('an unsigned peer request gets 401 UNAUTHORIZED, with no WWW-Authenticate', async () => {
    for (const from of ['127.0.0.1', '127.0.0.3']) {
      const answer = await get(port, blobPath(localBlob), { from, headers: { [PEER_REQUEST_HEADER]: '1' } });
      assert.equal(answer.status, 401, from);
      assert.equal(errorCode(answer), 'UNAUTHORIZED');
      assert.match(answer.body, /"reason":"unsigned"/);
      assert.equal(answer.headers['www-authenticate'], undefined);
      assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
    }
  });

  it('a signed peer request from any address is served, from local content only', async () => {
    const asked = peerAsked;
    const path = blobPath(localBlob);
    const answer = await get(port, path, { from: '127.0.0.3', headers: signed(path) });
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'on this node');
    const head = await get(port, path, { from: '127.0.0.3', method: 'HEAD', headers: signed(path, 'HEAD') });
    assert.equal(head.status, 200);
    const elsewhere = blobPath(peerBlob);
    const miss = await get(port, elsewhere, { from: '127.0.0.3', headers: signed(elsewhere) });
    assert.equal(miss.status, 404, 'not forwarded to peers');
    assert.equal(peerAsked, asked);
  });

  it('a replayed, re-targeted, re-addressed or expired request gets 401', async () => {
    const path = blobPath(localBlob);
    const headers = signed(path);
    assert.equal((await get(port, path, { from: '127.0.0.3', headers })).status, 200);
    const replay = await get(port, path, { from: '127.0.0.3', headers });
    assert.equal(replay.status, 401);
    assert.match(replay.body, /"reason":"replayed"/);
    const other = blobPath(peerBlob);
    assert.equal((await get(port, other, { from: '127.0.0.3', headers: signed(path) })).status, 401, 'signed for another path');
    assert.equal((await get(port, path, { from: '127.0.0.3', headers: signed(path, 'GET', 'mirra-someone-else') })).status, 401, 'signed for another agent');
    const stale = createPeerSigner({ key: KEY, self: 'mirra-other', nowMs: () => Date.now() - 60_000 })({ method: 'GET', path, audience: SELF });
    const expired = await get(port, path, { from: '127.0.0.3', headers: stale });
    assert.equal(expired.status, 401);
    assert.match(expired.body, /"reason":"expired"/);
    const wrongKey = createPeerSigner({ key: Buffer.from('not-the-shared-secret-at-all!!!!'), self: 'mirra-other' })({ method: 'GET', path, audience: SELF });
    assert.equal((await get(port, path, { from: '127.0.0.3', headers: wrongKey })).status, 401);
  });

  it('signature headers without the marker are a peer request too (401), not a containerd one', async () => {
    const path = blobPath(peerBlob);
    const { [PEER_REQUEST_HEADER]: _marker, ...rest } = signed(path);
    for (const headers of [rest, { [NONCE_HEADER]: 'x' }, { [TIMESTAMP_HEADER]: '1' }, { [SIGNATURE_HEADER]: 'x' }]) {
      const answer = await get(port, path, { from: '127.0.0.1', headers });
      assert.equal(answer.status, 401, JSON.stringify(headers));
    }
  });

  it("containerd's unsigned requests: served from loopback and the node IP (peers included), 403 DENIED from elsewhere", async () => {
    const path = blobPath(peerBlob);
    for (const from of ['127.0.0.1', NODE_IP]) {
      const answer = await get(port, path, { from });
      assert.equal(answer.status, 200, from);
      assert.equal(answer.body, 'on another node');
    }
    const asked = peerAsked;
    for (const target of [path, '/v2/', `/v2/library/nginx/manifests/latest?ns=docker.io`]) {
      const denied = await get(port, target, { from: '127.0.0.3' });
      assert.equal(denied.status, 403, target);
      assert.equal(errorCode(denied), 'DENIED');
    }
    assert.equal(peerAsked, asked, 'a refused request never reaches the peers');
    const warnings = log.lines.filter((line) => line.level === 40 && line.remoteIp === '127.0.0.3');
    assert.equal(warnings.length, 1, 'one warning per refused address');
  });

  it('probes and other methods are not affected', async () => {
    assert.equal((await get(port, '/readyz', { from: '127.0.0.3' })).status, 200);
    assert.equal((await get(port, '/healthz', { from: '127.0.0.3' })).status, 200);
    assert.equal((await get(port, blobPath(localBlob), { from: '127.0.0.3', method: 'DELETE' })).status, 405);
  });

  it('the peer client signs every request: a peer source reads a blob through the verifier', async () => {
    const source = createPeerSource({
      logger: createLogger('silent'),
      resolveTags: true,
      candidates: () => [{ name: SELF, url: `http://${NODE_IP}:${port}` }],
      sign: createPeerSigner({ key: KEY, self: 'mirra-other' }),
    });
    try {
      for (let round = 0; round < 3; round++) {
        const located = await source.locate({ registry: 'docker.io', name: 'library/nginx', kind: 'blob', method: 'GET' }, localBlob);
        assert.ok(located !== undefined, `round ${round}`);
        const chunks: Buffer[] = [];
        for await (const chunk of await located.read()) chunks.push(chunk as Buffer);
        assert.equal(Buffer.concat(chunks).toString(), 'on this node');
      }
      const unsignedSource = createPeerSource({
        logger: createLogger('silent'),
        resolveTags: true,
        candidates: () => [{ name: SELF, url: `http://${NODE_IP}:${port}` }],
      });
      assert.equal(
        await unsignedSource.locate({ registry: 'docker.io', name: 'library/nginx', kind: 'blob', method: 'GET' }, localBlob),
        undefined,
        'unsigned: refused (401), so not found',
      );
      assert.equal(unsignedSource.stats().failures, 1);
      unsignedSource.close();
    } finally {
      source.close();
    }
  });
});

describe('admission off (the default)', () => {
  it('marked requests are served as before, and any client address is served', async (t) => {
    const { app, store } = createTestApp();
    t.after(() => app.close());
    const digest = store.put('x');
    await app.listen({ host: NODE_IP, port: 0 });
    const { port } = app.server.address() as AddressInfo;
    assert.equal((await get(port, `/v2/a/blobs/${digest}`, { from: '127.0.0.3' })).status, 200);
    assert.equal((await get(port, `/v2/a/blobs/${digest}`, { from: '127.0.0.3', headers: { [PEER_REQUEST_HEADER]: '1' } })).status, 200);
  });

  it('--local-only without peer auth: a marked request is still local-only, other headers do not bypass the address check', async (t) => {
    const { app, store } = createTestApp({ localClients: createAddressAllowList(['127.0.0.1']) });
    t.after(() => app.close());
    const digest = store.put('x');
    await app.listen({ host: NODE_IP, port: 0 });
    const { port } = app.server.address() as AddressInfo;
    assert.equal((await get(port, `/v2/a/blobs/${digest}`, { from: '127.0.0.3', headers: { [PEER_REQUEST_HEADER]: '1' } })).status, 200);
    assert.equal((await get(port, `/v2/a/blobs/${digest}`, { from: '127.0.0.3', headers: { [NONCE_HEADER]: 'abc' } })).status, 403);
    assert.equal((await get(port, `/v2/a/blobs/${digest}`, { from: '127.0.0.3' })).status, 403);
  });
});
