// Rendezvous (highest random weight) ranking of agents for a key: every agent
// that sees the same ready agents computes the same order, with nothing to
// elect or write down, and when an agent joins or leaves only the keys it is
// or becomes one of the first R of move (about R/N of them). The cold-rollout
// coordinator of a digest is its first agent (internal/coalesce); the owners
// of a shard of the key space are the first two (internal/owners,
// docs/DESIGN.md, "Discovery").
//
// The score is hash.ts's (xxh64 of the key and of the name, mixed by
// rendezvousWeight), ties (one in 2^32) to the smaller name.
// Cost: one xxh64 of the key plus one 32-bit mix per agent; the names'
// hashes are cached, so a ranking over 5,000 agents is one pass of integer
// arithmetic.
import { offerBest } from './best-of.ts';
import { rendezvousWeight, type Hasher, type KeyHash } from './hash.ts';

/** Names whose hashes are cached at most (a DaemonSet's pods over a day of replacements). */
const MAX_CACHED_NAMES = 20_000;

/** The first `count` of `members` for `key`, best first (fewer when there are fewer members). */
export type RendezvousRanking = (key: string, members: Iterable<string>, count: number) => string[];

interface Ranked {
  name: string;
  weight: number;
}

/** Whether a ranks before b: the higher weight, or on a tie the smaller name. */
function before(a: Ranked, b: Ranked): boolean {
  return a.weight > b.weight || (a.weight === b.weight && a.name < b.name);
}

export function createRendezvousRanking(hasher: Hasher): RendezvousRanking {
  const seeds = new Map<string, KeyHash>();
  const seedOf = (name: string): KeyHash => {
    let seed = seeds.get(name);
    if (seed === undefined) {
      if (seeds.size >= MAX_CACHED_NAMES) seeds.clear();
      seed = hasher.hash(name);
      seeds.set(name, seed);
    }
    return seed;
  };
  return (key, members, count) => {
    if (count <= 0) return [];
    const hash = hasher.hash(key);
    const best: Ranked[] = [];
    for (const name of members) {
      const seed = seedOf(name);
      offerBest(best, { name, weight: rendezvousWeight(hash, seed.hi, seed.lo) }, count, before);
    }
    return best.map((entry) => entry.name);
  };
}
