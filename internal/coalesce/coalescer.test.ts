import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IngestControl } from '../containerd/client.ts';
import { createLogger } from '../log/logger.ts';
import type { Candidate } from '../peer/client.ts';
import { createHasher } from '../routing/hash.ts';
import type { CoordinatorClient } from './client.ts';
import { createCoalescer, type Coalescer } from './coalescer.ts';
import { createCoordinatorPicker, type CoordinatorPicker } from './coordinator.ts';
import { createFetchRecords, type FetchRecords } from './records.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const MEMBERS = ['mirra-a', 'mirra-b', 'mirra-c', 'mirra-d'];
const STALL_MS = 60;

const candidateOf = (name: string): Candidate => ({ name, url: `http://${name}:5000` });

interface ClientCall {
  method: 'ask' | 'renew' | 'drop';
  coordinator: string;
  digest: string;
  failed?: string;
}

/** A CoordinatorClient whose answers the test sets; calls are recorded. */
interface FakeClient extends CoordinatorClient {
  calls: ClientCall[];
  /** Answers to ask(), in order (the last one repeats); an Error rejects. */
  answers: Array<string | Error>;
}

function fakeClient(): FakeClient {
  const client: FakeClient = {
    calls: [],
    answers: [],
    async ask(coordinator, digest, failed) {
      client.calls.push({ method: 'ask', coordinator: coordinator.name, digest, ...(failed === undefined ? {} : { failed }) });
      const answer = client.answers.length > 1 ? client.answers.shift() : client.answers[0];
      if (answer === undefined) throw new Error('no answer set');
      if (answer instanceof Error) throw answer;
      return answer;
    },
    async renew(coordinator, digest) {
      client.calls.push({ method: 'renew', coordinator: coordinator.name, digest });
    },
    async drop(coordinator, digest) {
      client.calls.push({ method: 'drop', coordinator: coordinator.name, digest });
    },
  };
  return client;
}

interface Harness {
  coalescer: Coalescer;
  records: FetchRecords;
  /** renew/drop calls this agent made on its own records. */
  recordCalls: string[];
  client: FakeClient;
  clock: { now: number };
  /** The ready members (names); candidate() answers for those other than self. */
  members: Set<string>;
}

function harness(pick: CoordinatorPicker, self: string, members: readonly string[] = MEMBERS): Harness {
  const clock = { now: 0 };
  const ready = new Set(members);
  const real = createFetchRecords({ ttlMs: 1_000, isAlive: (name) => ready.has(name), nowMs: () => clock.now });
  const recordCalls: string[] = [];
  const records: FetchRecords = {
    ask: (digest, asker, failed) => real.ask(digest, asker, failed),
    renew(digest, fetcher) {
      recordCalls.push(`renew ${digest} ${fetcher}`);
      real.renew(digest, fetcher);
    },
    drop(digest, fetcher) {
      recordCalls.push(`drop ${digest} ${fetcher}`);
      real.drop(digest, fetcher);
    },
    stats: () => real.stats(),
  };
  const client = fakeClient();
  const ingests: IngestControl = { listIngests: async () => [], abortIngest: async () => undefined };
  const coalescer = createCoalescer({
    self,
    members: () => ready,
    candidate: (name) => (name !== self && ready.has(name) ? candidateOf(name) : undefined),
    pick,
    records,
    client,
    fetches: {
      ingests,
      isCommitted: async () => false,
      log: createLogger('silent'),
      tickMs: 10,
      stallMs: STALL_MS,
      nowMs: () => clock.now,
    },
    log: createLogger('silent'),
  });
  return { coalescer, records, recordCalls, client, clock, members: ready };
}

/** Polls (on a timer that keeps the event loop alive) until `condition` holds; fails after a second. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 2) {
    if (waited >= 1_000) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

describe('coalescer', () => {
  let pick: CoordinatorPicker;
  /** The digest's coordinator among MEMBERS, and a member that is not it. */
  let coordinator: string;
  let other: string;
  let third: string;
  before(async () => {
    pick = createCoordinatorPicker(await createHasher());
    const winner = pick(DIGEST, MEMBERS);
    assert.ok(winner !== undefined);
    coordinator = winner;
    [other = '', third = ''] = MEMBERS.filter((name) => name !== winner);
  });

  it('coordinator is self, nobody fetching: this node fetches, recorded in its own records', async () => {
    const h = harness(pick, coordinator);
    try {
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      assert.equal(h.coalescer.fetches.has(DIGEST), true);
      assert.deepEqual(h.coalescer.stats(), { fetch: 1, follow: 0, unanswered: 0 });
      assert.deepEqual(h.client.calls, [], 'no request to a peer');
      assert.equal(h.records.ask(DIGEST, other), coordinator, 'the records name this agent as the fetcher');
    } finally {
      h.coalescer.close();
    }
  });

  it("coordinator is self, another agent fetching: follow() names that agent's candidate", async () => {
    const h = harness(pick, coordinator);
    try {
      assert.equal(h.records.ask(DIGEST, other), other, 'another agent asked first');
      assert.deepEqual(await h.coalescer.follow(DIGEST), candidateOf(other));
      assert.equal(h.coalescer.fetches.has(DIGEST), false);
      assert.deepEqual(h.coalescer.stats(), { fetch: 0, follow: 1, unanswered: 0 });
      // The fetcher could not be streamed from: this agent fetches now.
      assert.equal(await h.coalescer.follow(DIGEST, other), undefined);
      assert.equal(h.coalescer.fetches.has(DIGEST), true);
      assert.equal(h.records.ask(DIGEST, third), coordinator);
      assert.deepEqual(h.coalescer.stats(), { fetch: 1, follow: 1, unanswered: 0 });
    } finally {
      h.coalescer.close();
    }
  });

  it("coordinator is a peer: it is asked through the client, and its answer's candidate followed", async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = [third];
      assert.deepEqual(await h.coalescer.follow(DIGEST), candidateOf(third));
      assert.deepEqual(h.client.calls, [{ method: 'ask', coordinator, digest: DIGEST }]);
      assert.equal(h.coalescer.fetches.has(DIGEST), false);
      assert.deepEqual(h.coalescer.stats(), { fetch: 0, follow: 1, unanswered: 0 });
      assert.equal(h.records.stats().records, 0, "this agent's records are not asked");
    } finally {
      h.coalescer.close();
    }
  });

  it('coordinator is a peer naming this agent: this node fetches', async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = [other];
      assert.equal(await h.coalescer.follow(DIGEST, third), undefined);
      assert.deepEqual(h.client.calls, [{ method: 'ask', coordinator, digest: DIGEST, failed: third }]);
      assert.equal(h.coalescer.fetches.has(DIGEST), true);
      assert.deepEqual(h.coalescer.stats(), { fetch: 1, follow: 0, unanswered: 0 });
    } finally {
      h.coalescer.close();
    }
  });

  it('a coordinator that does not answer: this node fetches, the fetch tracked, counted unanswered', async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = [new Error('timed out')];
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      assert.equal(h.client.calls.length, 1);
      assert.deepEqual(h.coalescer.stats(), { fetch: 0, follow: 0, unanswered: 1 });
      assert.equal(h.coalescer.fetches.has(DIGEST), true);
    } finally {
      h.coalescer.close();
    }
  });

  it('a fetcher named that is not a ready peer: asked once more with it as failed', async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = ['mirra-unknown', other];
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      assert.deepEqual(h.client.calls, [
        { method: 'ask', coordinator, digest: DIGEST },
        { method: 'ask', coordinator, digest: DIGEST, failed: 'mirra-unknown' },
      ]);
      assert.equal(h.coalescer.fetches.has(DIGEST), true);
      assert.deepEqual(h.coalescer.stats(), { fetch: 1, follow: 0, unanswered: 0 });

      // Named again: no third ask.
      h.client.calls = [];
      h.client.answers = ['mirra-unknown'];
      assert.equal(await h.coalescer.follow(`sha256:${'b'.repeat(64)}`), undefined);
      assert.equal(h.client.calls.filter((call) => call.method === 'ask').length, 2);
    } finally {
      h.coalescer.close();
    }
  });

  it('no ready member at all: this node fetches, nobody asked', async () => {
    const h = harness(pick, 'mirra-self', []);
    try {
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      assert.equal(h.coalescer.fetches.has(DIGEST), true);
      assert.deepEqual(h.client.calls, []);
      assert.equal(h.records.stats().records, 0);
    } finally {
      h.coalescer.close();
    }
  });

  it("coordinator is self: the local fetch's renews and drop go to its own records", async () => {
    const h = harness(pick, coordinator);
    try {
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      await until(() => h.recordCalls.length > 0, 'a renew');
      assert.equal(h.recordCalls[0], `renew ${DIGEST} ${coordinator}`);
      h.clock.now = STALL_MS; // the fetch stalls; its record (1 s ttl) is still live
      await until(() => h.recordCalls.some((call) => call.startsWith('drop')), 'a drop');
      assert.deepEqual(new Set(h.recordCalls), new Set([`renew ${DIGEST} ${coordinator}`, `drop ${DIGEST} ${coordinator}`]));
      assert.equal(h.recordCalls.at(-1), `drop ${DIGEST} ${coordinator}`);
      assert.deepEqual(h.client.calls, [], 'nothing sent to peers');
      assert.equal(h.records.ask(DIGEST, other), other, 'the record was dropped');
    } finally {
      h.coalescer.close();
    }
  });

  it("coordinator is self: a renew keeps this agent's record past its ttl", async () => {
    const h = harness(pick, coordinator);
    try {
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      h.clock.now = 50; // under stallMs: still renewed
      const renews = h.recordCalls.length;
      await until(() => h.recordCalls.length > renews, 'a renew at 50');
      h.clock.now = 1_010; // 1 s after the ask, under 1 s after the renew
      assert.equal(h.records.ask(DIGEST, other), coordinator);
    } finally {
      h.coalescer.close();
    }
  });

  it("coordinator is a peer: the local fetch's renews and drop go to it through the client", async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = [other];
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      await until(() => h.client.calls.some((call) => call.method === 'renew'), 'a renew');
      h.clock.now = STALL_MS;
      await until(() => h.client.calls.some((call) => call.method === 'drop'), 'a drop');
      const [ask, ...reports] = h.client.calls;
      assert.deepEqual(ask, { method: 'ask', coordinator, digest: DIGEST });
      assert.ok(reports.length >= 2);
      assert.deepEqual(reports.at(-1), { method: 'drop', coordinator, digest: DIGEST });
      for (const call of reports.slice(0, -1)) assert.deepEqual(call, { method: 'renew', coordinator, digest: DIGEST });
      assert.deepEqual(h.recordCalls, [], "this agent's records are not told");
      assert.equal(h.coalescer.fetches.has(DIGEST), false);
    } finally {
      h.coalescer.close();
    }
  });

  it('reports follow the coordinator of the moment: a new coordinator hears the renews', async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = [other];
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      h.members.delete(coordinator);
      const next = pick(DIGEST, h.members);
      assert.ok(next !== undefined && next !== coordinator);
      if (next === other) {
        await until(() => h.recordCalls.length > 0, 'a renew to its own records');
        assert.equal(h.recordCalls[0], `renew ${DIGEST} ${other}`);
      } else {
        await until(() => h.client.calls.some((call) => call.method === 'renew' && call.coordinator === next), 'a renew to the next coordinator');
      }
      assert.ok(!h.client.calls.some((call) => call.method === 'renew' && call.coordinator === coordinator), 'the gone coordinator is not told');
    } finally {
      h.coalescer.close();
    }
  });

  it('close() stops the local fetches: no report after it', async () => {
    const h = harness(pick, other);
    try {
      h.client.answers = [other];
      assert.equal(await h.coalescer.follow(DIGEST), undefined);
      h.coalescer.close();
      assert.equal(h.coalescer.fetches.has(DIGEST), false);
      await sleep(40);
      assert.deepEqual(
        h.client.calls.map((call) => call.method),
        ['ask'],
      );
    } finally {
      h.coalescer.close();
    }
  });
});
