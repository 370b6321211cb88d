// The owner client (client.ts) over real HTTP on 127.0.0.1: against a real
// registry app with a real owner service, a push and then a lookup round trip
// (peer auth off, and on with signed requests; a client with another key is
// refused and its push changes nothing); against plain node:http servers, the
// requests it sends (path, query, content type, body and its sum), and what
// it does with answers that are not what an owner sends: a server that holds
// the request or stalls the body makes it reject within its timeout (the
// holder retries, the locator asks the second owner; neither may hang), a
// non-200 answer rejects naming the status, a bad body rejects.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { before, describe, it, type TestContext } from 'node:test';
import { createPeerSigner } from '../auth/sign.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { createPeerAgent, PeerRequestError, type Candidate } from '../peer/client.ts';
import { createHasher, type Hasher } from '../routing/hash.ts';
import { digestOf, shardOfKey } from '../routing/owner-store.ts';
import { createTestApp, listen } from '../../tests/support/registry/testkit.ts';
import { rejection, startFakePeer } from '../../tests/support/peer/testkit.ts';
import { bodySum, createOwnerClient, type OwnerClient } from './client.ts';
import { createOwnerService, type OwnerService } from './owner.ts';
import { decodeEntries, HOLDERS_PATH, INDEX_CONTENT_TYPE, INDEX_PATH, IndexProtocolError, keyHex, OWNER_SHARDS, type IndexEntry } from './protocol.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const OTHER_KEY = Buffer.from('fedcba9876543210fedcba9876543210');
const OWNER = 'node-c';

/** `count` key numbers of `shard`. */
function keysInShard(shard: number, count: number): number[] {
  const keys: number[] = [];
  for (let i = 1; keys.length < count; i++) {
    const key = (i * 0x9e3779b1 * 6007) % 2 ** 53;
    if (shardOfKey(key, OWNER_SHARDS) === shard) keys.push(key);
  }
  return keys;
}

const SHARD = 77;
const [K1, K2] = keysInShard(SHARD, 2) as [number, number];

function clientFor(t: TestContext, self: string, options: { key?: Buffer; pushTimeoutMs?: number } = {}): OwnerClient {
  const agent = createPeerAgent();
  t.after(() => agent.destroy());
  const sign = options.key === undefined ? undefined : createPeerSigner({ key: options.key, self });
  return createOwnerClient({ self, agent, sign, pushTimeoutMs: options.pushTimeoutMs ?? 2000 });
}

let hasher: Hasher;

/** A real registry app with an owner service owning SHARD, listening on 127.0.0.1, as `node-c`. */
async function startOwner(t: TestContext, auth: boolean): Promise<{ candidate: Candidate; owner: OwnerService }> {
  const zones: Record<string, string> = { 'node-b': 'zone-x' };
  const owner = createOwnerService({ hasher, warmMs: 0, graceMs: 30_000, member: (name) => ({ ready: true, zone: zones[name] }) });
  owner.setOwned([SHARD]);
  const peerVerifier = auth ? createPeerVerifier({ keys: [KEY], audience: OWNER }) : undefined;
  const { app } = createTestApp({ indexOwner: owner, peerVerifier });
  t.after(() => app.close());
  return { candidate: { name: OWNER, url: await listen(app) }, owner };
}

async function roundTrip(t: TestContext, auth: boolean): Promise<void> {
  const { candidate, owner } = await startOwner(t, auth);
  const a = clientFor(t, 'node-a', { key: auth ? KEY : undefined });
  const b = clientFor(t, 'node-b', { key: auth ? KEY : undefined });
  const full: IndexEntry = { shard: SHARD, op: 'full', keys: [K1, K2], digest: digestOf(new Set([K1, K2])) };
  assert.deepEqual(await a.push(candidate, [full]), { instance: owner.instance, resend: [] });
  assert.deepEqual(await b.push(candidate, [{ shard: SHARD, op: 'delta', added: [K1], removed: [], digest: digestOf(new Set([K1])) }]), {
    instance: owner.instance,
    resend: [],
  });
  assert.deepEqual(await a.push(candidate, [{ shard: 3, op: 'check', digest: digestOf(new Set([5])) }]), { instance: owner.instance, resend: [3] });
  const answer = await b.holders(candidate, { key: K1, zone: undefined, timeoutMs: 2000 });
  assert.deepEqual([...answer.holders].sort(), ['node-a', 'node-b']);
  assert.equal(answer.instance, owner.instance);
  assert.equal(answer.warming, false);
  assert.deepEqual((await a.holders(candidate, { key: K1, zone: 'zone-x', timeoutMs: 2000 })).holders[0], 'node-b', 'the asker zone first');
  assert.deepEqual((await a.holders(candidate, { key: K2, zone: undefined, timeoutMs: 2000 })).holders, ['node-a']);
  assert.deepEqual((await a.holders(candidate, { key: K2 + 1, zone: undefined, timeoutMs: 2000 })).holders, []);
}

before(async () => {
  hasher = await createHasher();
});

describe('owner client against a real registry app', () => {
  it('push, then holders, round trip (peer auth off)', async (t) => {
    await roundTrip(t, false);
  });

  it('push, then holders, round trip, signed (peer auth on)', async (t) => {
    await roundTrip(t, true);
  });

  it('with peer auth on, an unsigned client or one with another key is refused (rejects naming 401), and its push changes nothing', async (t) => {
    const { candidate, owner } = await startOwner(t, true);
    for (const client of [clientFor(t, 'node-a'), clientFor(t, 'node-a', { key: OTHER_KEY })]) {
      const { err } = await rejection(client.push(candidate, [{ shard: SHARD, op: 'full', keys: [K1], digest: digestOf(new Set([K1])) }]));
      assert.ok(err instanceof PeerRequestError, String(err));
      assert.match(err.message, /401/);
      await assert.rejects(client.holders(candidate, { key: K1, zone: undefined, timeoutMs: 2000 }), /401/);
    }
    assert.equal(owner.stats().pushes, 0);
  });

  it('an empty push is answered too (a holder checking nothing)', async (t) => {
    const { candidate, owner } = await startOwner(t, false);
    assert.deepEqual(await clientFor(t, 'node-a').push(candidate, []), { instance: owner.instance, resend: [] });
  });
});

describe('owner client: the requests it sends', () => {
  it('bodySum is the base64url SHA-256 of the body', () => {
    assert.equal(bodySum(Buffer.alloc(0)), '47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU');
    assert.equal(bodySum(Buffer.from('abc')), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });

  it('a push is POST to the index path with from and the body sum, the index content type, and the encoded entries', async (t) => {
    const seen: { method: string; url: string; type: string | undefined; body: Buffer }[] = [];
    const { candidate } = await startFakePeer(t, OWNER, (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', type: req.headers['content-type'], body: Buffer.concat(chunks) });
        if (req.method === 'POST') res.setHeader('content-type', 'application/json').end('{"instance":"abc","resend":[4]}');
        else res.setHeader('content-type', 'application/json').end('{"instance":"abc","holders":["pod-q"],"warming":true}');
      });
    });
    const client = clientFor(t, 'node-a');
    const entries: IndexEntry[] = [
      { shard: 4, op: 'full', keys: [K1, 2 ** 53 - 1], digest: digestOf(new Set([K1, 2 ** 53 - 1])) },
      { shard: 5, op: 'check', digest: '0-0' },
    ];
    assert.deepEqual(await client.push(candidate, entries), { instance: 'abc', resend: [4] });
    assert.deepEqual(await client.holders(candidate, { key: K2, zone: 'zone a', timeoutMs: 1000 }), { instance: 'abc', holders: ['pod-q'], warming: true });
    assert.deepEqual(await client.holders(candidate, { key: 0, zone: undefined, timeoutMs: 1000 }), { instance: 'abc', holders: ['pod-q'], warming: true });
    const [pushed, asked, askedNoZone] = seen;
    assert.ok(pushed !== undefined && asked !== undefined && askedNoZone !== undefined);
    assert.equal(pushed.method, 'POST');
    assert.equal(pushed.type, INDEX_CONTENT_TYPE);
    assert.equal(pushed.url, `${INDEX_PATH}?from=node-a&sum=${createHash('sha256').update(pushed.body).digest('base64url')}`);
    assert.deepEqual(decodeEntries(pushed.body), entries);
    assert.equal(asked.method, 'GET');
    assert.equal(asked.url, `${HOLDERS_PATH}${keyHex(K2)}?from=node-a&zone=zone%20a`);
    assert.equal(askedNoZone.url, `${HOLDERS_PATH}00000000000000?from=node-a`);
  });
});

describe('owner client against a misbehaving owner', () => {
  it('a server that holds the request: push rejects within about pushTimeoutMs, holders within about its timeout', { timeout: 5000 }, async (t) => {
    const { candidate, asked } = await startFakePeer(t, OWNER, () => {});
    const client = clientFor(t, 'node-a', { pushTimeoutMs: 150 });
    const pushed = await rejection(client.push(candidate, [{ shard: 1, op: 'check', digest: '0-0' }]));
    assert.ok(pushed.err instanceof PeerRequestError, String(pushed.err));
    assert.ok(pushed.elapsedMs >= 140 && pushed.elapsedMs < 1000, `push rejected after ${pushed.elapsedMs} ms`);
    const looked = await rejection(client.holders(candidate, { key: K1, zone: undefined, timeoutMs: 100 }));
    assert.ok(looked.err instanceof PeerRequestError, String(looked.err));
    assert.ok(looked.elapsedMs >= 90 && looked.elapsedMs < 1000, `lookup rejected after ${looked.elapsedMs} ms`);
    assert.equal(asked.length, 2, 'both requests reached the server');
  });

  it('a server that sends headers but never ends the body: both reject within about their timeout', { timeout: 5000 }, async (t) => {
    const { candidate } = await startFakePeer(t, OWNER, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"instance":');
    });
    const client = clientFor(t, 'node-a', { pushTimeoutMs: 150 });
    const pushed = await rejection(client.push(candidate, []));
    assert.ok(pushed.elapsedMs >= 140 && pushed.elapsedMs < 1000, `push rejected after ${pushed.elapsedMs} ms`);
    const looked = await rejection(client.holders(candidate, { key: K1, zone: undefined, timeoutMs: 100 }));
    assert.ok(looked.elapsedMs >= 90 && looked.elapsedMs < 1000, `lookup rejected after ${looked.elapsedMs} ms`);
  });

  it('a lookup aborted by the caller rejects at once', { timeout: 5000 }, async (t) => {
    const { candidate } = await startFakePeer(t, OWNER, () => {});
    const client = clientFor(t, 'node-a');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const { err, elapsedMs } = await rejection(client.holders(candidate, { key: K1, zone: undefined, timeoutMs: 3000, signal: controller.signal }));
    assert.ok(err instanceof Error);
    assert.ok(elapsedMs < 1000, `rejected after ${elapsedMs} ms`);
  });

  it('a non-200 answer rejects naming the status, for a push and a lookup', async (t) => {
    for (const status of [201, 204, 400, 404, 500, 503]) {
      const { candidate } = await startFakePeer(t, OWNER, (_req, res) => {
        res
          .writeHead(status, { 'content-type': 'application/json' })
          .end(status === 204 ? undefined : '{"instance":"abc","resend":[],"holders":[],"warming":false}');
      });
      const client = clientFor(t, 'node-a');
      const pushed = await rejection(client.push(candidate, []));
      assert.ok(pushed.err instanceof PeerRequestError, String(pushed.err));
      assert.match(pushed.err.message, new RegExp(`answered ${status}`));
      await assert.rejects(client.holders(candidate, { key: K1, zone: undefined, timeoutMs: 1000 }), new RegExp(`answered ${status}`));
    }
  });

  it('an answer that is not JSON, or not a valid answer, rejects', async (t) => {
    const bodies = ['not json', '', '{}', '{"instance":"abc"}', '{"instance":"a b","resend":[]}', '{"instance":"abc","resend":[999]}', 'null'];
    let next = 0;
    const { candidate } = await startFakePeer(t, OWNER, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(bodies[next++ % bodies.length]);
    });
    const client = clientFor(t, 'node-a');
    for (const body of bodies) {
      const { err } = await rejection(client.push(candidate, []));
      assert.ok(err instanceof PeerRequestError || err instanceof IndexProtocolError, `${body}: ${String(err)}`);
    }
    next = 0;
    for (const body of bodies) await assert.rejects(client.holders(candidate, { key: K1, zone: undefined, timeoutMs: 1000 }), Error, body);
  });

  it('an answer over 64 KiB rejects', async (t) => {
    const { candidate } = await startFakePeer(t, OWNER, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(`{"instance":"abc","resend":[],"pad":"${'x'.repeat(64 * 1024)}"}`);
    });
    await assert.rejects(clientFor(t, 'node-a').push(candidate, []), /over 65536 bytes/);
  });

  it('an owner that is not listening: rejects', async (t) => {
    const { candidate } = await startFakePeer(t, OWNER, () => {});
    const closed: Candidate = { name: OWNER, url: candidate.url.replace(/:\d+$/, ':1') };
    await assert.rejects(clientFor(t, 'node-a').push(closed, []), PeerRequestError);
  });
});
