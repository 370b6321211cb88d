import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { createPeerSigner } from '../auth/sign.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { createPeerAgent, PeerRequestError, type Candidate } from '../peer/client.ts';
import { createTestApp, listen } from '../../tests/support/registry/testkit.ts';
import { rejection, startFakePeer } from '../../tests/support/peer/testkit.ts';
import { createCoordinatorClient, type CoordinatorClient } from './client.ts';
import { FETCHES_PATH } from './protocol.ts';
import { createFetchRecords, type FetchRecords } from './records.ts';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const OTHER_KEY = Buffer.from('fedcba9876543210fedcba9876543210');
const COORDINATOR = 'node-c';

/** A client for agent `self`, its connections closed after the test. */
function clientFor(t: TestContext, self: string, options: { timeoutMs?: number; key?: Buffer } = {}): CoordinatorClient {
  const agent = createPeerAgent();
  t.after(() => agent.destroy());
  const sign = options.key === undefined ? undefined : createPeerSigner({ key: options.key, self });
  return createCoordinatorClient({ self, agent, timeoutMs: options.timeoutMs ?? 2000, sign });
}

/** A real registry app with fetch records, listening on 127.0.0.1, as the coordinator `node-c`. */
async function startCoordinator(t: TestContext, auth: boolean): Promise<{ coordinator: Candidate; records: FetchRecords }> {
  const records = createFetchRecords({ ttlMs: 3000, isAlive: () => true });
  const peerVerifier = auth ? createPeerVerifier({ keys: [KEY], audience: COORDINATOR }) : undefined;
  const { app } = createTestApp({ fetchRecords: records, peerVerifier });
  t.after(() => app.close());
  return { coordinator: { name: COORDINATOR, url: await listen(app) }, records };
}

/** A plain HTTP server answering every request with `handler`; what it was asked is kept ("METHOD url"). */
async function startFake(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ candidate: Candidate; urls: () => string[] }> {
  const { candidate, asked } = await startFakePeer(t, 'fake', handler);
  return { candidate, urls: () => asked.map((a) => `${a.method} ${a.url}`) };
}

async function roundTrip(t: TestContext, coordinator: Candidate, records: FetchRecords, key?: Buffer): Promise<void> {
  const a = clientFor(t, 'node-a', { key });
  const b = clientFor(t, 'node-b', { key });
  assert.equal(await a.ask(coordinator, DIGEST), 'node-a', 'the first asker fetches');
  assert.equal(await b.ask(coordinator, DIGEST), 'node-a', 'the second follows it');
  await a.renew(coordinator, DIGEST);
  assert.equal(await b.ask(coordinator, DIGEST), 'node-a');
  assert.equal(await b.ask(coordinator, DIGEST, 'node-a'), 'node-b', 'node-a failed: node-b fetches');
  await b.drop(coordinator, DIGEST);
  assert.equal(records.stats().records, 0);
  await a.renew(coordinator, DIGEST);
  assert.equal(await b.ask(coordinator, DIGEST), 'node-a', 'a renew without a record makes one');
  await a.drop(coordinator, DIGEST);
  assert.equal(await b.ask(coordinator, DIGEST), 'node-b');
}

describe('coordinator client against a real registry app', () => {
  it('ask, renew and drop round trip (peer auth off)', async (t) => {
    const { coordinator, records } = await startCoordinator(t, false);
    await roundTrip(t, coordinator, records);
  });

  it('ask, renew and drop round trip, signed (peer auth on)', async (t) => {
    const { coordinator, records } = await startCoordinator(t, true);
    await roundTrip(t, coordinator, records, KEY);
  });

  it('with peer auth on, an unsigned client or one with another key is refused (rejects), and records nothing', async (t) => {
    const { coordinator, records } = await startCoordinator(t, true);
    for (const client of [clientFor(t, 'node-a'), clientFor(t, 'node-a', { key: OTHER_KEY })]) {
      const { err } = await rejection(client.ask(coordinator, DIGEST));
      assert.ok(err instanceof PeerRequestError);
      assert.match(err.message, /401/);
      await assert.rejects(client.renew(coordinator, DIGEST), /401/);
      await assert.rejects(client.drop(coordinator, DIGEST), /401/);
    }
    assert.equal(records.stats().records, 0);
  });
});

describe('coordinator client against a misbehaving coordinator', () => {
  it('sends POST, PUT and DELETE on the fetches path with from (and failed) in the query', async (t) => {
    const { candidate, urls } = await startFake(t, (req, res) => {
      if (req.method === 'POST') res.setHeader('content-type', 'application/json').end('{"fetcher":"node-z"}');
      else res.writeHead(204).end();
    });
    const client = clientFor(t, 'node-a');
    assert.equal(await client.ask(candidate, DIGEST), 'node-z');
    assert.equal(await client.ask(candidate, DIGEST, 'node-z'), 'node-z');
    await client.renew(candidate, DIGEST);
    await client.drop(candidate, DIGEST);
    const path = `${FETCHES_PATH}${DIGEST}?from=node-a`;
    assert.deepEqual(urls(), [`POST ${path}`, `POST ${path}&failed=node-z`, `PUT ${path}`, `DELETE ${path}`]);
  });

  it('a server that accepts the connection but never answers: the ask rejects within about timeoutMs', { timeout: 3000 }, async (t) => {
    const sockets = new Set<Socket>();
    const server = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const { port } = server.address() as AddressInfo;
    const silent: Candidate = { name: 'silent', url: `http://127.0.0.1:${port}` };
    const client = clientFor(t, 'node-a', { timeoutMs: 100 });
    for (const attempt of [() => client.ask(silent, DIGEST), () => client.renew(silent, DIGEST), () => client.drop(silent, DIGEST)]) {
      const { err, elapsedMs } = await rejection(attempt());
      assert.ok(err instanceof PeerRequestError, String(err));
      assert.ok(elapsedMs >= 90 && elapsedMs < 1000, `rejected after ${elapsedMs} ms`);
    }
    assert.ok(sockets.size >= 1, 'the connection was accepted');
  });

  it('a server that sends headers but never ends the body: the ask rejects within about timeoutMs', { timeout: 3000 }, async (t) => {
    const { candidate } = await startFake(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"fetcher":');
    });
    const client = clientFor(t, 'node-a', { timeoutMs: 100 });
    const { err, elapsedMs } = await rejection(client.ask(candidate, DIGEST));
    assert.ok(err instanceof Error);
    assert.ok(elapsedMs >= 90 && elapsedMs < 1000, `rejected after ${elapsedMs} ms`);
  });

  it('an answer without a fetcher (or an empty, non-string one, or not JSON) rejects', async (t) => {
    const bodies = ['{}', '{"other":"node-a"}', '{"fetcher":""}', '{"fetcher":42}', '{"fetcher":null}', '["node-a"]', '"node-a"', 'null', 'not json', ''];
    let next = 0;
    const { candidate } = await startFake(t, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(bodies[next++]);
    });
    const client = clientFor(t, 'node-a');
    for (const body of bodies) {
      const { err } = await rejection(client.ask(candidate, DIGEST));
      assert.ok(err instanceof Error, body);
    }
    assert.equal(next, bodies.length);
  });

  it('an answer over 1024 bytes rejects, even a valid one; 1024 bytes is fine', async (t) => {
    const padded = (bytes: number): string => {
      const base = '{"fetcher":"node-a","pad":""}';
      return base.replace('"pad":""', `"pad":"${'x'.repeat(bytes - base.length)}"`);
    };
    const bodies = [padded(1025), padded(64 * 1024), padded(1024)];
    let next = 0;
    const { candidate } = await startFake(t, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(bodies[next++]);
    });
    const client = clientFor(t, 'node-a');
    for (const size of [1025, 64 * 1024]) {
      const { err } = await rejection(client.ask(candidate, DIGEST));
      assert.ok(err instanceof PeerRequestError, `${size}: ${String(err)}`);
      assert.match(err.message, /over 1024 bytes/);
    }
    assert.equal(Buffer.byteLength(bodies[2] ?? ''), 1024);
    assert.equal(await client.ask(candidate, DIGEST), 'node-a');
  });

  it('an error status rejects for every request', async (t) => {
    const { candidate } = await startFake(t, (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"fetcher":"node-a"}');
    });
    const client = clientFor(t, 'node-a');
    await assert.rejects(client.ask(candidate, DIGEST), /answered 500/);
    await assert.rejects(client.renew(candidate, DIGEST), /answered 500/);
    await assert.rejects(client.drop(candidate, DIGEST), /answered 500/);
  });
});
