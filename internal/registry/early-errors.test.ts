import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { clientErrorResponse, frameworkErrorResponse, rawResponse } from './early-errors.ts';
import { parseRawResponse, rawExchange } from '../../tests/support/registry/raw-http.ts';
import { createTestApp } from '../../tests/support/registry/testkit.ts';
import { firstOciError } from '../../tests/support/registry/oci-error.ts';

const DIGEST = `sha256:${'4'.repeat(64)}`;

test('framework errors: the method first, then the part of the path that does not decode', () => {
  const badUrl = { statusCode: 400, code: 'FST_ERR_BAD_URL' };
  const code = (method: string, url: string): [number, string | undefined] => {
    const response = frameworkErrorResponse(badUrl, method, url);
    return [response.status, response.body.errors[0]?.code];
  };
  assert.deepEqual(code('PUT', '/v2/%zz/blobs/x'), [405, 'UNSUPPORTED']);
  assert.deepEqual(code('GET', '/v2/%zz/blobs/x'), [400, 'NAME_INVALID']);
  assert.deepEqual(code('GET', '/v2/a/blobs/%ff'), [400, 'DIGEST_INVALID']);
  assert.deepEqual(code('GET', '/v2/a/manifests/%ff'), [400, 'TAG_INVALID']);
  assert.deepEqual(code('GET', '/v2/a/manifests/sha256%3A%ff'), [400, 'DIGEST_INVALID']);
  assert.deepEqual(code('HEAD', '/elsewhere/%zz'), [400, 'NAME_INVALID']);
  assert.equal(frameworkErrorResponse(badUrl, 'PUT', '/').headers.allow, 'GET, HEAD');
});

test('client errors of the HTTP parser map to OCI answers; a reset gets none', () => {
  const status = (code: string): [number | undefined, string | undefined] => {
    const response = clientErrorResponse({ code });
    return [response?.status, response?.body.errors[0]?.code];
  };
  assert.deepEqual(status('HPE_INVALID_METHOD'), [405, 'UNSUPPORTED']);
  assert.deepEqual(status('HPE_INVALID_URL'), [400, 'NAME_INVALID']);
  assert.deepEqual(status('HPE_HEADER_OVERFLOW'), [431, 'UNSUPPORTED']);
  assert.deepEqual(status('ERR_HTTP_REQUEST_TIMEOUT'), [408, 'UNSUPPORTED']);
  assert.deepEqual(status('HPE_INVALID_HEADER_TOKEN'), [400, 'UNSUPPORTED']);
  assert.equal(clientErrorResponse({ code: 'ECONNRESET' }), undefined);
  const raw = parseRawResponse(Buffer.from(rawResponse(clientErrorResponse({ code: 'HPE_INVALID_METHOD' }) ?? assert.fail())));
  assert.equal(raw?.status, 405);
  assert.equal(raw?.headers.allow, 'GET, HEAD');
  assert.equal(raw?.headers.connection, 'close');
  assert.equal(firstOciError(raw?.body)?.code, 'UNSUPPORTED');
});

test('on a socket: unknown and lower-case methods, CONNECT, oversized heads and odd Expect get OCI errors; the server carries on', async (t) => {
  const { app } = createTestApp();
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const port = (app.server.address() as AddressInfo).port;
  const cases: Array<[string, number, string]> = [
    ['get /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'UNSUPPORTED'],
    ['BREW /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'UNSUPPORTED'],
    ['CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'UNSUPPORTED'],
    ['PROPFIND /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 405, 'UNSUPPORTED'],
    ['GET /v2/a\x01b/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'NAME_INVALID'],
    [`GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20 * 1024)}\r\n\r\n`, 431, 'UNSUPPORTED'],
    [`GET /v2/a/blobs/${DIGEST} HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nConnection: close\r\n\r\n`, 417, 'UNSUPPORTED'],
  ];
  for (const [request, status, code] of cases) {
    const res = await rawExchange(port, request);
    assert.equal(res?.status, status, request.slice(0, 40));
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.equal(firstOciError(res.body)?.code, code, request.slice(0, 40));
  }
  const ok = await rawExchange(port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(ok?.status, 200);
});
