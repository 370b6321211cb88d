import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { createPeerSigner } from '../auth/sign.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { createFetchRecords, type FetchRecords } from '../coalesce/records.ts';
import { FETCHES_PATH } from '../coalesce/protocol.ts';
import { createTestApp } from '../../tests/support/registry/testkit.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const OTHER_DIGEST = `sha256:${'b'.repeat(64)}`;
const MARKER = { [PEER_REQUEST_HEADER]: '1' };
const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
/** The receiving agent's name (the verifier's audience). */
const SELF = 'node-c';

type Method = 'POST' | 'PUT' | 'DELETE';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The code of an OCI error body. */
function errorCode(body: string): unknown {
  const parsed: unknown = JSON.parse(body);
  assert.ok(isObject(parsed) && Array.isArray(parsed.errors), body);
  const first: unknown = parsed.errors[0];
  assert.ok(isObject(first), body);
  return first.code;
}

/** The fetcher of an ask's answer. */
function fetcherOf(body: string): unknown {
  const parsed: unknown = JSON.parse(body);
  assert.ok(isObject(parsed), body);
  assert.deepEqual(Object.keys(parsed), ['fetcher'], body);
  return parsed.fetcher;
}

function fetchesUrl(digest: string, query: string): string {
  return `${FETCHES_PATH}${digest}${query === '' ? '' : `?${query}`}`;
}

function setup(records: FetchRecords = createFetchRecords({ ttlMs: 3000, isAlive: () => true })): { app: FastifyInstance; records: FetchRecords } {
  const { app } = createTestApp({ fetchRecords: records });
  return { app, records };
}

/** A request with the peer marker (peer auth off). */
function send(app: FastifyInstance, method: Method, digest: string, query: string) {
  return app.inject({ method, url: fetchesUrl(digest, query), headers: MARKER });
}

async function ask(app: FastifyInstance, from: string, failed?: string): Promise<unknown> {
  const res = await send(app, 'POST', DIGEST, `from=${from}${failed === undefined ? '' : `&failed=${failed}`}`);
  assert.equal(res.statusCode, 200, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return fetcherOf(res.body);
}

describe('fetch coordination routes, peer auth off', () => {
  it('a request without the peer marker is refused 403 with an OCI body, and changes nothing', async (t) => {
    const { app, records } = setup();
    t.after(() => app.close());
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const res = await app.inject({ method, url: fetchesUrl(DIGEST, 'from=node-a') });
      assert.equal(res.statusCode, 403, method);
      assert.equal(errorCode(res.body), 'DENIED', method);
    }
    assert.equal(records.stats().records, 0);
    assert.equal(await ask(app, 'node-b'), 'node-b', 'the first real ask still makes the asker the fetcher');
  });

  it('the first asker becomes the fetcher; later askers are told to follow it; another digest is apart', async (t) => {
    const { app, records } = setup();
    t.after(() => app.close());
    assert.equal(await ask(app, 'node-a'), 'node-a');
    assert.equal(await ask(app, 'node-b'), 'node-a');
    assert.equal(await ask(app, 'node-a'), 'node-a', 'the fetcher asking again is still the fetcher');
    const other = await send(app, 'POST', OTHER_DIGEST, 'from=node-b');
    assert.equal(fetcherOf(other.body), 'node-b');
    assert.deepEqual(records.stats(), { records: 2, askedFetch: 3, askedFollow: 1 });
  });

  it('an ask with failed=<fetcher> makes the asker the fetcher; failed=<someone else> does not', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    assert.equal(await ask(app, 'node-a'), 'node-a');
    assert.equal(await ask(app, 'node-b', 'node-x'), 'node-a');
    assert.equal(await ask(app, 'node-b', 'node-a'), 'node-b');
    assert.equal(await ask(app, 'node-d'), 'node-b', 'node-b is now the fetcher');
  });

  it('PUT renews the sender’s record (204): it outlives the ttl counted from the ask', async (t) => {
    let now = 1_000_000;
    const { app } = setup(createFetchRecords({ ttlMs: 3000, isAlive: () => true, nowMs: () => now }));
    t.after(() => app.close());
    assert.equal(await ask(app, 'node-a'), 'node-a');
    now += 2000;
    const renew = await send(app, 'PUT', DIGEST, 'from=node-a');
    assert.equal(renew.statusCode, 204);
    assert.equal(renew.body, '');
    now += 2000;
    assert.equal(await ask(app, 'node-b'), 'node-a', 'renewed at 2 s, alive at 4 s');
    now += 3001;
    assert.equal(await ask(app, 'node-b'), 'node-b', 'not renewed for more than the ttl: gone');
  });

  it('PUT by another agent than the fetcher does not take the record over', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    assert.equal(await ask(app, 'node-a'), 'node-a');
    assert.equal((await send(app, 'PUT', DIGEST, 'from=node-b')).statusCode, 204);
    assert.equal(await ask(app, 'node-d'), 'node-a');
  });

  it('DELETE by the fetcher drops the record (204): the next asker becomes the fetcher; DELETE by another changes nothing', async (t) => {
    const { app, records } = setup();
    t.after(() => app.close());
    assert.equal(await ask(app, 'node-a'), 'node-a');
    const notTheFetcher = await send(app, 'DELETE', DIGEST, 'from=node-b');
    assert.equal(notTheFetcher.statusCode, 204);
    assert.equal(await ask(app, 'node-b'), 'node-a', 'only the fetcher can drop its record');
    const drop = await send(app, 'DELETE', DIGEST, 'from=node-a');
    assert.equal(drop.statusCode, 204);
    assert.equal(drop.body, '');
    assert.equal(records.stats().records, 0);
    assert.equal(await ask(app, 'node-b'), 'node-b');
  });

  it('an invalid digest is 400 DIGEST_INVALID', async (t) => {
    const { app, records } = setup();
    t.after(() => app.close());
    for (const digest of ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'latest', `sha256:${'g'.repeat(64)}`]) {
      for (const method of ['POST', 'PUT', 'DELETE'] as const) {
        const res = await send(app, method, digest, 'from=node-a');
        assert.equal(res.statusCode, 400, `${method} ${digest}`);
        assert.equal(errorCode(res.body), 'DIGEST_INVALID', `${method} ${digest}`);
      }
    }
    assert.equal(records.stats().records, 0);
  });

  it('a missing or invalid `from` (or `failed`) is 400, and changes nothing', async (t) => {
    const { app, records } = setup();
    t.after(() => app.close());
    const queries = [
      '',
      'from=',
      'from=Node-A',
      'from=node_a',
      'from=-node',
      'from=node-',
      `from=${'a'.repeat(254)}`,
      'from=node-a&from=node-b',
      'failed=node-a',
    ];
    for (const query of queries) {
      for (const method of ['POST', 'PUT', 'DELETE'] as const) {
        const res = await send(app, method, DIGEST, query);
        assert.equal(res.statusCode, 400, `${method} ?${query}`);
        assert.equal(errorCode(res.body), 'NAME_INVALID', `${method} ?${query}`);
      }
    }
    const badFailed = await send(app, 'POST', DIGEST, 'from=node-a&failed=NODE-B');
    assert.equal(badFailed.statusCode, 400);
    assert.equal(records.stats().records, 0);
    assert.equal(await ask(app, `${'a'.repeat(253)}`), 'a'.repeat(253), 'a 253-character name is fine');
  });

  it('the read API is as before: GET and HEAD /v2/ answer 200, POST /v2/ is 405', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await app.inject({ method, url: '/v2/' });
      assert.equal(res.statusCode, 200, method);
    }
    const post = await app.inject({ method: 'POST', url: '/v2/', headers: MARKER });
    assert.equal(post.statusCode, 405);
    assert.equal(errorCode(post.body), 'UNSUPPORTED');
    const put = await app.inject({ method: 'PUT', url: `/v2/library/nginx/blobs/${DIGEST}` });
    assert.equal(put.statusCode, 405);
  });

  it('other methods on the fetches path: GET is 404, PATCH is 405', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    const get = await app.inject({ method: 'GET', url: fetchesUrl(DIGEST, 'from=node-a'), headers: MARKER });
    assert.equal(get.statusCode, 404);
    const patch = await app.inject({ method: 'PATCH', url: fetchesUrl(DIGEST, 'from=node-a'), headers: MARKER });
    assert.equal(patch.statusCode, 405);
    assert.equal(errorCode(patch.body), 'UNSUPPORTED');
  });
});

describe('fetch coordination routes, not installed without fetchRecords', () => {
  it('POST, PUT and DELETE are 405 UNSUPPORTED (the method guard), GET is 404', async (t) => {
    const { app } = createTestApp();
    t.after(() => app.close());
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const res = await send(app, method, DIGEST, 'from=node-a');
      assert.equal(res.statusCode, 405, method);
      assert.equal(errorCode(res.body), 'UNSUPPORTED', method);
    }
    const get = await app.inject({ method: 'GET', url: fetchesUrl(DIGEST, 'from=node-a'), headers: MARKER });
    assert.equal(get.statusCode, 404);
    assert.equal(errorCode(get.body), 'NAME_UNKNOWN');
  });
});

describe('fetch coordination routes, peer auth on', () => {
  const setupSigned = () => {
    const records = createFetchRecords({ ttlMs: 3000, isAlive: () => true });
    const verifier = createPeerVerifier({ keys: [KEY], audience: SELF });
    const { app } = createTestApp({ fetchRecords: records, peerVerifier: verifier });
    const signerOf = (self: string, key: Buffer = KEY) => createPeerSigner({ key, self });
    const signed = (request: { method: Method; url: string; by: string; audience?: string; key?: Buffer }) =>
      app.inject({
        method: request.method,
        url: request.url,
        headers: signerOf(request.by, request.key)({ method: request.method, path: request.url, audience: request.audience ?? SELF }),
      });
    return { app, records, signed };
  };

  it('an unsigned request (the marker alone) is 401', async (t) => {
    const { app, records } = setupSigned();
    t.after(() => app.close());
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const res = await send(app, method, DIGEST, 'from=node-a');
      assert.equal(res.statusCode, 401, method);
      assert.equal(errorCode(res.body), 'UNAUTHORIZED', method);
    }
    const unmarked = await app.inject({ method: 'POST', url: fetchesUrl(DIGEST, 'from=node-a') });
    assert.equal(unmarked.statusCode, 403, 'no marker at all: not a peer');
    assert.equal(records.stats().records, 0);
  });

  it('a request signed by node-b naming from=node-a is 401', async (t) => {
    const { app, records, signed } = setupSigned();
    t.after(() => app.close());
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const res = await signed({ method, url: fetchesUrl(DIGEST, 'from=node-a'), by: 'node-b' });
      assert.equal(res.statusCode, 401, method);
      assert.equal(errorCode(res.body), 'UNAUTHORIZED', method);
    }
    assert.equal(records.stats().records, 0);
  });

  it('a correctly signed ask is answered; a replay, another audience or another key is 401', async (t) => {
    const { app, records, signed } = setupSigned();
    t.after(() => app.close());
    const url = fetchesUrl(DIGEST, 'from=node-a');
    const wrongAudience = await signed({ method: 'POST', url, by: 'node-a', audience: 'node-d' });
    assert.equal(wrongAudience.statusCode, 401);
    const wrongKey = await signed({ method: 'POST', url, by: 'node-a', key: Buffer.from('fedcba9876543210fedcba9876543210') });
    assert.equal(wrongKey.statusCode, 401);
    assert.equal(records.stats().records, 0);
    const headers = createPeerSigner({ key: KEY, self: 'node-a' })({ method: 'POST', path: url, audience: SELF });
    const res = await app.inject({ method: 'POST', url, headers });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(fetcherOf(res.body), 'node-a');
    const replay = await app.inject({ method: 'POST', url, headers });
    assert.equal(replay.statusCode, 401, 'the same signature twice');
    const follower = await signed({ method: 'POST', url: fetchesUrl(DIGEST, 'from=node-b'), by: 'node-b' });
    assert.equal(fetcherOf(follower.body), 'node-a');
    const drop = await signed({ method: 'DELETE', url, by: 'node-a' });
    assert.equal(drop.statusCode, 204);
    assert.equal(records.stats().records, 0);
  });

  it('the read API is as before: GET and HEAD /v2/ answer 200 unsigned, POST /v2/ is 405', async (t) => {
    const { app } = setupSigned();
    t.after(() => app.close());
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await app.inject({ method, url: '/v2/' });
      assert.equal(res.statusCode, 200, method);
    }
    const post = await app.inject({ method: 'POST', url: '/v2/' });
    assert.equal(post.statusCode, 405);
    assert.equal(errorCode(post.body), 'UNSUPPORTED');
  });
});
