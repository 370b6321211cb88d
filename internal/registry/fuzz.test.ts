// Fuzzing the registry end to end: request targets (spec names, tags and
// digests and their mutations, traversal in every encoding, overlong paths,
// random strings) and methods, through app.inject() and through a real socket
// with raw bytes (no client normalises the target). Every answer is checked
// against the oracle (tests/support/fuzz/registry-oracle.ts): the right OCI
// error, 200 only for a valid request of content that exists, never a 5xx,
// never a crash (the server still answers every 10 cases and at the end).
// Settings: tests/support/fuzz.ts.
//
// Requests Node's HTTP parser refuses never reach Fastify; they are answered
// by early-errors.ts, with OCI bodies too: a target byte outside 0x21-0x7e is
// 400 (NAME_INVALID, or UNSUPPORTED when it breaks the request line), an
// unknown or lower-case method 405 UNSUPPORTED, a request line plus headers
// over 16 KiB 431 UNSUPPORTED. The only answer that is not OCI-shaped is
// Node's own for an HTTP/1.1 request without Host: 400 with an empty body.
import assert from 'node:assert/strict';
import { METHODS } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { anyTargetArb, methodArb } from '../../tests/support/fuzz/registry-arbitraries.ts';
import { assertAnswer, createFuzzApp, injectedTarget, ociErrorCode, type FuzzApp } from '../../tests/support/fuzz/registry-fixture.ts';
import { expectFor } from '../../tests/support/fuzz/registry-oracle.ts';
import { parseRawResponse, rawExchange, type RawHttpResponse } from '../../tests/support/registry/raw-http.ts';

const INJECT_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'SEARCH',
  'PURGE',
] as const;
/** Node's limit on the request line plus headers (--max-http-header-size). */
const MAX_HEADER_BYTES = 16 * 1024;
/** Request targets Node's parser takes (other than CONNECT's authority-form). */
const ACCEPTED_TARGET = /^(?:\/|\*|[a-zA-Z][a-zA-Z0-9+.-]*:\/\/)/;

async function startServer(t: { after: (fn: () => Promise<void>) => void }): Promise<FuzzApp & { port: number }> {
  const fuzz = createFuzzApp();
  await fuzz.app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => fuzz.app.close());
  return { ...fuzz, port: (fuzz.app.server.address() as AddressInfo).port };
}

async function assertAlive(port: number): Promise<void> {
  const res = await rawExchange(port, 'GET /v2/ HTTP/1.1\r\nHost: mirra\r\nConnection: close\r\n\r\n');
  assert.equal(res?.status, 200, 'the server stopped answering');
  assert.equal(res?.body.toString(), '{}');
}

function requestBytes(method: string, target: string): Buffer {
  return Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: mirra\r\nConnection: close\r\n\r\n`, 'utf8');
}

function context(method: string, target: string): string {
  return `${method} ${JSON.stringify(target.length > 300 ? `${target.slice(0, 300)}...(${target.length})` : target)}`;
}

test("inject: any target, any method: the oracle's answer, never a 5xx", async (t) => {
  const fuzz = createFuzzApp();
  t.after(() => fuzz.app.close());
  const methods = fc.oneof({ arbitrary: fc.constantFrom('GET', 'HEAD'), weight: 4 }, { arbitrary: fc.constantFrom(...INJECT_METHODS), weight: 1 });
  await checkProperty(
    t,
    fc.asyncProperty(methods, anyTargetArb(fuzz.known), async (method, target) => {
      const sent = injectedTarget(target);
      // light-my-request sends the normalised path (and cannot send an empty one); the raw forms go over the socket below.
      fc.pre(sent !== undefined && sent.startsWith('/') && sent.length < 100_000);
      const res = await fuzz.app.inject({ method, url: sent });
      assertAnswer(
        { status: res.statusCode, headers: res.headers, body: res.rawPayload },
        expectFor(method, sent, fuzz.fixture),
        method,
        context(method, sent),
      );
    }),
    1000,
  );
});

/** What a raw request must get when Node's parser refuses it (or undefined when Fastify sees it). */
function parserVerdict(method: string, target: string): { statuses: number[]; codes: string[] } | undefined {
  if (!METHODS.includes(method)) return { statuses: [405], codes: ['UNSUPPORTED'] };
  if (Buffer.byteLength(requestBytes(method, target)) > MAX_HEADER_BYTES) return { statuses: [431], codes: ['UNSUPPORTED'] };
  // CONNECT takes an authority-form target: 405, or 400 for what the parser finds malformed even so.
  if (method === 'CONNECT') return { statuses: [400, 405], codes: ['NAME_INVALID', 'UNSUPPORTED'] };
  // Origin-form, asterisk-form or absolute-form, in visible ASCII only.
  if (/[^\x21-\x7e]/.test(target) || !ACCEPTED_TARGET.test(target)) return { statuses: [400], codes: ['NAME_INVALID', 'UNSUPPORTED'] };
  return undefined;
}

function checkRaw(res: RawHttpResponse | undefined, method: string, written: string, fuzz: FuzzApp): void {
  const where = context(method, written);
  // Node's parser takes extra spaces before the HTTP version: a target's trailing spaces are not part of it.
  const target = written.replace(/ +$/, '');
  const verdict = parserVerdict(method, target);
  // Reset while the oversized request was still being written: the 431 may be lost.
  if (verdict?.statuses.includes(431) === true && res === undefined) return;
  assert.ok(res !== undefined, `closed without an answer: ${where}`);
  if (verdict === undefined) {
    assertAnswer({ status: res.status, headers: res.headers, body: res.body }, expectFor(method, target, fuzz.fixture), method, where);
    return;
  }
  // Answered by early-errors.ts on the raw socket: a body even for HEAD.
  const answer = parseRawResponse(res.raw);
  assert.ok(answer !== undefined, where);
  assert.ok(verdict.statuses.includes(answer.status), `${where}: ${res.raw.toString('latin1').slice(0, 300)}`);
  assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0', where);
  assert.ok(verdict.codes.includes(ociErrorCode(answer.body, where)), where);
}

test("socket: raw request targets and methods: the oracle's answer or the parser's OCI error, and the server survives", async (t) => {
  const fuzz = await startServer(t);
  let cases = 0;
  await checkProperty(
    t,
    fc.asyncProperty(methodArb(), anyTargetArb(fuzz.known), async (method, target) => {
      // A raw CR or LF ends the request line: that is another request, not this target.
      fc.pre(!/[\r\n]/.test(target));
      cases += 1;
      const res = await rawExchange(fuzz.port, requestBytes(method, target), { head: method === 'HEAD' });
      checkRaw(res, method, target, fuzz);
      if (cases % 10 === 0) await assertAlive(fuzz.port);
    }),
    1000,
  );
  await assertAlive(fuzz.port);
});

test('socket: targets written byte for byte, with traversal the client would normalise', async (t) => {
  const fuzz = await startServer(t);
  const [digest] = fuzz.known.digests;
  assert.ok(digest !== undefined);
  const cases: Array<[string, number, string]> = [
    ['/v2/../../etc/passwd', 404, 'NAME_UNKNOWN'],
    [`/v2/../v2/a/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a/%2e%2e/b/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a%2F..%2F..%2Fetc/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a\\..\\..\\etc/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a%5c..%5cb/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a%00/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a/blobs/${digest}%00`, 400, 'DIGEST_INVALID'],
    [`/v2/a/blobs/sha256:..%2F..%2Fetc%2Fpasswd`, 400, 'DIGEST_INVALID'],
    [`/v2/a/blobs/%ff`, 400, 'DIGEST_INVALID'],
    [`/v2/a/manifests/%c0%ae%c0%ae`, 400, 'TAG_INVALID'],
    [`/v2/%c0%ae%c0%ae/manifests/v1`, 400, 'NAME_INVALID'],
    [`/v2//etc/passwd/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a//b/blobs/${digest}`, 400, 'NAME_INVALID'],
    [`//v2/a/blobs/${digest}`, 404, 'NAME_UNKNOWN'],
    [`/etc/passwd`, 404, 'NAME_UNKNOWN'],
    [`/v2/a/blobs/${digest.toUpperCase()}`, 400, 'DIGEST_INVALID'],
    [`/v2/${'a/'.repeat(4000)}blobs/${digest}`, 400, 'NAME_INVALID'],
    [`/v2/a/blobs/${digest}`, 200, ''],
  ];
  for (const [target, status, code] of cases) {
    const res = await rawExchange(fuzz.port, requestBytes('GET', target));
    assert.equal(res?.status, status, target);
    if (code !== '') assert.equal(ociErrorCode(res.body, target), code, target);
    assertAnswer({ status: res.status, headers: res.headers, body: res.body }, expectFor('GET', target, fuzz.fixture), 'GET', target);
  }
  // Node's own answer, documented above: HTTP/1.1 without Host is 400 with an empty body.
  const noHost = await rawExchange(fuzz.port, 'GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n');
  assert.equal(noHost?.status, 400);
  // Over Node's 16 KiB limit: 431, and the server carries on.
  const long = await rawExchange(fuzz.port, requestBytes('GET', `/v2/${'a/'.repeat(32 * 1024)}blobs/${digest}`));
  if (long !== undefined) assert.equal(long.status, 431);
  await assertAlive(fuzz.port);
});
