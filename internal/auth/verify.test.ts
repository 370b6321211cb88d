import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { DEFAULT_FUZZ_SEED } from '../../tests/support/fuzz.ts';
import { PEER_REQUEST_HEADER } from './peer-request.ts';
import { canonicalString, createPeerSigner, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './sign.ts';
import { createPeerVerifier, hasPeerHeaders, type VerifierOptions } from './verify.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const OTHER_KEY = Buffer.from('fedcba9876543210fedcba9876543210');
const PATH = `/v2/library/nginx/blobs/sha256:${'a'.repeat(64)}?ns=docker.io`;

function clock(startMs = 1_750_000_000_000) {
  let now = startMs;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function setup(overrides: Partial<VerifierOptions> = {}) {
  const time = clock();
  const sign = createPeerSigner({ key: KEY, self: 'mirra-aaaaa', nowMs: time.now });
  const verifier = createPeerVerifier({ keys: [KEY], audience: 'mirra-bbbbb', nowMs: time.now, ...overrides });
  const signed = (method = 'GET', path = PATH, audience = 'mirra-bbbbb'): IncomingHttpHeaders => sign({ method, path, audience });
  return { time, sign, verifier, signed };
}

test('a signed request verifies once, with the sender named', () => {
  const { verifier, signed } = setup();
  const headers = signed();
  assert.deepEqual(verifier.verify({ method: 'GET', url: PATH, headers }), { ok: true, peer: 'mirra-aaaaa' });
  assert.deepEqual(verifier.verify({ method: 'GET', url: PATH, headers }), { ok: false, reason: 'replayed' });
  assert.equal(verifier.nonces(), 1);
});

test('every call signs with a fresh nonce; HEAD and GET are signed apart', () => {
  const { verifier, signed } = setup();
  const a = signed('HEAD');
  const b = signed('HEAD');
  assert.notEqual(a[NONCE_HEADER], b[NONCE_HEADER]);
  assert.equal(verifier.verify({ method: 'HEAD', url: PATH, headers: a }).ok, true);
  assert.equal(verifier.verify({ method: 'HEAD', url: PATH, headers: b }).ok, true);
  assert.deepEqual(verifier.verify({ method: 'GET', url: PATH, headers: signed('HEAD') }), { ok: false, reason: 'bad signature' });
});

test('missing headers: unsigned; wrong shapes: malformed', () => {
  const { verifier, signed } = setup();
  const verify = (headers: IncomingHttpHeaders) => verifier.verify({ method: 'GET', url: PATH, headers });
  assert.deepEqual(verify({ [PEER_REQUEST_HEADER]: '1' }), { ok: false, reason: 'unsigned' });
  for (const name of [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER]) {
    const { [name]: _gone, ...rest } = signed();
    assert.deepEqual(verify(rest), { ok: false, reason: 'unsigned' }, name);
  }
  const { [PEER_REQUEST_HEADER]: _marker, ...noMarker } = signed();
  assert.deepEqual(verify(noMarker), { ok: false, reason: 'malformed' });
  const cases: IncomingHttpHeaders[] = [
    { ...signed(), [TIMESTAMP_HEADER]: '-5' },
    { ...signed(), [TIMESTAMP_HEADER]: '1e12' },
    { ...signed(), [TIMESTAMP_HEADER]: '9'.repeat(16) },
    { ...signed(), [NONCE_HEADER]: 'short' },
    { ...signed(), [NONCE_HEADER]: 'has space in it, 1234567' },
    { ...signed(), [SIGNATURE_HEADER]: 'zz'.repeat(32) },
    { ...signed(), [SIGNATURE_HEADER]: 'ab' },
    { ...signed(), [SIGNATURE_HEADER]: 'AB'.repeat(32) },
  ];
  for (const headers of cases) assert.deepEqual(verify(headers), { ok: false, reason: 'malformed' }, JSON.stringify(headers));
  // A duplicated header reaches the handler as a list (or joined): not a single value.
  const twice = signed();
  assert.deepEqual(verify({ ...twice, [SIGNATURE_HEADER]: [String(twice[SIGNATURE_HEADER]), String(twice[SIGNATURE_HEADER])] }), {
    ok: false,
    reason: 'unsigned',
  });
});

test('timestamps beyond the clock skew are refused both ways; the boundary is accepted', () => {
  const { verifier, signed, time } = setup({ maxSkewMs: 30_000 });
  const verify = (headers: IncomingHttpHeaders) => verifier.verify({ method: 'GET', url: PATH, headers });
  const old = signed();
  time.advance(30_001);
  assert.deepEqual(verify(old), { ok: false, reason: 'expired' });
  const edge = signed();
  time.advance(30_000);
  assert.equal(verify(edge).ok, true);
  const future = signed();
  time.advance(-30_001);
  assert.deepEqual(verify(future), { ok: false, reason: 'expired' });
});

test('a replay is refused for as long as its timestamp is acceptable, then as expired', () => {
  const { verifier, signed, time } = setup({ maxSkewMs: 30_000 });
  const headers = signed();
  assert.equal(verifier.verify({ method: 'GET', url: PATH, headers }).ok, true);
  for (let elapsedMs = 0; elapsedMs <= 30_000; elapsedMs += 5_000) {
    assert.deepEqual(verifier.verify({ method: 'GET', url: PATH, headers }), { ok: false, reason: 'replayed' }, `after ${elapsedMs} ms`);
    time.advance(5_000);
  }
  assert.deepEqual(verifier.verify({ method: 'GET', url: PATH, headers }), { ok: false, reason: 'expired' });
  assert.equal(verifier.nonces(), 0, 'the nonce was let go once its window passed');
});

test('changing any signed field, or the key, or the audience breaks the signature', () => {
  const { verifier, signed, time } = setup();
  const verify = (url: string, headers: IncomingHttpHeaders, method = 'GET') => verifier.verify({ method, url, headers });
  const flipLast = (value: string) => value.slice(0, -1) + (value.endsWith('a') ? 'b' : 'a');
  const tampered: Array<[string, () => ReturnType<typeof verify>]> = [
    ['method', () => verify(PATH, signed(), 'HEAD')],
    ['path', () => verify(PATH.replace('nginx', 'redis'), signed())],
    ['query', () => verify(PATH.replace('docker.io', 'ghcr.io'), signed())],
    ['query dropped', () => verify(PATH.split('?')[0] ?? '', signed())],
    ['timestamp', () => verify(PATH, { ...signed(), [TIMESTAMP_HEADER]: String(Number(signed()[TIMESTAMP_HEADER]) + 1) })],
    ['nonce', () => verify(PATH, { ...signed(), [NONCE_HEADER]: flipLast(String(signed()[NONCE_HEADER])) })],
    ['sender', () => verify(PATH, { ...signed(), [PEER_REQUEST_HEADER]: 'mirra-zzzzz' })],
    ['signature', () => verify(PATH, { ...signed(), [SIGNATURE_HEADER]: flipLast(String(signed()[SIGNATURE_HEADER])) })],
    ['audience', () => verify(PATH, signed('GET', PATH, 'mirra-ccccc'))],
    [
      'key',
      () => verify(PATH, createPeerSigner({ key: OTHER_KEY, self: 'mirra-aaaaa', nowMs: time.now })({ method: 'GET', path: PATH, audience: 'mirra-bbbbb' })),
    ],
  ];
  for (const [field, attempt] of tampered) assert.deepEqual(attempt(), { ok: false, reason: 'bad signature' }, field);
  assert.equal(verifier.nonces(), 0, 'nothing unverified reaches the replay cache');
});

test('property: any change to the request target breaks the signature', () => {
  const { verifier, signed } = setup();
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\n')),
      fc.nat(PATH.length),
      (insert, at) => {
        const changed = PATH.slice(0, at) + insert + PATH.slice(at);
        fc.pre(changed !== PATH);
        assert.deepEqual(verifier.verify({ method: 'GET', url: changed, headers: signed() }), { ok: false, reason: 'bad signature' });
      },
    ),
    { numRuns: 300, seed: DEFAULT_FUZZ_SEED },
  );
});

test('every accepted key verifies (rotation); the first one signs', () => {
  const time = clock();
  const verifier = createPeerVerifier({ keys: [OTHER_KEY, KEY], audience: 'b', nowMs: time.now });
  for (const key of [KEY, OTHER_KEY]) {
    const headers = createPeerSigner({ key, self: 'a', nowMs: time.now })({ method: 'GET', path: '/v2/', audience: 'b' });
    assert.equal(verifier.verify({ method: 'GET', url: '/v2/', headers }).ok, true);
  }
  assert.throws(() => createPeerVerifier({ keys: [], audience: 'b' }), /at least one key/);
});

test('a full replay cache refuses new signed requests instead of forgetting', () => {
  const { verifier, signed, time } = setup({ maxNonces: 3, maxSkewMs: 30_000 });
  const verify = (headers: IncomingHttpHeaders) => verifier.verify({ method: 'GET', url: PATH, headers });
  const first = signed();
  for (const headers of [first, signed(), signed()]) assert.equal(verify(headers).ok, true);
  assert.deepEqual(verify(signed()), { ok: false, reason: 'replay cache full' });
  assert.deepEqual(verify(first), { ok: false, reason: 'replayed' }, 'still remembered');
  time.advance(61_000);
  assert.equal(verify(signed()).ok, true, 'room again once the old nonces expired');
});

test('hasPeerHeaders: the marker or any signature header', () => {
  assert.equal(hasPeerHeaders({}), false);
  assert.equal(hasPeerHeaders({ accept: '*/*' }), false);
  for (const name of [PEER_REQUEST_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER]) assert.equal(hasPeerHeaders({ [name]: '' }), true, name);
});

test('the canonical string refuses newlines', () => {
  assert.throws(() => canonicalString({ method: 'GET', path: '/v2/\n', timestampMs: 1, nonce: 'n', peer: 'a', audience: 'b' }), /newline/);
});
