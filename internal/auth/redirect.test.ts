// Signed redirects: a URL made by one agent for another verifies there, for
// that blob, until it expires, and nowhere else; any change to what it says
// (path, registry, assertion, sender, expiry, signature) is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRedirectSigner, createRedirectVerifier, hasRedirectSignature, REDIRECT_TTL_MS } from './redirect.ts';

const KEY = Buffer.from('k'.repeat(32));
const OTHER_KEY = Buffer.from('o'.repeat(32));
const PATH = '/v2/library/nginx/blobs/sha256:' + 'a'.repeat(64) + '?ns=docker.io';
const NOW = 1_800_000_000_000;

function signed(options: { path?: string; audience?: string; key?: Buffer; self?: string; nowMs?: number } = {}): string {
  const sign = createRedirectSigner({ key: options.key ?? KEY, self: options.self ?? 'mirra-a', nowMs: () => options.nowMs ?? NOW });
  return sign({ path: options.path ?? PATH, audience: options.audience ?? 'mirra-b' });
}

function verifier(options: { nowMs?: number; keys?: Buffer[]; audience?: string } = {}): ReturnType<typeof createRedirectVerifier> {
  return createRedirectVerifier({ keys: options.keys ?? [KEY], audience: options.audience ?? 'mirra-b', nowMs: () => options.nowMs ?? NOW });
}

test('a redirect verifies at its audience, naming the sender', () => {
  const url = signed();
  assert.ok(url.startsWith(`${PATH}&mirra-from=mirra-a&mirra-expires=${NOW + REDIRECT_TTL_MS}&mirra-sig=`));
  assert.ok(hasRedirectSignature(url));
  assert.deepEqual(verifier().verify(url), { ok: true, peer: 'mirra-a' });
});

test('the pull-access assertion is signed with the rest', () => {
  const url = signed({ path: `${PATH}&mirra-verified=1` });
  assert.deepEqual(verifier().verify(url), { ok: true, peer: 'mirra-a' });
  assert.deepEqual(verifier().verify(url.replace('&mirra-verified=1', '')), { ok: false, reason: 'bad signature' });
});

test('a redirect for another agent, or with another key, is refused; a rotated key still verifies', () => {
  assert.deepEqual(verifier({ audience: 'mirra-c' }).verify(signed()), { ok: false, reason: 'bad signature' });
  assert.deepEqual(verifier().verify(signed({ key: OTHER_KEY })), { ok: false, reason: 'bad signature' });
  assert.deepEqual(verifier({ keys: [OTHER_KEY, KEY] }).verify(signed()), { ok: true, peer: 'mirra-a' });
});

test('expired, or expiring too far ahead (a clock off by minutes), is refused', () => {
  assert.deepEqual(verifier({ nowMs: NOW + REDIRECT_TTL_MS + 1 }).verify(signed()), { ok: false, reason: 'expired' });
  assert.deepEqual(verifier({ nowMs: NOW - 60_000 }).verify(signed()), { ok: false, reason: 'expired' });
  assert.deepEqual(verifier({ nowMs: NOW + REDIRECT_TTL_MS - 1 }).verify(signed()).ok, true);
});

test('any change to the URL is refused', () => {
  const url = signed();
  const changes = [
    url.replace('library/nginx', 'library/redis'),
    url.replace('sha256:a', 'sha256:b'),
    url.replace('ns=docker.io', 'ns=quay.io'),
    url.replace('mirra-from=mirra-a', 'mirra-from=mirra-x'),
    url.replace(`mirra-expires=${NOW + REDIRECT_TTL_MS}`, `mirra-expires=${NOW + REDIRECT_TTL_MS - 1}`),
    `${url}&mirra-verified=1`,
    url.slice(0, -1) + (url.endsWith('0') ? '1' : '0'),
    url.replace('?ns=docker.io', '?ns=docker.io&mirra-from=mirra-x'),
  ];
  for (const changed of changes) assert.equal(verifier().verify(changed).ok, false, changed);
});

test('malformed: no query, no signature, a repeated sender or expiry', () => {
  const v = verifier();
  assert.deepEqual(v.verify('/v2/x/blobs/y'), { ok: false, reason: 'malformed' });
  assert.deepEqual(v.verify(`${PATH}&mirra-sig=zz`), { ok: false, reason: 'malformed' });
  assert.deepEqual(v.verify(`${PATH}&mirra-sig=${'0'.repeat(64)}`), { ok: false, reason: 'malformed' });
  const twice = signed({ path: `${PATH}&mirra-from=mirra-z` });
  assert.deepEqual(v.verify(twice), { ok: false, reason: 'malformed' });
  assert.equal(hasRedirectSignature(PATH), false);
});

test('a path without a query cannot be signed', () => {
  assert.throws(() => signed({ path: '/v2/x/blobs/y' }), /needs a query/);
});
