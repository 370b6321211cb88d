// Redirects at the registry (routes-blobs.ts, admission.ts): a located blob
// with a redirect is answered 307 to its location (GET only; HEAD, Range and
// peer requests are never offered one), and a signed redirect URL that comes
// back verified is a peer request from the signer, answered from the local
// source only, even under --local-only; a bad one is 401 with an OCI error.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { createAddressAllowList } from '../auth/allow.ts';
import { PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { createRedirectSigner, createRedirectVerifier, REDIRECT_TTL_MS, type RedirectVerifier } from '../auth/redirect.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { storeSource, type ContentRequest, type ContentSource, type LocatedContent } from '../content/source.ts';
import { createMemoryStore, type MemoryStore } from '../oci/storetest/memory-store.ts';
import { createTestApp, type CapturedLog } from '../../tests/support/registry/testkit.ts';
import type { RegistryAppOptions } from './app.ts';

const KEY = Buffer.from('a-shared-secret-of-32-characters');
const SELF = 'mirra-self';
const SENDER = 'mirra-other';
const LOCATION = 'http://10.0.0.9:5000/v2/library/app/blobs/x?ns=docker.io&mirra-sig=abc';

const blobTarget = (digest: string): string => `/v2/library/app/blobs/${digest}?ns=docker.io`;

/** A source over its own store that records what it was asked; what it locates carries `redirect` when given. */
interface RecordingSource {
  store: MemoryStore;
  source: ContentSource;
  asked: ContentRequest[];
  taken: () => number;
  released: () => number;
}

function recordingSource(name: string, withRedirect = false): RecordingSource {
  const store = createMemoryStore();
  const inner = storeSource(store, name);
  const asked: ContentRequest[] = [];
  let taken = 0;
  let released = 0;
  const redirect = { location: LOCATION, taken: () => void taken++ };
  const source: ContentSource = {
    resolveTag: (request, tag) => inner.resolveTag(request, tag),
    async locate(request, digest) {
      asked.push(request);
      const located = await inner.locate(request, digest);
      if (located === undefined) return undefined;
      const extra: Partial<LocatedContent> = withRedirect ? { peer: 'holder-a', redirect } : {};
      return { ...located, ...extra, release: () => void released++ };
    },
  };
  return { store, source, asked, taken: () => taken, released: () => released };
}

function startApp(t: TestContext, options: Partial<RegistryAppOptions>): { app: FastifyInstance; log: CapturedLog } {
  const { app, log } = createTestApp(options);
  t.after(() => app.close());
  return { app, log };
}

/** The code of the first error of an OCI error body. */
function errorCode(res: LightMyRequestResponse): unknown {
  const parsed = res.json<{ errors?: Array<{ code?: unknown }> }>();
  return parsed.errors?.[0]?.code;
}

/** The request target of `digest` signed for `audience` by SENDER, at `nowMs`. */
function signedTarget(digest: string, options: { audience?: string; nowMs?: number; key?: Buffer } = {}): string {
  const sign = createRedirectSigner({ key: options.key ?? KEY, self: SENDER, nowMs: () => options.nowMs ?? Date.now() });
  return sign({ path: blobTarget(digest), audience: options.audience ?? SELF });
}

const verifierForSelf = (): RedirectVerifier => createRedirectVerifier({ keys: [KEY], audience: SELF });

describe('registry: a located redirect is answered 307', () => {
  it('GET: 307 with the location, the digest and no body; taken once, released', async (t) => {
    const peers = recordingSource('peer', true);
    const { app, log } = startApp(t, { source: peers.source });
    const digest = peers.store.put(Buffer.alloc(5000, 7));
    const res = await app.inject({ url: blobTarget(digest) });
    assert.equal(res.statusCode, 307);
    assert.equal(res.headers.location, LOCATION);
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.headers['content-length'], '0');
    assert.equal(res.body, '');
    assert.equal(peers.taken(), 1);
    assert.equal(peers.released(), 1);
    assert.equal(peers.asked[0]?.redirectable, true);
    const line = log.lines.find((entry) => entry.msg === 'request');
    assert.equal(line?.status, 307);
    assert.equal(line?.peer, 'holder-a');
  });

  it('HEAD: 200 with the content-length, no redirect taken', async (t) => {
    const peers = recordingSource('peer', true);
    const { app } = startApp(t, { source: peers.source });
    const digest = peers.store.put(Buffer.alloc(5000, 7));
    const res = await app.inject({ url: blobTarget(digest), method: 'HEAD' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], '5000');
    assert.equal(res.headers.location, undefined);
    assert.equal(peers.taken(), 0);
    assert.equal(peers.asked[0]?.redirectable, false);
  });

  it('a GET with a Range reaches the source with redirectable false', async (t) => {
    const peers = recordingSource('peer');
    const { app } = startApp(t, { source: peers.source });
    const digest = peers.store.put(Buffer.alloc(5000, 7));
    const res = await app.inject({ url: blobTarget(digest), headers: { range: 'bytes=10-19' } });
    assert.equal(res.statusCode, 206);
    assert.deepEqual(
      peers.asked.map((request) => [request.method, request.redirectable]),
      [['GET', false]],
    );
  });

  it('a peer request (the marker, peer auth off) reaches the local source with redirectable false', async (t) => {
    const peers = recordingSource('peer', true);
    const local = recordingSource('local');
    const { app } = startApp(t, { source: peers.source, localSource: local.source });
    const digest = local.store.put(Buffer.alloc(5000, 7));
    const res = await app.inject({ url: blobTarget(digest), headers: { [PEER_REQUEST_HEADER]: '1' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.rawPayload.length, 5000);
    assert.equal(peers.asked.length, 0);
    assert.deepEqual(
      local.asked.map((request) => [request.method, request.redirectable]),
      [['GET', false]],
    );
  });

  it('a GET whose If-None-Match matches: 304, not a redirect', async (t) => {
    const peers = recordingSource('peer', true);
    const { app } = startApp(t, { source: peers.source });
    const digest = peers.store.put(Buffer.alloc(5000, 7));
    const res = await app.inject({ url: blobTarget(digest), headers: { 'if-none-match': `"${digest}"` } });
    assert.equal(res.statusCode, 304);
    assert.equal(peers.taken(), 0);
  });
});

/** An app with a redirect verifier for SELF: `peers` as its source, `local` as its local source, plus `options`. */
function admittingApp(
  t: TestContext,
  options: Partial<RegistryAppOptions> = {},
): { app: FastifyInstance; peers: RecordingSource; local: RecordingSource; log: CapturedLog } {
  const peers = recordingSource('peer');
  const local = recordingSource('local');
  const { app, log } = startApp(t, { source: peers.source, localSource: local.source, redirectVerifier: verifierForSelf(), ...options });
  return { app, peers, local, log };
}

describe('admission of signed redirects', () => {
  it('a correctly signed URL is a peer request from the signer: answered from the local source only', async (t) => {
    const { app, peers, local, log } = admittingApp(t);
    const digest = local.store.put('on this node');
    peers.store.put('on this node');
    const res = await app.inject({ url: signedTarget(digest) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'on this node');
    assert.equal(peers.asked.length, 0, 'never passed on to peers');
    assert.deepEqual(
      local.asked.map((request) => [request.method, request.redirectable]),
      [['GET', false]],
    );
    const line = log.lines.find((entry) => entry.msg === 'request');
    assert.equal(line?.fromPeer, true);
    assert.equal(line?.source, 'local');
  });

  it('a signed URL for a blob this node lacks: 404, not asked of peers', async (t) => {
    const { app, peers } = admittingApp(t);
    const digest = peers.store.put('on another node');
    const res = await app.inject({ url: signedTarget(digest) });
    assert.equal(res.statusCode, 404);
    assert.equal(errorCode(res), 'BLOB_UNKNOWN');
    assert.equal(peers.asked.length, 0);
  });

  it('--local-only does not refuse it (containerd of another node follows the redirect), though it refuses an unsigned request', async (t) => {
    const { app, local } = admittingApp(t, { localClients: createAddressAllowList(['10.0.0.1']) });
    const digest = local.store.put('on this node');
    const plain = await app.inject({ url: blobTarget(digest) });
    assert.equal(plain.statusCode, 403, 'inject comes from 127.0.0.1, not on the list');
    assert.equal(errorCode(plain), 'DENIED');
    const res = await app.inject({ url: signedTarget(digest) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'on this node');
  });

  it('with peer auth on as well, a signed redirect (no signature headers) is still accepted', async (t) => {
    const { app, local } = admittingApp(t, { peerVerifier: createPeerVerifier({ keys: [KEY], audience: SELF }) });
    const digest = local.store.put('on this node');
    const res = await app.inject({ url: signedTarget(digest) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'on this node');
  });

  it('a tampered, expired, other-audience, other-key or malformed URL: 401 UNAUTHORIZED with an OCI error body', async (t) => {
    const { app, peers, local } = admittingApp(t);
    const digest = local.store.put('on this node');
    const other = local.store.put('also on this node');
    const good = signedTarget(digest);
    const refused: Array<[string, string]> = [
      [good.replace(digest, other), 'bad signature'],
      [good.replace('ns=docker.io', 'ns=quay.io'), 'bad signature'],
      [good.replace(`mirra-from=${SENDER}`, 'mirra-from=mirra-x'), 'bad signature'],
      [good.slice(0, -1) + (good.endsWith('0') ? '1' : '0'), 'bad signature'],
      [signedTarget(digest, { nowMs: Date.now() - REDIRECT_TTL_MS - 1000 }), 'expired'],
      [signedTarget(digest, { audience: 'mirra-third' }), 'bad signature'],
      [signedTarget(digest, { key: Buffer.from('not-the-shared-secret-at-all!!!!') }), 'bad signature'],
      [`${blobTarget(digest)}&mirra-sig=abc`, 'malformed'],
    ];
    for (const [url, reason] of refused) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 401, url);
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(errorCode(res), 'UNAUTHORIZED', url);
      assert.match(res.body, new RegExp(`"reason":"redirect: ${reason}"`), url);
      assert.equal(res.headers['www-authenticate'], undefined);
    }
    assert.equal(peers.asked.length + local.asked.length, 0, 'no content was looked at');
  });

  it('without a redirect verifier, a URL that merely contains &mirra-sig= is an ordinary request', async (t) => {
    const peers = recordingSource('peer');
    const local = recordingSource('local');
    const { app } = startApp(t, { source: peers.source, localSource: local.source });
    const digest = peers.store.put('from a peer');
    const res = await app.inject({ url: signedTarget(digest, { audience: 'anyone' }) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'from a peer');
    assert.equal(local.asked.length, 0);
    assert.deepEqual(
      peers.asked.map((request) => request.redirectable),
      [true],
    );
  });
});
