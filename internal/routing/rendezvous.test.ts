// The rendezvous ranking against an independent oracle (every member's weight
// computed and fully sorted), and the properties ownership relies on: the same
// owners whatever the order of the members, and a membership change moves only
// the keys whose first `count` it touches.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createHasher, rendezvousWeight, type Hasher } from './hash.ts';
import { createRendezvousRanking, type RendezvousRanking } from './rendezvous.ts';

/** The oracle: every member by weight for `key`, highest first, ties to the smaller name. */
function oracle(hasher: Hasher, key: string, members: readonly string[]): string[] {
  const hash = hasher.hash(key);
  return members
    .map((name) => ({ name, weight: rendezvousWeight(hash, hasher.hash(name).hi, hasher.hash(name).lo) }))
    .sort((a, b) => b.weight - a.weight || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((entry) => entry.name);
}

const members = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 16 }), { minLength: 0, maxLength: 40 });
const count = fc.integer({ min: 0, max: 6 });
const RUNS = { numRuns: 1000, seed: 1306 };

describe('rendezvous ranking', () => {
  let hasher: Hasher;
  let rank: RendezvousRanking;
  before(async () => {
    hasher = await createHasher();
    rank = createRendezvousRanking(hasher);
  });

  it('is the first `count` of the oracle, whatever the order of the members', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), members, count, fc.integer(), (key, names, n, salt) => {
        const expected = oracle(hasher, key, names).slice(0, n);
        assert.deepEqual(rank(key, names, n), expected);
        const reordered = [...names].sort((a, b) => ((a.length * 31 + salt) % 7) - ((b.length * 31 + salt) % 7) || (a < b ? 1 : -1));
        assert.deepEqual(rank(key, new Set(reordered), n), expected);
      }),
      RUNS,
    );
  });

  it('removing a member outside the first `count` changes nothing; removing one of them moves the next one up', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), members, fc.integer({ min: 1, max: 4 }), fc.nat(), (key, names, n, pickIndex) => {
        fc.pre(names.length > n);
        const owners = rank(key, names, n);
        const full = oracle(hasher, key, names);
        const outsider = full[n + (pickIndex % (names.length - n))]!;
        assert.deepEqual(
          rank(
            key,
            names.filter((name) => name !== outsider),
            n,
          ),
          owners,
        );
        const insider = owners[pickIndex % n]!;
        assert.deepEqual(
          rank(
            key,
            names.filter((name) => name !== insider),
            n,
          ),
          full.filter((name) => name !== insider).slice(0, n),
        );
      }),
      RUNS,
    );
  });

  it('spreads 4,096 shards over 20 agents evenly, and a 21st agent becomes an owner of about 2/21 of the shards, taking places from nobody else', () => {
    const agents = Array.from({ length: 20 }, (_, i) => `mirra-${i.toString(36).padStart(5, 'x')}`);
    const places = new Map<string, number>();
    const before = new Map<number, string[]>();
    for (let shard = 0; shard < 4096; shard++) {
      const owners = rank(`shard:${shard}`, agents, 2);
      assert.equal(new Set(owners).size, 2, 'two different owners');
      before.set(shard, owners);
      for (const owner of owners) places.set(owner, (places.get(owner) ?? 0) + 1);
    }
    for (const [agent, n] of places) assert.ok(n > 300 && n < 520, `${agent} owns ${n} of 8,192 places`);
    const grown = [...agents, 'mirra-newcomer'];
    let moved = 0;
    for (let shard = 0; shard < 4096; shard++) {
      const now = rank(`shard:${shard}`, grown, 2);
      const was = before.get(shard)!;
      for (const owner of now)
        if (!was.includes(owner)) {
          assert.equal(owner, 'mirra-newcomer', 'owner places move only to the new agent');
          moved++;
        }
    }
    // Expected 4,096 x 2/21 = 390 shards gain the newcomer, each giving up one place.
    assert.ok(moved > 300 && moved < 480, `${moved} of 8,192 owner places moved`);
  });

  it('counts of zero or less rank nobody', () => {
    assert.deepEqual(rank('k', ['a', 'b'], 0), []);
    assert.deepEqual(rank('k', ['a', 'b'], -1), []);
    assert.deepEqual(rank('k', [], 3), []);
  });
});
