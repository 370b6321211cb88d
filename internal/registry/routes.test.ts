import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestApp, listen, rawGet } from '../../tests/support/registry/testkit.ts';

const DIGEST = `sha256:${'3'.repeat(64)}`;

function firstError(body: string): { code: unknown; message: unknown; detail: unknown } {
  const parsed: unknown = JSON.parse(body);
  assert.ok(typeof parsed === 'object' && parsed !== null && 'errors' in parsed && Array.isArray(parsed.errors));
  assert.equal(parsed.errors.length, 1);
  const first: unknown = parsed.errors[0];
  assert.ok(typeof first === 'object' && first !== null && 'code' in first && 'message' in first && 'detail' in first);
  return { code: first.code, message: first.message, detail: first.detail };
}

test('/v2/ answers {} with the API version header, GET and HEAD', async (t) => {
  const { app } = createTestApp();
  t.after(() => app.close());
  for (const url of ['/v2/', '/v2', '/v2/?ns=docker.io']) {
    const get = await app.inject({ url });
    assert.equal(get.statusCode, 200);
    assert.equal(get.body, '{}');
    assert.equal(get.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.match(String(get.headers['content-type']), /^application\/json/);
    const head = await app.inject({ method: 'HEAD', url });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['docker-distribution-api-version'], 'registry/2.0');
  }
});

test('every method but GET and HEAD is 405 UNSUPPORTED with Allow, before any body is read', async (t) => {
  const { app } = createTestApp();
  t.after(() => app.close());
  const urls = ['/v2/', `/v2/a/blobs/${DIGEST}`, '/v2/a/manifests/v1', '/v2/a/blobs/uploads/', '/elsewhere'];
  for (const method of ['PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'] as const) {
    for (const url of urls) {
      const res = await app.inject({ method, url, headers: { 'content-type': 'application/x-bogus' }, payload: 'x'.repeat(100) });
      assert.equal(res.statusCode, 405, `${method} ${url}`);
      assert.equal(res.headers.allow, 'GET, HEAD');
      assert.equal(firstError(res.body).code, 'UNSUPPORTED');
    }
  }
});

// inject() normalises dot segments (also %2e%2e); those are tested on a real socket below.
test('invalid names, tags and digests', async (t) => {
  const { app } = createTestApp();
  t.after(() => app.close());
  const cases: Array<[string, number, string]> = [
    ['/v2/UPPER/manifests/v1', 400, 'NAME_INVALID'],
    ['/v2/a%2Fb/manifests/v1', 400, 'NAME_INVALID'],
    ['/v2/a%2F..%2F..%2Fetc/blobs/' + DIGEST, 400, 'NAME_INVALID'],
    ['/v2//etc/passwd/manifests/v1', 400, 'NAME_INVALID'],
    [`/v2/${'a'.repeat(300)}/manifests/v1`, 400, 'NAME_INVALID'],
    ['/v2/a/manifests/-bad', 400, 'TAG_INVALID'],
    ['/v2/a/manifests/.hidden', 400, 'TAG_INVALID'],
    [`/v2/a/manifests/${'t'.repeat(200)}`, 400, 'TAG_INVALID'],
    ['/v2/a/blobs/sha256:1234', 400, 'DIGEST_INVALID'],
    ['/v2/a/blobs/latest', 400, 'DIGEST_INVALID'],
    ['/v2/a/manifests/sha256:zz', 400, 'DIGEST_INVALID'],
    [`/v2/a/blobs/sha256:${'A'.repeat(64)}`, 400, 'DIGEST_INVALID'],
    ['/v2/a/blobs/sha256:..%2F..%2Fetc%2Fpasswd', 400, 'DIGEST_INVALID'],
  ];
  for (const [url, status, code] of cases) {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await app.inject({ method, url });
      assert.equal(res.statusCode, status, `${method} ${url}`);
      if (method === 'GET') assert.equal(firstError(res.body).code, code, url);
    }
  }
});

test('traversal in the raw request target never reaches the store', async (t) => {
  const { app, store } = createTestApp();
  t.after(() => app.close());
  const digest = store.put('secret');
  const base = await listen(app);
  const cases: Array<[string, number]> = [
    [`/v2/../v2/a/blobs/${digest}`, 400],
    [`/v2/a/../b/blobs/${digest}`, 400],
    [`/v2/./a/blobs/${digest}`, 400],
    [`/v2/a/blobs/../blobs/${digest}`, 400],
    ['/v2/a/manifests/..', 400],
    ['/v2/a/blobs/..', 400],
    ['/v2/%2e%2e/%2e%2e/etc/manifests/v1', 400],
    [`//v2/a/blobs/${digest}`, 404],
    ['/../../etc/passwd', 404],
  ];
  for (const [target, status] of cases) {
    const res = await rawGet(base, target);
    assert.equal(res.status, status, target);
    assert.notEqual(res.body, 'secret');
    assert.ok(firstError(res.body).code, target);
  }
  // The untampered path works.
  assert.equal((await rawGet(base, `/v2/a/blobs/${digest}`)).body, 'secret');
});

test('other endpoints and paths are 404 NAME_UNKNOWN', async (t) => {
  const { app } = createTestApp();
  t.after(() => app.close());
  for (const url of ['/', '/v1/', '/v2/_catalog', '/v2/a/tags/list', '/v2/a/referrers/' + DIGEST, '/favicon.ico']) {
    const res = await app.inject({ url });
    assert.equal(res.statusCode, 404, url);
    assert.equal(firstError(res.body).code, 'NAME_UNKNOWN', url);
    assert.match(String(res.headers['content-type']), /^application\/json/);
  }
});

test("Fastify's own errors come out as OCI errors", async (t) => {
  const { app } = createTestApp();
  t.after(() => app.close());
  const base = await listen(app);
  const badUrl = await rawGet(base, '/v2/%zz/manifests/v1');
  assert.equal(badUrl.status, 400);
  assert.equal(firstError(badUrl.body).code, 'NAME_INVALID');
  const badInject = await app.inject({ url: '/v2/a%/manifests/v1' });
  assert.equal(badInject.statusCode, 400);
  assert.equal(firstError(badInject.body).code, 'NAME_INVALID');
  // A GET with a body (and a content type nobody parses) is served normally.
  const withBody = await app.inject({ method: 'GET', url: '/v2/', headers: { 'content-type': 'application/x-bogus' }, payload: 'junk' });
  assert.equal(withBody.statusCode, 200);
  assert.equal(withBody.body, '{}');
  const notFound = await fetch(`${base}/nowhere`);
  assert.equal(notFound.status, 404);
  assert.equal(firstError(await notFound.text()).code, 'NAME_UNKNOWN');
});
