import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IngestControl } from '../containerd/client.ts';
import type { IngestStatus } from '../containerd/messages.ts';
import { createLogger } from '../log/logger.ts';
import { createLocalFetches, type LocalFetches, type LocalFetchesOptions } from './local-fetches.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

const TICK_MS = 10;
const STALL_MS = 60;

interface Report {
  kind: 'renew' | 'drop';
  digest: string;
  /** The injected clock when it was made. */
  atMs: number;
}

/** containerd's ingests as the test sets them; listIngests can be made to reject. */
interface FakeIngests extends IngestControl {
  ingests: IngestStatus[];
  failure: Error | undefined;
  listCalls: number;
}

function fakeIngests(): FakeIngests {
  const fake: FakeIngests = {
    ingests: [],
    failure: undefined,
    listCalls: 0,
    async listIngests() {
      fake.listCalls++;
      if (fake.failure !== undefined) throw fake.failure;
      return fake.ingests.map((status) => ({ ...status }));
    },
    async abortIngest(ref) {
      fake.ingests = fake.ingests.filter((status) => status.ref !== ref);
    },
  };
  return fake;
}

interface Harness {
  fetches: LocalFetches;
  ingests: FakeIngests;
  reports: Report[];
  clock: { now: number };
  /** Whether a digest is committed, as isCommitted answers; and how often it was asked. */
  committed: Set<string>;
  committedCalls: { count: number };
  /** Resolves once `count` reports were made (rejects after a second). */
  reportsReach(count: number): Promise<void>;
}

function harness(options: Partial<LocalFetchesOptions> = {}): Harness {
  const clock = { now: 0 };
  const ingests = fakeIngests();
  const reports: Report[] = [];
  const committed = new Set<string>();
  const committedCalls = { count: 0 };
  const waiters = new Set<{ count: number; resolve(): void }>();
  const add = (kind: Report['kind'], digest: string): void => {
    reports.push({ kind, digest, atMs: clock.now });
    for (const waiter of waiters) {
      if (reports.length < waiter.count) continue;
      waiters.delete(waiter);
      waiter.resolve();
    }
  };
  const fetches = createLocalFetches({
    ingests,
    isCommitted: async (digest) => {
      committedCalls.count++;
      return committed.has(digest);
    },
    reports: { renew: (digest) => add('renew', digest), drop: (digest) => add('drop', digest) },
    log: createLogger('silent'),
    tickMs: TICK_MS,
    stallMs: STALL_MS,
    completeGraceMs: 100,
    nowMs: () => clock.now,
    ...options,
  });
  const reportsReach = (count: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (reports.length >= count) {
        resolve();
        return;
      }
      // A timer that keeps the event loop alive (the ticker's is unref'd) and bounds the wait.
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`waited for ${count} reports, got ${reports.length}: ${JSON.stringify(reports)}`));
      }, 1_000);
      const waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      waiters.add(waiter);
    });
  return { fetches, ingests, reports, clock, committed, committedCalls, reportsReach };
}

const ingest = (digest: string, offset: number, total = 1_000): IngestStatus => ({ ref: `layer-${digest}`, offset, total, expected: '' });

/**
 * Runs ticks one at a time on a single fetch: before each, `step` changes the
 * world (clock, ingests), then the tick's one report is awaited. Returns the
 * reports' kinds with their clock.
 */
async function ticks(h: Harness, count: number, step: (i: number) => void): Promise<string[]> {
  const first = h.reports.length;
  for (let i = 0; i < count; i++) {
    step(i);
    await h.reportsReach(first + i + 1);
  }
  return h.reports.slice(first).map((report) => `${report.kind}@${report.atMs}`);
}

describe('local fetches', () => {
  it('a growing ingest is renewed at every tick, long past stallMs', async () => {
    const h = harness();
    try {
      const status = ingest(D1, 0);
      h.ingests.ingests.push(status);
      h.fetches.start(D1);
      assert.equal(h.fetches.has(D1), true);
      assert.equal(h.fetches.size(), 1);
      const seen = await ticks(h, 10, () => {
        h.clock.now += TICK_MS * 2;
        status.offset += 100;
      });
      assert.deepEqual(
        seen,
        Array.from({ length: 10 }, (_, i) => `renew@${(i + 1) * 20}`),
      );
      assert.ok(h.reports.every((report) => report.digest === D1));
      assert.equal(h.fetches.has(D1), true);
      assert.equal(h.committedCalls.count, 0, 'an ingest in progress is not looked up in the content store');
    } finally {
      h.fetches.close();
    }
  });

  it('an ingest that stops growing for stallMs is dropped, and the ticker stops', async () => {
    const h = harness();
    try {
      const status = ingest(D1, 0);
      h.ingests.ingests.push(status);
      h.fetches.start(D1);
      const seen = await ticks(h, 4, (i) => {
        h.clock.now += 20;
        if (i === 0) status.offset = 500; // grew at 20, then nothing
      });
      // Quiet since 20: under 60 ms at 40 and 60; at 80 it has been quiet for 60.
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'renew@60', 'drop@80']);
      assert.equal(h.fetches.has(D1), false);
      assert.equal(h.fetches.size(), 0);
      const calls = h.ingests.listCalls;
      await sleep(TICK_MS * 4);
      assert.equal(h.ingests.listCalls, calls, 'no fetch left: no more ticks');
      assert.equal(h.reports.length, 4);
    } finally {
      h.fetches.close();
    }
  });

  it('an ingest not started while another ingest of the node grows waits for its download slot; dropped once the node is quiet', async () => {
    const h = harness();
    try {
      const queued = ingest(D1, 0);
      const other: IngestStatus = { ref: 'layer-sha256:other', offset: 0, total: 1_000, expected: '' };
      h.ingests.ingests.push(queued, other);
      h.fetches.start(D1);
      const seen = await ticks(h, 8, (i) => {
        h.clock.now += 20;
        if (i < 5) other.offset += 100; // containerd downloads something else until 100, then nothing moves
      });
      // Renewed far past stallMs while the node downloads; quiet since 100: dropped at 160.
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'renew@60', 'renew@80', 'renew@100', 'renew@120', 'renew@140', 'drop@160']);
      assert.equal(h.fetches.has(D1), false);
    } finally {
      h.fetches.close();
    }
  });

  it('a started ingest that stops is dropped after stallMs even while the node downloads other blobs', async () => {
    const h = harness();
    try {
      const started = ingest(D1, 0);
      const other: IngestStatus = { ref: 'layer-sha256:other', offset: 0, total: 1_000, expected: '' };
      h.ingests.ingests.push(started, other);
      h.fetches.start(D1);
      const seen = await ticks(h, 4, (i) => {
        h.clock.now += 20;
        other.offset += 100;
        if (i === 0) started.offset = 10;
      });
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'renew@60', 'drop@80']);
    } finally {
      h.fetches.close();
    }
  });

  it('no ingest and the blob committed: renewed for completeGraceMs, then dropped', async () => {
    const h = harness({ completeGraceMs: 100 });
    try {
      h.committed.add(D1);
      h.fetches.start(D1);
      const seen = await ticks(h, 6, () => {
        h.clock.now += 20;
      });
      // Committed as seen at 20; renewed while under 100 ms since (well past stallMs), dropped at 120.
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'renew@60', 'renew@80', 'renew@100', 'drop@120']);
      assert.equal(h.committedCalls.count, 1, 'the commit is looked up once');
      assert.equal(h.fetches.has(D1), false);
    } finally {
      h.fetches.close();
    }
  });

  it('no ingest and no blob: renewed until stallMs after the start, then dropped', async () => {
    const h = harness();
    try {
      h.fetches.start(D1);
      const seen = await ticks(h, 3, () => {
        h.clock.now += 20;
      });
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'drop@60']);
      assert.equal(h.committedCalls.count, 3);
      assert.equal(h.fetches.has(D1), false);
    } finally {
      h.fetches.close();
    }
  });

  it('an ingest that shows up late, before stallMs, keeps the fetch', async () => {
    const h = harness();
    try {
      h.fetches.start(D1);
      const seen = await ticks(h, 5, (i) => {
        h.clock.now += 20;
        if (i === 1) h.ingests.ingests.push(ingest(D1, 10));
      });
      // Grew at 40 (0 -> 10), quiet since: dropped at 100.
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'renew@60', 'renew@80', 'drop@100']);
    } finally {
      h.fetches.close();
    }
  });

  it('listIngests rejecting does not crash the ticker: the fetch is judged without an ingest', async () => {
    const h = harness();
    try {
      const status = ingest(D1, 0);
      h.ingests.ingests.push(status);
      h.ingests.failure = new Error('containerd away');
      h.fetches.start(D1);
      const seen = await ticks(h, 3, () => {
        h.clock.now += 20;
        status.offset += 100; // grows, but nobody sees it
      });
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'drop@60']);
      assert.equal(h.committedCalls.count, 3, 'judged as no ingest: the content store is asked');

      // The ticker runs again for the next fetch, and the commit is seen.
      h.committed.add(D2);
      h.fetches.start(D2);
      assert.deepEqual(
        await ticks(h, 2, () => {
          h.clock.now += 20;
        }),
        ['renew@80', 'renew@100'],
      );
    } finally {
      h.fetches.close();
    }
  });

  it('ingestOf names the fetch ingest (ref and total), undefined for other digests', async () => {
    const h = harness();
    try {
      h.ingests.ingests.push(ingest(D2, 7, 2_000), { ref: 'config-other', offset: 1, total: 5, expected: '' }, ingest(D1, 42, 12_345));
      h.fetches.start(D1);
      assert.deepEqual(await h.fetches.ingestOf(D1), { ref: `layer-${D1}`, total: 12_345 });
      assert.equal(await h.fetches.ingestOf(D2), undefined, 'an ingest of a digest not fetched for the others');
      assert.equal(await h.fetches.ingestOf(`sha256:${'9'.repeat(64)}`), undefined);
      h.fetches.start(D2);
      assert.deepEqual(await h.fetches.ingestOf(D2), { ref: `layer-${D2}`, total: 2_000 });
      h.ingests.ingests = [];
      assert.equal(await h.fetches.ingestOf(D1), undefined, 'no ingest (committed or not started yet)');
    } finally {
      h.fetches.close();
    }
  });

  it('starting a fetch again while it goes on keeps its stall clock', async () => {
    const h = harness();
    try {
      h.fetches.start(D1);
      const seen = await ticks(h, 3, (i) => {
        h.clock.now += 20;
        if (i === 1) h.fetches.start(D1);
      });
      assert.deepEqual(seen, ['renew@20', 'renew@40', 'drop@60']);
    } finally {
      h.fetches.close();
    }
  });

  it('close() stops the ticker: no more lookups nor reports', async () => {
    const h = harness();
    try {
      h.ingests.ingests.push(ingest(D1, 0));
      h.fetches.start(D1);
      h.fetches.start(D2);
      await h.reportsReach(2);
      h.fetches.close();
      assert.equal(h.fetches.size(), 0);
      assert.equal(h.fetches.has(D1), false);
      const calls = h.ingests.listCalls;
      const reports = h.reports.length;
      await sleep(TICK_MS * 5);
      assert.equal(h.ingests.listCalls, calls);
      assert.equal(h.reports.length, reports);
      h.fetches.start(D1);
      await sleep(TICK_MS * 3);
      assert.equal(h.ingests.listCalls, calls, 'a start after close() does not tick');
      assert.equal(h.reports.length, reports);
    } finally {
      h.fetches.close();
    }
  });
});
