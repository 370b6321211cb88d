// The locator (locator.ts), the asker's end of the index, over a fake `ask`
// whose owners answer, fail, hang a while or say `warming` as each test
// wants: one ask to the key's first owner when it answers in time; the second
// owner asked too when the first fails, is slower than the hedge delay or is
// warming (a failed or warming first: the two answers merged, first owner's
// first; a slow first: the first usable answer of the two); answers with
// holders reused for cacheMs (clock injected) and empty ones not; one ask per
// key at a time however many lookups wait on it; and no ask at all without
// owners. These are the rules that bound a miss's cost to one hop.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { createHasher, type Hasher } from '../routing/hash.ts';
import { keyNumber, shardOfKey } from '../routing/owner-store.ts';
import { createLocator, type Locator, type LocatorOptions } from './locator.ts';
import type { OwnershipTable } from './ownership.ts';
import { OWNER_SHARDS, type HoldersAnswer } from './protocol.ts';

const HEDGE_MS = 80;
const CACHE_MS = 2_000;
const KEY = 'docker.io/library/nginx@sha256:0123';

type Behaviour = (key: number) => Promise<HoldersAnswer>;

interface Ask {
  owner: string;
  key: number;
  zone: string | undefined;
  timeoutMs: number;
  atMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const answer = (holders: readonly string[], warming = false): HoldersAnswer => ({ instance: 'inst', holders, warming });
const now =
  (holders: readonly string[], warming = false): Behaviour =>
  async () =>
    answer(holders, warming);
const after =
  (ms: number, holders: readonly string[], warming = false): Behaviour =>
  async () => {
    await sleep(ms);
    return answer(holders, warming);
  };
const failing: Behaviour = async () => {
  throw new Error('connection refused');
};

/** A table whose every shard is owned by `owners` (or by `byShard(shard)`). */
function tableOf(owners: readonly string[] | ((shard: number) => readonly string[])): OwnershipTable {
  const of = typeof owners === 'function' ? owners : () => owners;
  return { members: [], owners: of, ownedBy: () => [] };
}

interface Harness {
  locator: Locator;
  asks: Ask[];
  clock: { now: number };
}

function harness(hasher: Hasher, behaviours: Record<string, Behaviour>, overrides: Partial<LocatorOptions> = {}): Harness {
  const asks: Ask[] = [];
  const clock = { now: 5_000_000 };
  const started = performance.now();
  const locator = createLocator({
    hasher,
    table: () => tableOf(['owner-a', 'owner-b']),
    ask: (owner, query) => {
      asks.push({ owner, key: query.key, zone: query.zone, timeoutMs: query.timeoutMs, atMs: performance.now() - started });
      const behaviour = behaviours[owner];
      return behaviour === undefined ? Promise.reject(new Error(`no owner ${owner}`)) : behaviour(query.key);
    },
    zone: () => 'zone-a',
    hedgeMs: HEDGE_MS,
    timeoutMs: 250,
    cacheMs: CACHE_MS,
    maxCached: 100,
    log: createLogger('silent'),
    now: () => clock.now,
    ...overrides,
  });
  return { locator, asks, clock };
}

const ownersAsked = (asks: readonly Ask[]): string[] => asks.map((a) => a.owner);

describe('locator', () => {
  let hasher: Hasher;
  before(async () => {
    hasher = await createHasher();
  });

  it('the first owner answers in time: one ask, for the key number, with this agent zone and the timeout; its holders as answered', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': now(['pod-x', 'pod-y']), 'owner-b': now(['pod-z']) });
    assert.deepEqual(await locator.locate(KEY), ['pod-x', 'pod-y']);
    assert.deepEqual(ownersAsked(asks), ['owner-a']);
    assert.equal(asks[0]?.key, keyNumber(hasher.hash(KEY)));
    assert.equal(asks[0]?.zone, 'zone-a');
    assert.equal(asks[0]?.timeoutMs, 250);
    assert.deepEqual(locator.stats(), { lookups: 1, cacheHits: 0, secondAsks: 0, ownerFailures: 0 });
  });

  it('asks the owners of the key shard, first owner first', async () => {
    const byShard = (shard: number): string[] => [`owner-${shard}-1`, `owner-${shard}-2`];
    const shard = shardOfKey(keyNumber(hasher.hash(KEY)), OWNER_SHARDS);
    const { locator, asks } = harness(hasher, { [`owner-${shard}-1`]: failing, [`owner-${shard}-2`]: now(['pod-z']) }, { table: () => tableOf(byShard) });
    assert.deepEqual(await locator.locate(KEY), ['pod-z']);
    assert.deepEqual(ownersAsked(asks), [`owner-${shard}-1`, `owner-${shard}-2`]);
  });

  it('an answer within the hedge delay is taken alone', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': after(5, ['pod-x']), 'owner-b': now(['pod-z']) });
    assert.deepEqual(await locator.locate(KEY), ['pod-x']);
    assert.deepEqual(ownersAsked(asks), ['owner-a']);
  });

  it('the first owner fails fast: the second is asked at once, and its holders are the answer', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': failing, 'owner-b': now(['pod-z', 'pod-y']) });
    assert.deepEqual(await locator.locate(KEY), ['pod-z', 'pod-y']);
    assert.deepEqual(ownersAsked(asks), ['owner-a', 'owner-b']);
    assert.ok(asks[1]!.atMs < HEDGE_MS, `the second was asked after ${asks[1]!.atMs} ms, not after the hedge delay`);
    assert.deepEqual(locator.stats(), { lookups: 1, cacheHits: 0, secondAsks: 1, ownerFailures: 1 });
  });

  it('the first owner is slower than the hedge delay: the second is asked at the hedge delay and its answer is used without waiting for the first', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': after(HEDGE_MS * 6, ['pod-x', 'pod-y']), 'owner-b': now(['pod-y', 'pod-z']) });
    const started = Date.now();
    assert.deepEqual(await locator.locate(KEY), ['pod-y', 'pod-z']);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < HEDGE_MS * 3, `answered after ${tookMs} ms, not after the slow first owner`);
    assert.deepEqual(ownersAsked(asks), ['owner-a', 'owner-b']);
    assert.ok(asks[1]!.atMs >= HEDGE_MS - 2 && asks[1]!.atMs < HEDGE_MS * 3, `second asked after ${asks[1]!.atMs} ms`);
    assert.equal(locator.stats().secondAsks, 1);
  });

  it('the first owner is slow, the second slower still: the first usable answer wins', async () => {
    const { locator } = harness(hasher, { 'owner-a': after(HEDGE_MS * 2, ['pod-x']), 'owner-b': after(HEDGE_MS * 6, ['pod-z']) });
    const started = Date.now();
    assert.deepEqual(await locator.locate(KEY), ['pod-x']);
    assert.ok(Date.now() - started < HEDGE_MS * 5);
  });

  it('the first owner is slow and the second warming: both answers are merged, first owner first', async () => {
    const { locator } = harness(hasher, { 'owner-a': after(HEDGE_MS * 2, ['pod-x', 'pod-y']), 'owner-b': now(['pod-y', 'pod-z'], true) });
    assert.deepEqual(await locator.locate(KEY), ['pod-x', 'pod-y', 'pod-z']);
  });

  it('the first owner is slow and then fails: the second owner holders are the answer', async () => {
    const slowFail: Behaviour = async () => {
      await sleep(HEDGE_MS * 2);
      throw new Error('timeout');
    };
    const { locator } = harness(hasher, { 'owner-a': slowFail, 'owner-b': now(['pod-z']) });
    assert.deepEqual(await locator.locate(KEY), ['pod-z']);
  });

  it('the first owner is warming: the second is asked and merged, first owner holders first', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': now(['pod-x', 'pod-q'], true), 'owner-b': now(['pod-z', 'pod-x']) });
    assert.deepEqual(await locator.locate(KEY), ['pod-x', 'pod-q', 'pod-z']);
    assert.deepEqual(ownersAsked(asks), ['owner-a', 'owner-b']);
    assert.ok(asks[1]!.atMs < HEDGE_MS, 'asked at once, not after the hedge delay');
  });

  it('both owners fail: no holders; a single owner that fails: no holders; a single slow owner is waited for', async () => {
    const both = harness(hasher, { 'owner-a': failing, 'owner-b': failing });
    assert.deepEqual(await both.locator.locate(KEY), []);
    assert.equal(both.locator.stats().ownerFailures, 2);
    const single = harness(hasher, { 'owner-a': failing }, { table: () => tableOf(['owner-a']) });
    assert.deepEqual(await single.locator.locate(KEY), []);
    assert.deepEqual(ownersAsked(single.asks), ['owner-a']);
    const slow = harness(hasher, { 'owner-a': after(HEDGE_MS * 2, ['pod-x'], true) }, { table: () => tableOf(['owner-a']) });
    assert.deepEqual(await slow.locator.locate(KEY), ['pod-x']);
    assert.deepEqual(ownersAsked(slow.asks), ['owner-a']);
  });

  it('an answer with holders is reused within cacheMs, asked again after; an empty answer is not reused', async () => {
    let holders: string[] = ['pod-x'];
    const { locator, asks, clock } = harness(hasher, { 'owner-a': async () => answer(holders) });
    assert.deepEqual(await locator.locate(KEY), ['pod-x']);
    holders = ['pod-y'];
    clock.now += CACHE_MS - 1;
    assert.deepEqual(await locator.locate(KEY), ['pod-x'], 'cached');
    assert.equal(asks.length, 1);
    clock.now += 1;
    assert.deepEqual(await locator.locate(KEY), ['pod-y'], 'expired: asked again');
    assert.equal(asks.length, 2);
    assert.deepEqual(await locator.locate(`${KEY}-other`), ['pod-y'], 'another key is apart');
    assert.equal(asks.length, 3);
    holders = [];
    assert.deepEqual(await locator.locate(`${KEY}-none`), []);
    holders = ['pod-z'];
    assert.deepEqual(await locator.locate(`${KEY}-none`), ['pod-z'], 'an empty answer was not cached');
    assert.equal(locator.stats().cacheHits, 1);
  });

  it('a full cache makes room: the newest answer is cached, and a lookup of a key cached long ago asks again', async () => {
    let calls = 0;
    const { locator, asks } = harness(hasher, { 'owner-a': async () => answer([`pod-${++calls}`]) }, { maxCached: 3 });
    for (let i = 0; i < 5; i++) await locator.locate(`key-${i}`);
    assert.equal(asks.length, 5);
    assert.deepEqual(await locator.locate('key-4'), ['pod-5'], 'the newest is cached');
    assert.equal(asks.length, 5);
    assert.deepEqual(await locator.locate('key-0'), ['pod-6'], 'the oldest was evicted');
    assert.equal(asks.length, 6);
  });

  it('concurrent lookups of one key share one ask and its answer', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': after(10, ['pod-x']) });
    const lookups = await Promise.all(Array.from({ length: 8 }, () => locator.locate(KEY)));
    for (const holders of lookups) assert.deepEqual(holders, ['pod-x']);
    assert.equal(asks.length, 1);
    assert.deepEqual(await locator.locate(KEY), ['pod-x']);
    assert.equal(asks.length, 1, 'then from the cache');
  });

  it('concurrent lookups that find nothing share one ask too, and the next lookup asks again', async () => {
    const { locator, asks } = harness(hasher, { 'owner-a': after(10, []) });
    const lookups = await Promise.all([locator.locate(KEY), locator.locate(KEY), locator.locate(KEY)]);
    assert.deepEqual(lookups, [[], [], []]);
    assert.equal(asks.length, 1);
    await locator.locate(KEY);
    assert.equal(asks.length, 2);
  });

  it('no table yet, or a table without owners (no members): no holders and no ask', async () => {
    const none = harness(hasher, { 'owner-a': now(['pod-x']) }, { table: () => undefined });
    assert.deepEqual(await none.locator.locate(KEY), []);
    const empty = harness(hasher, { 'owner-a': now(['pod-x']) }, { table: () => tableOf([]) });
    assert.deepEqual(await empty.locator.locate(KEY), []);
    assert.equal(none.asks.length + empty.asks.length, 0);
  });
});
