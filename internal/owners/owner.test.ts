// The owner service (owner.ts): what holders push for a shard goes into the
// owner store, and the answer names exactly the shards whose digest (digestOf,
// the holder's own computation) the store did not reach: a holder resends
// those in full, so a wrong resend list either loses keys for good or makes
// holders resend forever. Lookups name the ready holders of a key, same zone
// first, then by rendezvous weight (an oracle computed here from the key's
// bits with BigInt and rendezvousWeight), at most 16. A shard is `warming`
// while not owned and for warmMs after it was taken over; a shard not owned
// keeps its data for graceMs and is then swept. The clock is injected.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createHasher, keyHashOf, rendezvousWeight, type Hasher } from '../routing/hash.ts';
import { digestOf, shardOfKey } from '../routing/owner-store.ts';
import { createOwnerService, type MemberView, type OwnerService } from './owner.ts';
import { MAX_HOLDERS_ANSWERED, OWNER_SHARDS, parseHoldersAnswer } from './protocol.ts';

const WARM_MS = 5_000;
const GRACE_MS = 30_000;

/** `count` distinct key numbers of `shard` (found by scanning spread-out numbers). */
function keysInShard(shard: number, count: number): number[] {
  const keys: number[] = [];
  for (let i = 1; keys.length < count; i++) {
    const key = (i * 0x9e3779b1 * 4099) % 2 ** 53;
    if (shardOfKey(key, OWNER_SHARDS) === shard) keys.push(key);
  }
  return keys;
}

interface Setup {
  service: OwnerService;
  clock: { now: number };
  members: Map<string, MemberView>;
}

function setup(hasher: Hasher, members: Record<string, MemberView> = {}): Setup {
  const clock = { now: 1_000_000 };
  const view = new Map(Object.entries(members));
  const service = createOwnerService({ hasher, warmMs: WARM_MS, graceMs: GRACE_MS, member: (name) => view.get(name), now: () => clock.now });
  return { service, clock, members: view };
}

const READY: MemberView = { ready: true, zone: undefined };

/** The holders of a key, sorted (when the order does not matter). */
function holderSet(service: OwnerService, key: number): string[] {
  return [...service.holders(key, undefined).holders].sort();
}

/** The oracle of a lookup: ready holders, same zone first (all when the asker has none), then by weight, ties to the smaller name; 16 at most. */
function oracleOrder(
  hasher: Hasher,
  lookup: { key: number; names: readonly string[]; members: ReadonlyMap<string, MemberView>; zone: string | undefined },
): string[] {
  const { key, names, members, zone } = lookup;
  const big = BigInt(key);
  const hash = keyHashOf(Number(big >> 32n), Number(big & 0xffffffffn));
  return names
    .filter((name) => members.get(name)?.ready === true)
    .map((name) => {
      const seed = hasher.hash(name);
      return { name, tier: zone === undefined || members.get(name)?.zone === zone ? 0 : 1, weight: rendezvousWeight(hash, seed.hi, seed.lo) };
    })
    .sort((a, b) => a.tier - b.tier || b.weight - a.weight || (a.name < b.name ? -1 : 1))
    .slice(0, MAX_HOLDERS_ANSWERED)
    .map((entry) => entry.name);
}

describe('owner service: pushes and resend lists', () => {
  let hasher: Hasher;
  before(async () => {
    hasher = await createHasher();
  });
  const S = 17;
  const [k1, k2, k3, k4] = keysInShard(S, 4) as [number, number, number, number];

  it('has a random instance id of the form the answers carry', () => {
    const a = setup(hasher).service;
    const b = setup(hasher).service;
    assert.notEqual(a.instance, b.instance);
    assert.equal(parseHoldersAnswer({ instance: a.instance, holders: [], warming: false }).instance, a.instance);
  });

  it('a full entry with the right digest is stored and asks for nothing; with a wrong one it is stored and its shard is to be resent', () => {
    const { service } = setup(hasher, { 'pod-a': READY });
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'full', keys: [k1, k2], digest: digestOf(new Set([k1, k2])) }]), []);
    assert.deepEqual(holderSet(service, k1), ['pod-a']);
    assert.deepEqual(holderSet(service, k2), ['pod-a']);
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'full', keys: [k3], digest: digestOf(new Set([k1, k3])) }]), [S]);
    assert.deepEqual(holderSet(service, k1), [], 'a full entry replaces what the holder had in the shard');
    assert.deepEqual(holderSet(service, k3), ['pod-a']);
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'full', keys: [], digest: '0-0' }]), []);
    assert.deepEqual(holderSet(service, k3), []);
  });

  it('a full entry with repeated keys reaches the digest of the set', () => {
    const { service } = setup(hasher, { 'pod-a': READY });
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'full', keys: [k1, k1, k2], digest: digestOf(new Set([k1, k2])) }]), []);
  });

  it('a delta applies to what the owner has: the right resulting digest asks for nothing, a lost base asks for the shard', () => {
    const { service } = setup(hasher, { 'pod-a': READY, 'pod-b': READY });
    service.receive('pod-a', [{ shard: S, op: 'full', keys: [k1, k2], digest: digestOf(new Set([k1, k2])) }]);
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'delta', added: [k3], removed: [k1], digest: digestOf(new Set([k2, k3])) }]), []);
    assert.deepEqual(holderSet(service, k1), []);
    assert.deepEqual(holderSet(service, k3), ['pod-a']);
    // The same delta again (a retried push the owner had applied) changes nothing and still reaches the digest.
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'delta', added: [k3], removed: [k1], digest: digestOf(new Set([k2, k3])) }]), []);
    // A delta whose base the owner never had (a lost push): the digest is missed.
    assert.deepEqual(service.receive('pod-b', [{ shard: S, op: 'delta', added: [k4], removed: [], digest: digestOf(new Set([k1, k4])) }]), [S]);
    assert.deepEqual(holderSet(service, k4), ['pod-b'], 'applied anyway');
  });

  it('a check compares digests and changes nothing', () => {
    const { service } = setup(hasher, { 'pod-a': READY });
    service.receive('pod-a', [{ shard: S, op: 'full', keys: [k1], digest: digestOf(new Set([k1])) }]);
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'check', digest: digestOf(new Set([k1])) }]), []);
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'check', digest: digestOf(new Set([k1, k2])) }]), [S]);
    assert.deepEqual(service.receive('pod-a', [{ shard: S, op: 'check', digest: '0-0' }]), [S]);
    assert.deepEqual(service.receive('pod-b', [{ shard: S, op: 'check', digest: '0-0' }]), [], 'nothing from pod-b, and it claims nothing');
    assert.deepEqual(service.receive('pod-b', [{ shard: S, op: 'check', digest: digestOf(new Set([k1])) }]), [S], 'digests are per holder');
    assert.deepEqual(holderSet(service, k1), ['pod-a']);
  });

  it('one push with many entries answers exactly the shards whose digest was missed, in order (property, against a model of each holder set)', () => {
    const shards = [3, 40, 41, 200];
    const pool = new Map(shards.map((shard) => [shard, keysInShard(shard, 6)]));
    const subset = (shard: number): fc.Arbitrary<number[]> => fc.subarray(pool.get(shard)!);
    const entry = fc.constantFrom(...shards).chain((shard) =>
      fc.record({
        shard: fc.constant(shard),
        op: fc.constantFrom('full' as const, 'delta' as const, 'check' as const),
        a: subset(shard),
        b: subset(shard),
        lie: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(entry, { maxLength: 6 }), { maxLength: 6 }), (pushes) => {
        const { service } = setup(hasher, { 'pod-a': READY });
        const model = new Map<number, Set<number>>();
        for (const push of pushes) {
          const expected: number[] = [];
          const entries = push.map(({ shard, op, a, b, lie }) => {
            const before = model.get(shard) ?? new Set<number>();
            const after = op === 'full' ? new Set(a) : op === 'delta' ? new Set([...[...before].filter((k) => !b.includes(k)), ...a]) : before;
            model.set(shard, after);
            // A lying digest: the set plus a key of no shard here.
            const claimed = lie ? new Set([...after, 2 ** 53 - 1]) : after;
            if (digestOf(claimed) !== digestOf(after)) expected.push(shard);
            const digest = digestOf(claimed);
            return op === 'full' ? { shard, op, keys: a, digest } : op === 'delta' ? { shard, op, added: a, removed: b, digest } : { shard, op, digest };
          });
          assert.deepEqual(service.receive('pod-a', entries), expected);
        }
        for (const [shard, keys] of model) {
          for (const key of pool.get(shard)!) assert.deepEqual(holderSet(service, key), keys.has(key) ? ['pod-a'] : [], `shard ${shard} key ${key}`);
        }
      }),
      { numRuns: 300, seed: 5150 },
    );
  });
});

describe('owner service: lookups', () => {
  let hasher: Hasher;
  before(async () => {
    hasher = await createHasher();
  });

  it('names the ready holders, same zone first, then by rendezvous weight, 16 at most (property, against the oracle)', () => {
    const zones = fc.constantFrom('zone-a', 'zone-b', undefined);
    const member = fc.record({ ready: fc.boolean(), zone: zones, known: fc.boolean() });
    const names = fc.uniqueArray(fc.stringMatching(/^pod-[a-z0-9]{1,5}$/), { minLength: 1, maxLength: 30 });
    fc.assert(
      fc.property(names, fc.array(member, { minLength: 30, maxLength: 30 }), zones, fc.maxSafeNat(), (holders, views, zone, key) => {
        const members: Record<string, MemberView> = {};
        holders.forEach((name, i) => {
          const view = views[i]!;
          if (view.known) members[name] = { ready: view.ready, zone: view.zone };
        });
        const { service, members: map } = setup(hasher, members);
        const shard = shardOfKey(key, OWNER_SHARDS);
        for (const name of holders) service.receive(name, [{ shard, op: 'full', keys: [key], digest: digestOf(new Set([key])) }]);
        const answer = service.holders(key, zone);
        assert.deepEqual(answer.holders, oracleOrder(hasher, { key, names: holders, members: map, zone }));
        assert.equal(answer.instance, service.instance);
      }),
      { numRuns: 300, seed: 6060 },
    );
  });

  it('a holder that is not ready, or has no endpoint, is left out; one that becomes ready is named', () => {
    const key = keysInShard(5, 1)[0]!;
    const { service, members } = setup(hasher, { 'pod-a': READY, 'pod-b': { ready: false, zone: undefined } });
    for (const name of ['pod-a', 'pod-b', 'pod-c']) service.receive(name, [{ shard: 5, op: 'full', keys: [key], digest: digestOf(new Set([key])) }]);
    assert.deepEqual(service.holders(key, undefined).holders, ['pod-a']);
    members.set('pod-b', READY);
    members.set('pod-c', READY);
    assert.deepEqual(holderSet(service, key), ['pod-a', 'pod-b', 'pod-c']);
    members.delete('pod-a');
    assert.deepEqual(holderSet(service, key), ['pod-b', 'pod-c']);
  });

  it('the same zone comes first for an asker in that zone; without a zone only the weight counts', () => {
    const key = keysInShard(9, 1)[0]!;
    const names = Array.from({ length: 10 }, (_, i) => `pod-${i}`);
    const members: Record<string, MemberView> = {};
    names.forEach((name, i) => (members[name] = { ready: true, zone: i < 3 ? 'zone-a' : 'zone-b' }));
    const { service } = setup(hasher, members);
    for (const name of names) service.receive(name, [{ shard: 9, op: 'full', keys: [key], digest: digestOf(new Set([key])) }]);
    const inA = service.holders(key, 'zone-a').holders;
    assert.deepEqual([...inA.slice(0, 3)].sort(), ['pod-0', 'pod-1', 'pod-2']);
    const inB = service.holders(key, 'zone-b').holders;
    assert.deepEqual([...inB.slice(7)].sort(), ['pod-0', 'pod-1', 'pod-2']);
    const nowhere = service.holders(key, undefined).holders;
    assert.deepEqual(service.holders(key, 'zone-c').holders, nowhere, 'an asker in a zone nobody is in: the weight order');
    assert.equal(nowhere.length, 10);
  });

  it('answers 16 holders at most, and none for a key nobody pushed', () => {
    const key = keysInShard(11, 1)[0]!;
    const names = Array.from({ length: 40 }, (_, i) => `pod-${i}`);
    const { service } = setup(hasher, Object.fromEntries(names.map((name) => [name, READY])));
    for (const name of names) service.receive(name, [{ shard: 11, op: 'full', keys: [key], digest: digestOf(new Set([key])) }]);
    assert.equal(service.holders(key, undefined).holders.length, MAX_HOLDERS_ANSWERED);
    assert.deepEqual(service.holders(key + 1, undefined).holders, []);
  });
});

describe('owner service: ownership, warming and the grace period', () => {
  let hasher: Hasher;
  before(async () => {
    hasher = await createHasher();
  });
  const [a] = keysInShard(30, 1) as [number];
  const [b] = keysInShard(31, 1) as [number];
  const push = (service: OwnerService, shard: number, key: number): void => {
    assert.deepEqual(service.receive('pod-a', [{ shard, op: 'full', keys: [key], digest: digestOf(new Set([key])) }]), []);
  };

  it('a shard not owned is warming; a shard taken over is warming for warmMs, then not; owning it on does not restart the clock', () => {
    const { service, clock } = setup(hasher, { 'pod-a': READY });
    assert.equal(service.holders(a, undefined).warming, true, 'not owned');
    service.setOwned([30]);
    assert.equal(service.holders(a, undefined).warming, true);
    assert.equal(service.holders(b, undefined).warming, true, 'shard 31 is not owned');
    clock.now += WARM_MS - 1;
    service.setOwned([30, 31]);
    assert.equal(service.holders(a, undefined).warming, true, 'warmMs - 1 after');
    clock.now += 1;
    assert.equal(service.holders(a, undefined).warming, false, 'warmMs after');
    assert.equal(service.holders(b, undefined).warming, true, 'shard 31 was taken over later');
    clock.now += WARM_MS;
    assert.equal(service.holders(b, undefined).warming, false);
    service.setOwned([31]);
    assert.equal(service.holders(a, undefined).warming, true, 'given up');
    service.setOwned([30, 31]);
    assert.equal(service.holders(a, undefined).warming, true, 'taken over again: warming again');
    assert.equal(service.holders(b, undefined).warming, false);
    assert.equal(service.stats().owned, 2);
  });

  it('sweep drops a shard not owned graceMs after data came for it, and keeps owned shards', () => {
    const { service, clock } = setup(hasher, { 'pod-a': READY });
    service.setOwned([30]);
    push(service, 30, a);
    push(service, 31, b);
    clock.now += GRACE_MS - 1;
    service.sweep();
    assert.deepEqual(holderSet(service, b), ['pod-a'], 'within the grace period');
    clock.now += 1;
    service.sweep();
    assert.deepEqual(holderSet(service, b), [], 'grace period over');
    assert.deepEqual(holderSet(service, a), ['pod-a'], 'owned: kept');
    clock.now += 10 * GRACE_MS;
    service.sweep();
    assert.deepEqual(holderSet(service, a), ['pod-a'], 'owned: kept for ever');
    assert.deepEqual(service.receive('pod-a', [{ shard: 31, op: 'check', digest: digestOf(new Set([b])) }]), [31], 'the holder is told to resend');
  });

  it('a shard given up is dropped graceMs later; one taken back within the grace period is kept', () => {
    const { service, clock } = setup(hasher, { 'pod-a': READY });
    service.setOwned([30, 31]);
    push(service, 30, a);
    push(service, 31, b);
    clock.now += 1000;
    service.setOwned([]);
    clock.now += GRACE_MS - 1;
    service.setOwned([31]);
    service.sweep();
    assert.deepEqual(holderSet(service, a), ['pod-a']);
    clock.now += 1;
    service.sweep();
    assert.deepEqual(holderSet(service, a), [], 'given up graceMs ago');
    assert.deepEqual(holderSet(service, b), ['pod-a'], 'taken back within the grace period');
    clock.now += 10 * GRACE_MS;
    service.sweep();
    assert.deepEqual(holderSet(service, b), ['pod-a']);
    assert.equal(service.stats().shards, 1);
  });

  it('removeHolder forgets one holder in every shard, and nobody else', () => {
    const { service } = setup(hasher, { 'pod-a': READY, 'pod-b': READY });
    service.setOwned([30, 31]);
    for (const name of ['pod-a', 'pod-b']) {
      service.receive(name, [
        { shard: 30, op: 'full', keys: [a], digest: digestOf(new Set([a])) },
        { shard: 31, op: 'full', keys: [b], digest: digestOf(new Set([b])) },
      ]);
    }
    service.removeHolder('pod-a');
    assert.deepEqual(holderSet(service, a), ['pod-b']);
    assert.deepEqual(holderSet(service, b), ['pod-b']);
    assert.deepEqual(service.receive('pod-a', [{ shard: 30, op: 'check', digest: digestOf(new Set([a])) }]), [30], 'if it comes back, it resends');
    service.removeHolder('pod-x');
    assert.deepEqual(service.stats().holders, 1);
  });

  it('counts pushes, lookups and resends', () => {
    const { service } = setup(hasher, { 'pod-a': READY });
    push(service, 30, a);
    service.receive('pod-a', [
      { shard: 30, op: 'check', digest: '0-0' },
      { shard: 31, op: 'check', digest: '0-0' },
    ]);
    service.holders(a, undefined);
    const stats = service.stats();
    assert.deepEqual(
      { pushes: stats.pushes, lookups: stats.lookups, resends: stats.resends, keys: stats.keys, postings: stats.postings },
      { pushes: 2, lookups: 1, resends: 1, keys: 1, postings: 1 },
    );
  });

  it('a key with many holders: its ordered answer is reused for a second, dropped at once by a push touching the key, and a full push of its shard', () => {
    const names = Array.from({ length: 80 }, (_, i) => `holder-${i}`);
    const { service, clock, members } = setup(hasher, Object.fromEntries(names.map((name) => [name, READY])));
    const [key, other] = keysInShard(9, 2) as [number, number];
    service.setOwned([9]);
    for (const name of names) service.receive(name, [{ shard: 9, op: 'full', keys: [key, other], digest: digestOf(new Set([key, other])) }]);
    const first = service.holders(key, undefined).holders;
    assert.equal(first.length, MAX_HOLDERS_ANSWERED);
    const gone = first[0]!;
    // Readiness changes show only once the cached answer is a second old.
    members.set(gone, { ready: false, zone: undefined });
    assert.deepEqual(service.holders(key, undefined).holders, first, 'the cached order');
    clock.now += 1_000;
    assert.ok(!service.holders(key, undefined).holders.includes(gone), 'ordered again after a second');
    members.set(gone, READY);
    clock.now += 1_000;
    const again = service.holders(key, undefined).holders;
    assert.ok(again.includes(gone));
    // A delta removing the key from a holder drops the cached answer at once.
    service.receive(gone, [{ shard: 9, op: 'delta', added: [], removed: [key], digest: digestOf(new Set([other])) }]);
    assert.ok(!service.holders(key, undefined).holders.includes(gone), 'the delta shows at once');
    // So does a full set without the key.
    const next = service.holders(key, undefined).holders[0]!;
    service.receive(next, [{ shard: 9, op: 'full', keys: [other], digest: digestOf(new Set([other])) }]);
    assert.ok(!service.holders(key, undefined).holders.includes(next), 'the full set shows at once');
  });
});
