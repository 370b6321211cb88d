// The index routes on the registry port (routes-index.ts) through the whole
// app (createRegistryApp, app.inject) with a real owner service behind them:
// a push is admitted only with the peer marker, a `from`, the body's sum and,
// with peer auth on, a signature by that `from`; what is admitted reaches the
// owner store and the answer carries its resend list; a malformed body is a
// client error naming the bad field and changes nothing. A lookup answers
// the owner's holders; an unsigned one (a person's `mirra locate`) is let in
// only from the --local-only addresses, while a peer's is always let in. Other
// methods on these paths are 404/405, never a 500. All remote addresses are
// loopback ones (127.0.0.1 is "this node", 127.0.0.2 another).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createAddressAllowList } from '../auth/allow.ts';
import { PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { createPeerSigner } from '../auth/sign.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { bodySum } from '../owners/client.ts';
import { createOwnerService, type MemberView, type OwnerService } from '../owners/owner.ts';
import {
  encodeEntries,
  HOLDERS_PATH,
  INDEX_CONTENT_TYPE,
  INDEX_PATH,
  keyHex,
  OWNER_SHARDS,
  parseHoldersAnswer,
  parsePushAnswer,
  type IndexEntry,
} from '../owners/protocol.ts';
import { createHasher, type Hasher } from '../routing/hash.ts';
import { digestOf, shardOfKey } from '../routing/owner-store.ts';
import { createTestApp } from '../../tests/support/registry/testkit.ts';
import type { RegistryAppOptions } from './app.ts';

const MARKER = { [PEER_REQUEST_HEADER]: '1' };
const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
/** The owner's pod name (the verifier's audience). */
const SELF = 'node-c';
const THIS_NODE = '127.0.0.1';
const OTHER_HOST = '127.0.0.2';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The first error of an OCI error body: its code and its detail's reason. */
function ociError(body: string): { code: unknown; reason: unknown } {
  const parsed: unknown = JSON.parse(body);
  assert.ok(isObject(parsed) && Array.isArray(parsed.errors), body);
  const first: unknown = parsed.errors[0];
  assert.ok(isObject(first), body);
  return { code: first.code, reason: isObject(first.detail) ? first.detail.reason : undefined };
}

/** `count` key numbers of `shard`. */
function keysInShard(shard: number, count: number): number[] {
  const keys: number[] = [];
  for (let i = 1; keys.length < count; i++) {
    const key = (i * 0x9e3779b1 * 7919) % 2 ** 53;
    if (shardOfKey(key, OWNER_SHARDS) === shard) keys.push(key);
  }
  return keys;
}

const SHARD = 42;
const [K1, K2] = keysInShard(SHARD, 2) as [number, number];
const FULL: IndexEntry = { shard: SHARD, op: 'full', keys: [K1, K2], digest: digestOf(new Set([K1, K2])) };

/** The push URL; `from` null: none. */
function pushUrl(body: Buffer, from: string | null = 'node-a', sum: string = bodySum(body)): string {
  const query = [...(from === null ? [] : [`from=${from}`]), `sum=${sum}`].join('&');
  return `${INDEX_PATH}?${query}`;
}

interface Setup {
  app: FastifyInstance;
  owner: OwnerService;
  zones: Map<string, string | undefined>;
}

let hasher: Hasher;

function setup(overrides: Partial<RegistryAppOptions> = {}): Setup {
  const zones = new Map<string, string | undefined>();
  const member = (name: string): MemberView => ({ ready: true, zone: zones.get(name) });
  const owner = createOwnerService({ hasher, warmMs: 5000, graceMs: 30_000, member });
  owner.setOwned([SHARD]);
  const { app } = createTestApp({ indexOwner: owner, ...overrides });
  return { app, owner, zones };
}

/** A marked push (peer auth off). */
function push(app: FastifyInstance, body: Buffer, url: string = pushUrl(body), headers: Record<string, string> = MARKER) {
  return app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': INDEX_CONTENT_TYPE }, payload: body });
}

/** The owner's holders of a key (its own view, not through the route). */
const heldBy = (owner: OwnerService, key: number): string[] => [...owner.holders(key, undefined).holders].sort();

before(async () => {
  hasher = await createHasher();
});

describe('index routes, peer auth off: pushes', () => {
  it('a marked push with from and the body sum is applied; the answer is the owner instance and an empty resend list', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const res = await push(app, body);
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(parsePushAnswer(JSON.parse(res.body)), { instance: owner.instance, resend: [] });
    assert.deepEqual(heldBy(owner, K1), ['node-a']);
    assert.deepEqual(heldBy(owner, K2), ['node-a']);
  });

  it('entries whose digest the owner does not reach come back in the resend list', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const body = encodeEntries([
      { shard: SHARD, op: 'delta', added: [K1], removed: [], digest: digestOf(new Set([K1, K2])) },
      { shard: 7, op: 'check', digest: '0-0' },
      { shard: 9, op: 'check', digest: digestOf(new Set([1])) },
    ]);
    const res = await push(app, body);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(parsePushAnswer(JSON.parse(res.body)).resend, [SHARD, 9]);
    assert.deepEqual(heldBy(owner, K1), ['node-a'], 'the delta was applied');
  });

  it('a sum that is not the body SHA-256 (or none) is 400 DIGEST_INVALID, and nothing is applied', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const other = encodeEntries([{ ...FULL, keys: [K1] }]);
    for (const url of [
      pushUrl(body, 'node-a', bodySum(other)),
      pushUrl(body, 'node-a', ''),
      `${INDEX_PATH}?from=node-a`,
      pushUrl(body, 'node-a', bodySum(body).toUpperCase()),
    ]) {
      const res = await push(app, body, url);
      assert.equal(res.statusCode, 400, url);
      assert.equal(ociError(res.body).code, 'DIGEST_INVALID', url);
    }
    assert.equal(owner.stats().pushes, 0);
    assert.deepEqual(heldBy(owner, K1), []);
  });

  it('a push without the peer marker is 403 DENIED, and nothing is applied', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const res = await push(app, body, pushUrl(body), {});
    assert.equal(res.statusCode, 403);
    assert.equal(ociError(res.body).code, 'DENIED');
    assert.equal(owner.stats().pushes, 0);
  });

  it('a missing, invalid or repeated from is 400 NAME_INVALID', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const sum = bodySum(body);
    for (const query of [`sum=${sum}`, `from=&sum=${sum}`, `from=Node-A&sum=${sum}`, `from=node_a&sum=${sum}`, `from=node-a&from=node-b&sum=${sum}`]) {
      const res = await push(app, body, `${INDEX_PATH}?${query}`);
      assert.equal(res.statusCode, 400, query);
      assert.equal(ociError(res.body).code, 'NAME_INVALID', query);
    }
    assert.equal(owner.stats().pushes, 0);
  });

  it('a malformed body is a client error whose detail names the bad field, and nothing is applied', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['{"entries":{}}', /no entries array/],
      ['{"entries":[{"shard":256,"op":"check","digest":"0-0"}]}', /entries\[0\]\.shard/],
      ['{"entries":[{"shard":1,"op":"check","digest":"0-0"},{"shard":1,"op":"check","digest":"x"}]}', /entries\[1\]\.digest/],
      ['{"entries":[{"shard":1,"op":"full","keys":"AAAA","digest":"0-0"}]}', /entries\[0\]\.keys/],
      ['{"entries":[{"shard":1,"op":"delta","added":"","removed":"/////////w==","digest":"0-0"}]}', /entries\[0\]\.removed/],
      ['{"entries":[{"shard":1,"op":"move","digest":"0-0"}]}', /entries\[0\]\.op/],
    ];
    for (const [text, field] of cases) {
      const body = Buffer.from(text);
      const res = await push(app, body);
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${text}: ${res.statusCode}`);
      assert.match(String(ociError(res.body).reason), field, text);
    }
    assert.equal(owner.stats().pushes, 0);
  });

  // A bug this found: the route answered a malformed body 405 UNSUPPORTED, the status the app gives a POST to a
  // path without index routes (see "not installed" below), so a holder, a log or a person could not tell the two apart.
  it('a malformed body is 400, not the 405 of a route that is not there', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    const body = Buffer.from('{"entries":[{"shard":256,"op":"check","digest":"0-0"}]}');
    const res = await push(app, body);
    assert.equal(res.statusCode, 400, res.body);
  });

  it('a body of another content type is a client error; one over the limit is 413; neither reaches the owner', async (t) => {
    const { app, owner } = setup();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    for (const type of ['application/json', 'text/plain', undefined]) {
      const headers: Record<string, string> = { ...MARKER, ...(type === undefined ? {} : { 'content-type': type }) };
      const res = await app.inject({ method: 'POST', url: pushUrl(body), headers, payload: body });
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${type}: ${res.statusCode}`);
    }
    const huge = Buffer.alloc(8 * 1024 * 1024 + 1, 0x20);
    const res = await push(app, huge);
    assert.equal(res.statusCode, 413);
    assert.equal(owner.stats().pushes, 0);
  });
});

describe('index routes, peer auth off: lookups', () => {
  it('answers the owner holders as JSON; an asker zone puts its zone first', async (t) => {
    const { app, owner, zones } = setup();
    t.after(() => app.close());
    for (const name of ['node-a', 'node-b', 'node-d'])
      assert.equal((await push(app, encodeEntries([FULL]), pushUrl(encodeEntries([FULL]), name))).statusCode, 200);
    zones.set('node-d', 'zone-x');
    const res = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}` });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const answer = parseHoldersAnswer(JSON.parse(res.body));
    assert.deepEqual(answer, owner.holders(K1, undefined));
    assert.deepEqual([...answer.holders].sort(), ['node-a', 'node-b', 'node-d']);
    assert.equal(answer.warming, true, 'taken over just now');
    const inZone = parseHoldersAnswer(JSON.parse((await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}?zone=zone-x&from=node-b` })).body));
    assert.equal(inZone.holders[0], 'node-d');
    const none = parseHoldersAnswer(JSON.parse((await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1 + 1)}` })).body));
    assert.deepEqual(none.holders, []);
  });

  it('a key that is not 14 lower-case hex digits (of at most 53 bits) is 400 NAME_INVALID', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    for (const key of ['', 'zz', '0000000000001', '000000000000001', '0000000000000A', '20000000000000', 'ffffffffffffff', '%20000000000001']) {
      const res = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${key}` });
      assert.equal(res.statusCode, 400, key);
      assert.equal(ociError(res.body).code, 'NAME_INVALID', key);
    }
  });

  it('a bad or repeated zone, or a bad from, is 400 NAME_INVALID', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    for (const query of ['zone=a&zone=b', `zone=${'z'.repeat(200)}`, 'zone=-a', 'zone=a%20b', 'from=BAD', 'from=a&from=b']) {
      const res = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}?${query}` });
      assert.equal(res.statusCode, 400, query);
      assert.equal(ociError(res.body).code, 'NAME_INVALID', query);
    }
  });

  it('without --local-only, an unsigned lookup is answered from any address', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    for (const remoteAddress of [THIS_NODE, OTHER_HOST]) {
      const res = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}`, remoteAddress });
      assert.equal(res.statusCode, 200, remoteAddress);
    }
  });

  it('with --local-only, an unsigned lookup is answered from a listed address and refused 403 DENIED from another', async (t) => {
    const { app } = setup({ localClients: createAddressAllowList([THIS_NODE]) });
    t.after(() => app.close());
    const local = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}`, remoteAddress: THIS_NODE });
    assert.equal(local.statusCode, 200, local.body);
    const remote = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}`, remoteAddress: OTHER_HOST });
    assert.equal(remote.statusCode, 403);
    assert.equal(ociError(remote.body).code, 'DENIED');
  });

  // A bug this found: with peer auth off, admitLookup counted a lookup as a peer's only when it was signed, so
  // with --local-only every other agent's (marked) lookup was refused 403 and the index found no holders across
  // nodes, while /v2/ admits marked requests with auth off (admission.ts), and pushes were admitted.
  it('with --local-only and peer auth off, a peer (marked) lookup from another node is answered', async (t) => {
    const { app } = setup({ localClients: createAddressAllowList([THIS_NODE]) });
    t.after(() => app.close());
    const res = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}?from=node-a`, headers: MARKER, remoteAddress: OTHER_HOST });
    assert.equal(res.statusCode, 200, res.body);
  });
});

describe('index routes: other methods', () => {
  it('HEAD, PUT, DELETE, PATCH and GET where there is no route are 404 or 405, never a 500', async (t) => {
    const { app } = setup();
    t.after(() => app.close());
    const urls = [`${INDEX_PATH}?from=node-a`, `${HOLDERS_PATH}${keyHex(K1)}`];
    const expected: Record<string, number> = { HEAD: 404, PUT: 405, DELETE: 405, PATCH: 405 };
    for (const url of urls) {
      for (const [method, status] of Object.entries(expected)) {
        const res = await app.inject({ method: method as 'HEAD', url, headers: MARKER });
        assert.equal(res.statusCode, status, `${method} ${url}`);
        if (method !== 'HEAD') assert.match(String(ociError(res.body).code), /^(UNSUPPORTED|NAME_UNKNOWN)$/);
      }
    }
    const getIndex = await app.inject({ method: 'GET', url: INDEX_PATH, headers: MARKER });
    assert.equal(getIndex.statusCode, 404);
    const postHolders = await app.inject({ method: 'POST', url: `${HOLDERS_PATH}${keyHex(K1)}`, headers: MARKER });
    assert.equal(postHolders.statusCode, 405);
  });

  it('without indexOwner the routes are not there: POST is 405, GET holders 404', async (t) => {
    const { app } = createTestApp();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const res = await push(app, body);
    assert.equal(res.statusCode, 405);
    const get = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}` });
    assert.equal(get.statusCode, 404);
  });
});

describe('index routes, peer auth on', () => {
  const setupSigned = (overrides: Partial<RegistryAppOptions> = {}) => {
    const verifier = createPeerVerifier({ keys: [KEY], audience: SELF });
    const parts = setup({ peerVerifier: verifier, ...overrides });
    const sign = (by: string, method: string, url: string, key: Buffer = KEY) => createPeerSigner({ key, self: by })({ method, path: url, audience: SELF });
    return { ...parts, sign };
  };

  it('an unsigned push (the marker alone) is 401, and nothing is applied', async (t) => {
    const { app, owner } = setupSigned();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const res = await push(app, body);
    assert.equal(res.statusCode, 401);
    assert.equal(ociError(res.body).code, 'UNAUTHORIZED');
    const unmarked = await push(app, body, pushUrl(body), {});
    assert.equal(unmarked.statusCode, 403, 'no marker: not a peer');
    assert.equal(owner.stats().pushes, 0);
  });

  it('a push signed by node-b naming from=node-a, or signed with another key, is 401', async (t) => {
    const { app, owner, sign } = setupSigned();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const url = pushUrl(body, 'node-a');
    const byB = await push(app, body, url, sign('node-b', 'POST', url));
    assert.equal(byB.statusCode, 401);
    assert.equal(ociError(byB.body).code, 'UNAUTHORIZED');
    const otherKey = await push(app, body, url, sign('node-a', 'POST', url, Buffer.from('fedcba9876543210fedcba9876543210')));
    assert.equal(otherKey.statusCode, 401);
    assert.equal(owner.stats().pushes, 0);
  });

  it('a push signed by its from is applied; the same signature again is 401', async (t) => {
    const { app, owner, sign } = setupSigned();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const url = pushUrl(body, 'node-a');
    const headers = sign('node-a', 'POST', url);
    const res = await push(app, body, url, headers);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(parsePushAnswer(JSON.parse(res.body)), { instance: owner.instance, resend: [] });
    assert.deepEqual(heldBy(owner, K1), ['node-a']);
    const replay = await push(app, body, url, headers);
    assert.equal(replay.statusCode, 401);
    assert.equal(owner.stats().pushes, 1);
  });

  it('the signature binds the body through sum: another body under a signed url is 400, another sum is 401', async (t) => {
    const { app, owner, sign } = setupSigned();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const forged = encodeEntries([{ ...FULL, keys: [K1], digest: digestOf(new Set([K1])) }]);
    const url = pushUrl(body, 'node-a');
    const swapped = await push(app, forged, url, sign('node-a', 'POST', url));
    assert.equal(swapped.statusCode, 400);
    assert.equal(ociError(swapped.body).code, 'DIGEST_INVALID');
    const resummed = await push(app, forged, pushUrl(forged, 'node-a'), sign('node-a', 'POST', url));
    assert.equal(resummed.statusCode, 401);
    assert.equal(owner.stats().pushes, 0);
  });

  it('a signed push without from is the signer own', async (t) => {
    const { app, owner, sign } = setupSigned();
    t.after(() => app.close());
    const body = encodeEntries([FULL]);
    const url = pushUrl(body, null);
    const res = await push(app, body, url, sign('node-d', 'POST', url));
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(heldBy(owner, K1), ['node-d']);
  });

  it('a signed lookup is answered from another node even with --local-only; a badly signed one is 401; an unsigned one from there is 403', async (t) => {
    const { app, sign } = setupSigned({ localClients: createAddressAllowList([THIS_NODE]) });
    t.after(() => app.close());
    const url = `${HOLDERS_PATH}${keyHex(K1)}?from=node-a`;
    const signed = await app.inject({ method: 'GET', url, headers: sign('node-a', 'GET', url), remoteAddress: OTHER_HOST });
    assert.equal(signed.statusCode, 200, signed.body);
    assert.deepEqual(parseHoldersAnswer(JSON.parse(signed.body)).holders, []);
    const wrongSigner = await app.inject({ method: 'GET', url, headers: sign('node-b', 'GET', url), remoteAddress: OTHER_HOST });
    assert.equal(wrongSigner.statusCode, 401);
    const markedOnly = await app.inject({ method: 'GET', url, headers: MARKER, remoteAddress: OTHER_HOST });
    assert.equal(markedOnly.statusCode, 401);
    const unsigned = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}`, remoteAddress: OTHER_HOST });
    assert.equal(unsigned.statusCode, 403);
    assert.equal(ociError(unsigned.body).code, 'DENIED');
    const local = await app.inject({ method: 'GET', url: `${HOLDERS_PATH}${keyHex(K1)}`, remoteAddress: THIS_NODE });
    assert.equal(local.statusCode, 200, 'an unsigned lookup on the node itself');
  });
});
