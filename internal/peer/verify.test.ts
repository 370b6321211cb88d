// Whole blobs held back until verified, and penalties: with real registry apps
// as peers (tests/support/peer/testkit.ts), some of them sick.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../log/logger.ts';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { createRegistryApp } from '../registry/app.ts';
import { chainSources, storeSource } from '../content/source.ts';
import { captureLog, listen, type CapturedLog } from '../../tests/support/registry/testkit.ts';
import type { Candidate } from './client.ts';
import { createPeerSource, type PeerSource } from './source.ts';
import type { PeerSourceOptions } from './source.ts';
import { bodyOf, startPeer, until, type TestPeer } from '../../tests/support/peer/testkit.ts';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const BLOB_BYTES = 3 * 1024 * 1024 + 77;

interface Agent {
  source: PeerSource;
  app: FastifyInstance;
  base: string;
  log: CapturedLog;
}

/** The peers, some of them sick, the candidates each test claims, and the agents the tests start. */
interface Fixture {
  good: TestPeer;
  failing: TestPeer;
  wrong: TestPeer;
  stalling: TestPeer;
  peers: TestPeer[];
  claims: Map<string, Candidate[]>;
  agents: Agent[];
  /** An agent whose registry chains its local store with a peer source asking `claims`. */
  startAgent(extra?: Partial<PeerSourceOptions>): Promise<Agent>;
  /** Puts the bytes on the given peers and makes them the candidates of the digest, in that order. */
  share(bytes: Buffer, holders: TestPeer[]): string;
}

const blobUrl = (agent: Agent, digest: string): string => `${agent.base}/v2/library/app/blobs/${digest}?ns=docker.io`;

async function startFixture(): Promise<Fixture> {
  const good = await startPeer(12);
  const failing = await startPeer(13, { kind: 'fail-after', bytes: 1024 * 1024 });
  const wrong = await startPeer(14, { kind: 'wrong-bytes' });
  const stalling = await startPeer(15, { kind: 'stall-after', bytes: 512 * 1024 });
  const claims = new Map<string, Candidate[]>();
  const agents: Agent[] = [];
  const startAgent = async (extra: Partial<PeerSourceOptions> = {}): Promise<Agent> => {
    const log = captureLog();
    const logger = createLogger('info', log);
    const local = createMemoryStore();
    const source = createPeerSource({
      candidates: (key) => claims.get(key) ?? [],
      logger,
      resolveTags: true,
      hedge: { minDelayMs: 50, maxDelayMs: 50 },
      idleTimeoutMs: 300,
      ...extra,
    });
    const app = createRegistryApp({ store: local, logger, mirroredRegistries: [], resolveTags: true, source: chainSources([storeSource(local), source]) });
    const agent = { source, app, base: await listen(app), log };
    agents.push(agent);
    return agent;
  };
  const share = (bytes: Buffer, holders: TestPeer[]): string => {
    let digest = '';
    for (const peer of holders) digest = peer.store.put(bytes);
    claims.set(
      digest,
      holders.map((peer) => peer.candidate),
    );
    return digest;
  };
  return { good, failing, wrong, stalling, peers: [good, failing, wrong, stalling], claims, agents, startAgent, share };
}

/** Wrong, failing and stalling peers, with and without a good one. */
function sickPeerTests(fixture: () => Fixture): void {
  it('wrong bytes, then a good peer: the client gets only the right bytes; the sick peer is penalised', async () => {
    const { good, wrong, startAgent, share } = fixture();
    const agent = await startAgent();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [wrong, good]);
    const res = await fetch(blobUrl(agent, digest));
    assert.equal(res.status, 200);
    assert.equal(sha256(await bodyOf(res)), sha256(bytes));
    const stats = agent.source.stats();
    assert.equal(stats.digestMismatches, 1);
    assert.equal(stats.penalties, 1);
    assert.equal(good.requests().length, 1, 'the good peer was asked for the whole blob once');
    assert.ok(agent.log.lines.some((line) => line.msg === 'peer penalised: it goes last for a while' && line.peer === wrong.name));

    // The penalised peer now goes last: the good one is asked first, the sick one not at all.
    const next = share(randomBytes(10_000), [wrong, good]);
    const again = await fetch(blobUrl(agent, next));
    assert.equal(again.status, 200);
    await bodyOf(again);
    assert.equal(wrong.requests().length, 1, 'only the first request reached the sick peer');
  });

  it('wrong bytes and nobody else: 404 before a byte is sent (containerd goes upstream)', async () => {
    const { wrong, startAgent, share } = fixture();
    const agent = await startAgent();
    const digest = share(randomBytes(BLOB_BYTES), [wrong]);
    const res = await fetch(blobUrl(agent, digest));
    assert.equal(res.status, 404);
    await bodyOf(res);
    assert.equal(agent.source.stats().digestMismatches, 1);
  });

  it('failing or stalling mid-body and nobody else: 404, nothing sent', async () => {
    const { failing, stalling, startAgent, share } = fixture();
    const agent = await startAgent();
    for (const sick of [failing, stalling]) {
      const digest = share(randomBytes(BLOB_BYTES), [sick]);
      const res = await fetch(blobUrl(agent, digest));
      assert.equal(res.status, 404, sick.name);
      await bodyOf(res);
    }
    assert.equal(agent.source.stats().penalties, 2);
  });

  it('failing mid-body, then a good peer: resumed with a Range, verified whole', async () => {
    const { good, failing, startAgent, share } = fixture();
    const agent = await startAgent();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [failing, good]);
    const res = await fetch(blobUrl(agent, digest));
    assert.equal(res.status, 200);
    assert.equal(sha256(await bodyOf(res)), sha256(bytes));
    assert.equal(agent.source.stats().resumes, 1);
    assert.equal(good.requests()[0]?.status, 206);
  });
}

/** Streamed over the hold budget, and a Range over wrong bytes. */
function rangeTests(fixture: () => Fixture): void {
  it('over the hold budget, a blob is streamed: wrong bytes cut the response short, the client is told, the peer is not asked for it again', async () => {
    const { wrong, startAgent, share } = fixture();
    const delivered: string[] = [];
    const agent = await startAgent({ verifyHoldBudgetBytes: 1024 * 1024, onWrongBytesDelivered: (d) => delivered.push(d) });
    const digest = share(randomBytes(BLOB_BYTES), [wrong]);
    const res = await fetch(blobUrl(agent, digest));
    assert.equal(res.status, 200);
    await assert.rejects(bodyOf(res));
    await until(() => agent.source.stats().digestMismatches === 1);
    assert.deepEqual(delivered, [digest], 'the wrong bytes that went out are reported');
    assert.equal(agent.source.stats().wrongBytesDelivered, 1);
    // The only holder sent wrong bytes for it: distrusted for this digest, so 404 at once (upstream), no request.
    const before = wrong.requests().length;
    const again = await fetch(blobUrl(agent, digest), { headers: { range: 'bytes=1000-' } });
    assert.equal(again.status, 404);
    await bodyOf(again);
    assert.equal(wrong.requests().length, before);
    assert.equal(agent.source.stats().noCandidates, 1);
  });

  for (const budget of [undefined, 1024 * 1024]) {
    it(`a Range over wrong bytes (${budget === undefined ? 'held back whole' : 'streamed'}): never a complete-looking answer`, async () => {
      const { wrong, startAgent, share } = fixture();
      const delivered: string[] = [];
      const agent = await startAgent({ verifyHoldBudgetBytes: budget, onWrongBytesDelivered: (d) => delivered.push(d) });
      const bytes = randomBytes(BLOB_BYTES);
      const digest = share(bytes, [wrong]);
      // containerd resuming a download: the tail, then a window in the middle; both answered whole.
      for (const range of [`bytes=${BLOB_BYTES - 5000}-`, 'bytes=2000000-2099999']) {
        const res = await fetch(blobUrl(agent, digest), { headers: { range } });
        if (res.status === 200) await assert.rejects(bodyOf(res), `${range}: cut short`);
        else {
          assert.equal(res.status, 404, range);
          await bodyOf(res);
        }
      }
      assert.ok(agent.source.stats().digestMismatches >= 1);
      if (budget !== undefined) assert.deepEqual(delivered, [digest]);
    });
  }
}

/** A Range after a wrong peer, a stall while held back, wrong bytes held back. */
function heldBackTests(fixture: () => Fixture): void {
  it('a Range with a good peer after a wrong one: the right bytes, whole', async () => {
    const { good, wrong, startAgent, share } = fixture();
    const agent = await startAgent();
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [wrong, good]);
    const res = await fetch(blobUrl(agent, digest), { headers: { range: 'bytes=1000000-' } });
    assert.equal(res.status, 200, 'the whole blob: the client skips to its offset');
    assert.equal(sha256(await bodyOf(res)), sha256(bytes));
  });

  it("a blob held back while a peer stalls: the client's idle timeout does not cut the wait", async () => {
    const { good, stalling, claims, agents, share } = fixture();
    const log = captureLog();
    const logger = createLogger('info', log);
    const local = createMemoryStore();
    const source = createPeerSource({
      candidates: (key) => claims.get(key) ?? [],
      logger,
      resolveTags: true,
      hedge: { minDelayMs: 50, maxDelayMs: 50 },
      idleTimeoutMs: 400,
    });
    const app = createRegistryApp({
      store: local,
      logger,
      mirroredRegistries: [],
      resolveTags: true,
      source: chainSources([storeSource(local), source]),
      timeouts: { idleTimeoutMs: 150 },
    });
    const agent = { source, app, base: await listen(app), log };
    agents.push(agent);
    const bytes = randomBytes(BLOB_BYTES);
    const digest = share(bytes, [stalling, good]);
    const started = performance.now();
    const res = await fetch(blobUrl(agent, digest));
    assert.equal(res.status, 200);
    assert.equal(sha256(await bodyOf(res)), sha256(bytes));
    assert.ok(performance.now() - started > 400, 'the stall outlasted the client idle timeout');
    assert.equal(source.stats().resumes, 1);
  });

  it('held back whole, wrong bytes never reach the client and are not reported as delivered', async () => {
    const { wrong, startAgent, share } = fixture();
    const delivered: string[] = [];
    const agent = await startAgent({ onWrongBytesDelivered: (d) => delivered.push(d) });
    const digest = share(randomBytes(BLOB_BYTES), [wrong]);
    const res = await fetch(blobUrl(agent, digest));
    assert.equal(res.status, 404);
    await bodyOf(res);
    assert.deepEqual(delivered, []);
  });
}

describe('peer source: whole blobs verified before they are sent, penalties', () => {
  let started: Fixture | undefined;
  const fixture = (): Fixture => {
    assert.ok(started, 'the peers are started');
    return started;
  };

  before(async () => {
    started = await startFixture();
  });

  after(async () => {
    for (const agent of started?.agents ?? []) {
      await agent.app.close();
      agent.source.close();
    }
    await Promise.all((started?.peers ?? []).map((peer) => peer.app.close()));
  });

  beforeEach(() => {
    const { claims, peers } = fixture();
    claims.clear();
    for (const peer of peers) peer.log.lines.length = 0;
  });

  sickPeerTests(fixture);
  rangeTests(fixture);
  heldBackTests(fixture);
});
