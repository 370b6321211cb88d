// The ownership table (ownership.ts) against an independent oracle: every
// member ranked for `shard/<i>` by its rendezvous weight, fully sorted, the
// first R owning the shard (as internal/routing/rendezvous.test.ts ranks).
// Agents compute the table each on their own from the ready endpoints, so it
// must not depend on the order (or repeats) of the members they saw; ownedBy
// must be owners() read the other way; and a member joining must move only
// the shards it enters the first R of, leaving each one's other owner in place
// (the rest of the index keeps what it pushed).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createHasher, rendezvousWeight, type Hasher } from '../routing/hash.ts';
import { createRendezvousRanking } from '../routing/rendezvous.ts';
import { computeOwnership, sameMembers, shardName, type OwnershipOptions, type OwnershipTable } from './ownership.ts';
import { OWNER_REPLICAS, OWNER_SHARDS } from './protocol.ts';

/** The oracle: every member by weight for the shard's name, highest first, ties to the smaller name. */
function oracleRanking(hasher: Hasher, shard: number, members: readonly string[]): string[] {
  const hash = hasher.hash(`shard/${shard}`);
  return [...new Set(members)]
    .map((name) => {
      const seed = hasher.hash(name);
      return { name, weight: rendezvousWeight(hash, seed.hi, seed.lo) };
    })
    .sort((a, b) => b.weight - a.weight || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((entry) => entry.name);
}

const podName = fc.stringMatching(/^mirra-[a-z0-9]{1,6}$/);
const membersArb = fc.uniqueArray(podName, { minLength: 0, maxLength: 24 });
const shardsArb = fc.integer({ min: 1, max: 64 });
const replicasArb = fc.integer({ min: 1, max: 4 });
const RUNS = { numRuns: 200, seed: 9121 };

/** Every shard's owners, as a plain array (for deepEqual between tables). */
function ownersOf(table: OwnershipTable, shards: number): (readonly string[])[] {
  return Array.from({ length: shards }, (_, shard) => table.owners(shard));
}

describe('shard ownership', () => {
  let hasher: Hasher;
  let options: (shards: number, replicas: number) => OwnershipOptions;
  before(async () => {
    hasher = await createHasher();
    const rank = createRendezvousRanking(hasher);
    options = (shards, replicas) => ({ rank, shards, replicas });
  });

  it('a shard is named shard/<i>', () => {
    assert.equal(shardName(0), 'shard/0');
    assert.equal(shardName(255), 'shard/255');
  });

  it('each shard is owned by the first R members of the oracle, and members is the sorted set', () => {
    fc.assert(
      fc.property(membersArb, shardsArb, replicasArb, (members, shards, replicas) => {
        const table = computeOwnership(options(shards, replicas), members);
        assert.deepEqual(table.members, [...members].sort());
        for (let shard = 0; shard < shards; shard++) {
          const expected = oracleRanking(hasher, shard, members).slice(0, replicas);
          assert.deepEqual(table.owners(shard), expected, `shard ${shard}`);
          assert.equal(new Set(table.owners(shard)).size, table.owners(shard).length, 'no member twice');
        }
        assert.deepEqual(table.owners(shards), [], 'a shard past the last has no owners');
        assert.deepEqual(table.owners(-1), []);
      }),
      RUNS,
    );
  });

  it('the real table (256 shards, 2 replicas) over 40 agents matches the oracle', () => {
    const members = Array.from({ length: 40 }, (_, i) => `mirra-${(i * 7919).toString(36)}`);
    const table = computeOwnership(options(OWNER_SHARDS, OWNER_REPLICAS), members);
    for (let shard = 0; shard < OWNER_SHARDS; shard++) {
      assert.deepEqual(table.owners(shard), oracleRanking(hasher, shard, members).slice(0, OWNER_REPLICAS), `shard ${shard}`);
    }
  });

  it('ownedBy(name) is, ascending, exactly the shards whose owners include name; [] for a non-member', () => {
    fc.assert(
      fc.property(membersArb, shardsArb, replicasArb, podName, (members, shards, replicas, stranger) => {
        const table = computeOwnership(options(shards, replicas), members);
        let places = 0;
        for (const name of members) {
          const expected: number[] = [];
          for (let shard = 0; shard < shards; shard++) if (table.owners(shard).includes(name)) expected.push(shard);
          assert.deepEqual(table.ownedBy(name), expected, name);
          places += expected.length;
        }
        assert.equal(places, shards * Math.min(replicas, members.length), 'every shard has min(R, N) owners');
        if (!members.includes(stranger)) assert.deepEqual(table.ownedBy(stranger), []);
      }),
      RUNS,
    );
  });

  it('the order of the members, and repeats among them, change nothing', () => {
    const shuffled = membersArb.chain((members) =>
      fc.tuple(fc.constant(members), fc.shuffledSubarray(members, { minLength: members.length, maxLength: members.length }), fc.subarray(members)),
    );
    fc.assert(
      fc.property(shuffled, shardsArb, replicasArb, ([members, reordered, repeated], shards, replicas) => {
        const a = computeOwnership(options(shards, replicas), members);
        const b = computeOwnership(options(shards, replicas), [...reordered, ...repeated]);
        assert.ok(sameMembers(a.members, b.members));
        assert.deepEqual(ownersOf(b, shards), ownersOf(a, shards));
        for (const name of members) assert.deepEqual(b.ownedBy(name), a.ownedBy(name));
      }),
      RUNS,
    );
  });

  it('a member joining moves only the shards it enters the first R of, and each keeps its other owners in order', () => {
    fc.assert(
      fc.property(membersArb, podName, shardsArb, replicasArb, (members, joiner, shards, replicas) => {
        fc.pre(!members.includes(joiner));
        const before = computeOwnership(options(shards, replicas), members);
        const after = computeOwnership(options(shards, replicas), [...members, joiner]);
        let moved = 0;
        for (let shard = 0; shard < shards; shard++) {
          const old = before.owners(shard);
          const now = after.owners(shard);
          if (!now.includes(joiner)) {
            assert.deepEqual(now, old, `shard ${shard}: the joiner is not an owner, nothing moves`);
            continue;
          }
          moved++;
          const oracle = oracleRanking(hasher, shard, [...members, joiner]);
          assert.ok(oracle.indexOf(joiner) < replicas, `shard ${shard}: the joiner is among the first R`);
          // The others are the old owners in their order, less the last one when the joiner pushed it out.
          assert.deepEqual(
            now.filter((name) => name !== joiner),
            old.length < replicas ? old : old.slice(0, replicas - 1),
            `shard ${shard}`,
          );
          if (replicas === 2 && old.length >= 1) assert.ok(now.includes(old[0]!), `shard ${shard}: its other owner remains`);
        }
        assert.equal(after.ownedBy(joiner).length, moved);
        for (const name of members) {
          const lost = before.ownedBy(name).filter((shard) => !after.ownedBy(name).includes(shard));
          const gained = after.ownedBy(name).filter((shard) => !before.ownedBy(name).includes(shard));
          assert.deepEqual(gained, [], `${name} gains nothing when another joins`);
          for (const shard of lost) assert.ok(after.owners(shard).includes(joiner), `${name} lost shard ${shard} only to the joiner`);
        }
      }),
      RUNS,
    );
  });

  it('sameMembers compares sorted lists', () => {
    assert.ok(sameMembers([], []));
    assert.ok(sameMembers(['a', 'b'], ['a', 'b']));
    assert.ok(!sameMembers(['a', 'b'], ['a']));
    assert.ok(!sameMembers(['a', 'b'], ['a', 'c']));
    assert.ok(!sameMembers(['a'], ['a', 'b']));
  });
});
