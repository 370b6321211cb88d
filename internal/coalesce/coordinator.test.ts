import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createHasher, keyHashOf, rendezvousWeight, type Hasher } from '../routing/hash.ts';
import { createCoordinatorPicker, type CoordinatorPicker } from './coordinator.ts';

const digestOf = (i: number): string => `sha256:${createHash('sha256').update(`blob ${i}`).digest('hex')}`;

/** The oracle: every member with its rendezvous weight for `key`, highest first (ties: the smaller name first). */
function ranking(hasher: Hasher, key: string, members: readonly string[]): string[] {
  const hash = hasher.hash(key);
  return members
    .map((name) => {
      const seed = hasher.hash(name);
      return { name, weight: rendezvousWeight(hash, seed.hi, seed.lo) };
    })
    .sort((a, b) => b.weight - a.weight || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((entry) => entry.name);
}

const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 30 });
const key = fc.oneof(fc.string({ maxLength: 80 }), fc.integer({ min: 0, max: 1_000_000 }).map(digestOf));
/** Members and the same members in another order. */
const shuffled = names.chain((members) =>
  fc.tuple(fc.constant(members), fc.shuffledSubarray(members, { minLength: members.length, maxLength: members.length })),
);

describe('coordinator picker', () => {
  let hasher: Hasher;
  let pick: CoordinatorPicker;
  before(async () => {
    hasher = await createHasher();
    pick = createCoordinatorPicker(hasher);
  });

  it('picks nobody among no members', () => {
    assert.equal(pick(digestOf(1), []), undefined);
    assert.equal(pick(digestOf(1), new Set<string>()), undefined);
  });

  it('picks the only member, from any iterable', () => {
    assert.equal(pick(digestOf(1), ['mirra-a']), 'mirra-a');
    assert.equal(pick(digestOf(1), new Set(['mirra-a'])), 'mirra-a');
  });

  it('picks the member of highest rendezvous weight', () => {
    fc.assert(
      fc.property(key, names, (k, members) => {
        assert.equal(pick(k, members), ranking(hasher, k, members)[0]);
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('the pick does not depend on the order of the members', () => {
    fc.assert(
      fc.property(key, shuffled, (k, [members, reordered]) => {
        assert.equal(pick(k, reordered), pick(k, members));
        assert.equal(pick(k, new Set(reordered)), pick(k, [...members].reverse()));
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('removing a member that is not the winner never changes the winner', () => {
    fc.assert(
      fc.property(key, names, fc.nat(), (k, members, index) => {
        const winner = pick(k, members);
        const others = members.filter((name) => name !== winner);
        fc.pre(others.length > 0);
        const removed = others[index % others.length];
        assert.equal(
          pick(
            k,
            members.filter((name) => name !== removed),
          ),
          winner,
        );
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('removing the winner gives the member of second-highest weight', () => {
    fc.assert(
      fc.property(
        key,
        names.filter((members) => members.length >= 2),
        (k, members) => {
          const [first, second] = ranking(hasher, k, members);
          assert.equal(pick(k, members), first);
          assert.equal(
            pick(
              k,
              members.filter((name) => name !== first),
            ),
            second,
          );
        },
      ),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('over 10,000 digests and 10 members, each member wins 7% to 13% of them', () => {
    const members = Array.from({ length: 10 }, (_, i) => `mirra-agent-${i}`);
    const wins = new Map(members.map((name) => [name, 0]));
    const digests = 10_000;
    for (let i = 0; i < digests; i++) {
      const winner = pick(digestOf(i), members);
      assert.ok(winner !== undefined);
      wins.set(winner, (wins.get(winner) ?? 0) + 1);
    }
    assert.equal(wins.size, 10, 'only members win');
    for (const [name, count] of wins) {
      assert.ok(count >= 0.07 * digests && count <= 0.13 * digests, `${name} wins ${count} of ${digests}`);
    }
  });

  it('an 11th member takes digests only for itself (none move between the others), about 1/11 of them', () => {
    const members = Array.from({ length: 10 }, (_, i) => `mirra-agent-${i}`);
    const grown = [...members, 'mirra-agent-new'];
    const digests = 10_000;
    let moved = 0;
    for (let i = 0; i < digests; i++) {
      const before = pick(digestOf(i), members);
      const after = pick(digestOf(i), grown);
      if (after === before) continue;
      assert.equal(after, 'mirra-agent-new', `${digestOf(i)} moved from ${before} to ${after}`);
      moved++;
    }
    assert.ok(moved >= 0.05 * digests && moved <= 0.13 * digests, `${moved} of ${digests} moved`);
  });

  it('a tie of weights goes to the smaller name, in any order', () => {
    // Two names hashed to the same seeds weigh the same for every key.
    const tied = keyHashOf(0x12345678, 0x9abcdef0);
    const fake: Hasher = {
      hash: (value) => (value === 'tie-a' || value === 'tie-b' ? tied : hasher.hash(value)),
      digest: (value) => hasher.digest(value),
    };
    const tiePick = createCoordinatorPicker(fake);
    let ties = 0;
    for (let i = 0; i < 200; i++) {
      const k = digestOf(i);
      const members = ['mirra-x', 'tie-b', 'mirra-y', 'tie-a'];
      const winner = tiePick(k, members);
      assert.equal(tiePick(k, [...members].reverse()), winner);
      assert.notEqual(winner, 'tie-b', 'tie-b never beats tie-a');
      if (winner === 'tie-a') ties++;
    }
    assert.ok(ties > 0, 'the tied pair won some keys');
  });
});
