import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFetchRecords, type FetchRecords, type FetchRecordsOptions } from './records.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;

interface Table {
  records: FetchRecords;
  /** The injected clock, in ms. */
  clock: { now: number };
  /** Agents no longer ready (isAlive answers false for them). */
  gone: Set<string>;
}

function table(options: Partial<FetchRecordsOptions> = {}): Table {
  const clock = { now: 1_000 };
  const gone = new Set<string>();
  const records = createFetchRecords({ ttlMs: 100, isAlive: (name) => !gone.has(name), nowMs: () => clock.now, ...options });
  return { records, clock, gone };
}

describe('fetch records', () => {
  it('the first asker is recorded as the fetcher and named back', () => {
    const { records } = table();
    assert.equal(records.ask(D1, 'a'), 'a');
    assert.deepEqual(records.stats(), { records: 1, askedFetch: 1, askedFollow: 0 });
  });

  it('a second asker is told the first fetcher; the fetcher asking again is told itself', () => {
    const { records } = table();
    assert.equal(records.ask(D1, 'a'), 'a');
    assert.equal(records.ask(D1, 'b'), 'a');
    assert.equal(records.ask(D1, 'c'), 'a');
    assert.equal(records.ask(D1, 'a'), 'a');
    assert.deepEqual(records.stats(), { records: 1, askedFetch: 2, askedFollow: 2 });
  });

  it('digests are recorded independently', () => {
    const { records } = table();
    assert.equal(records.ask(D1, 'a'), 'a');
    assert.equal(records.ask(D2, 'b'), 'b');
    assert.equal(records.ask(D1, 'b'), 'a');
    assert.equal(records.ask(D2, 'a'), 'b');
    assert.equal(records.stats().records, 2);
  });

  it('an asker naming the live fetcher as failed becomes the fetcher', () => {
    const { records } = table();
    records.ask(D1, 'a');
    assert.equal(records.ask(D1, 'b', 'a'), 'b');
    assert.equal(records.ask(D1, 'c'), 'b', 'the new fetcher is recorded');
    assert.equal(records.ask(D1, 'c', 'x'), 'b', 'a failed name that is not the fetcher changes nothing');
    assert.deepEqual(records.stats(), { records: 1, askedFetch: 2, askedFollow: 2 });
  });

  it('a record expires ttlMs after its creation without a renew', () => {
    const { records, clock } = table({ ttlMs: 100 });
    records.ask(D1, 'a');
    clock.now += 99;
    assert.equal(records.ask(D1, 'b'), 'a', 'still live 1 ms before its end');
    clock.now += 1;
    assert.equal(records.ask(D1, 'b'), 'b', 'expired: the asker fetches');
    assert.equal(records.stats().records, 1);
    clock.now += 100;
    assert.equal(records.stats().records, 0, 'stats() sweeps the expired record');
  });

  it("a renew by the fetcher extends the record's life by ttlMs", () => {
    const { records, clock } = table({ ttlMs: 100 });
    records.ask(D1, 'a');
    clock.now += 80;
    records.renew(D1, 'a');
    clock.now += 80; // 160 after the ask, 80 after the renew
    assert.equal(records.ask(D1, 'b'), 'a');
    clock.now += 19; // 99 after the renew
    assert.equal(records.ask(D1, 'b'), 'a');
    clock.now += 1;
    assert.equal(records.ask(D1, 'b'), 'b');
  });

  it('a renew without a record makes one (a new coordinator learns the fetcher)', () => {
    const { records, clock } = table({ ttlMs: 100 });
    records.renew(D1, 'a');
    assert.equal(records.stats().records, 1);
    assert.equal(records.ask(D1, 'b'), 'a');
    assert.deepEqual(records.stats(), { records: 1, askedFetch: 0, askedFollow: 1 });
    clock.now += 100;
    records.renew(D1, 'c');
    assert.equal(records.ask(D1, 'b'), 'c', 'an expired record is replaced by the renewing agent');
  });

  it('a renew by another agent than the live fetcher does not take the record over nor extend it', () => {
    const { records, clock } = table({ ttlMs: 100 });
    records.ask(D1, 'a');
    clock.now += 50;
    records.renew(D1, 'b');
    assert.equal(records.ask(D1, 'c'), 'a');
    clock.now += 50;
    assert.equal(records.ask(D1, 'c'), 'c', "b's renew did not extend a's record");
  });

  it('only the fetcher drops its record', () => {
    const { records } = table();
    records.ask(D1, 'a');
    records.drop(D1, 'b');
    assert.equal(records.ask(D1, 'c'), 'a', 'a drop by another agent is ignored');
    records.drop(D1, 'a');
    assert.equal(records.stats().records, 0);
    assert.equal(records.ask(D1, 'c'), 'c');
    records.drop(D2, 'a'); // no record: nothing happens
    assert.equal(records.stats().records, 1);
  });

  it('a record whose fetcher is no longer alive is dropped at the next ask', () => {
    const { records, gone } = table();
    records.ask(D1, 'a');
    records.ask(D2, 'a');
    gone.add('a');
    assert.equal(records.ask(D1, 'b'), 'b');
    assert.equal(records.ask(D1, 'c'), 'b');
    gone.delete('a');
    assert.equal(records.ask(D2, 'c'), 'a', 'a back before anyone asked for D2: its record stands');
  });

  it('a renew does not keep a dead fetcher: the renewing agent takes the record', () => {
    const { records, gone } = table();
    records.ask(D1, 'a');
    gone.add('a');
    records.renew(D1, 'b');
    gone.delete('a');
    assert.equal(records.ask(D1, 'c'), 'b');
  });

  it('maxRecords bounds the table: the record nearest its end goes', () => {
    const { records, clock } = table({ ttlMs: 1_000, maxRecords: 2 });
    records.ask(D1, 'a');
    clock.now += 10;
    records.ask(D2, 'a');
    clock.now += 10;
    records.renew(D1, 'a'); // D1 now ends after D2
    clock.now += 10;
    records.ask(D3, 'a');
    assert.equal(records.stats().records, 2);
    assert.equal(records.ask(D2, 'b'), 'b', 'D2, nearest its end, was dropped');
    // Asking D2 again recorded it: D1 (renewed at +20) is now the oldest and goes.
    assert.equal(records.ask(D1, 'b'), 'b');
    assert.equal(records.ask(D3, 'b'), 'b', 'D3 went when D1 was recorded again');
    assert.equal(records.stats().records, 2);
  });

  it('the default bound keeps thousands of records', () => {
    const { records } = table({ ttlMs: 1_000 });
    for (let i = 0; i < 4_096; i++) records.ask(`sha256:${i}`, 'a');
    assert.equal(records.stats().records, 4_096);
    records.ask('sha256:one-more', 'a');
    assert.equal(records.stats().records, 4_096);
    assert.equal(records.ask('sha256:0', 'b'), 'b', 'the first one went');
    assert.equal(records.ask('sha256:1', 'b'), 'b', 'then the second, to make room for sha256:0 again');
    assert.equal(records.ask('sha256:4095', 'b'), 'a', 'the newest stays');
  });

  it('stats() counts asks answered fetch and follow, and the records held', () => {
    const { records, clock } = table({ ttlMs: 100 });
    assert.deepEqual(records.stats(), { records: 0, askedFetch: 0, askedFollow: 0 });
    records.ask(D1, 'a'); // fetch
    records.ask(D1, 'b'); // follow
    records.ask(D2, 'b'); // fetch
    records.ask(D2, 'a'); // follow
    records.ask(D2, 'c'); // follow
    records.ask(D1, 'a'); // fetch (the fetcher itself)
    assert.deepEqual(records.stats(), { records: 2, askedFetch: 3, askedFollow: 3 });
    clock.now += 100;
    assert.deepEqual(records.stats(), { records: 0, askedFetch: 3, askedFollow: 3 });
  });
});
