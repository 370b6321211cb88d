// Which agent coordinates the first pulls of a digest: the ready agent with
// the highest rendezvous (highest random weight) score of (digest, agent
// name). Every agent computes it from the same input, the ready endpoints of
// the Service's EndpointSlices, so they all ask the same one without an
// election, a lease or any write to the API; when an agent joins or leaves,
// only the digests it wins or won move (about 1/N of them).
//
// The score is the routing index's (internal/routing/hash.ts: xxh64 of the
// key and of the name, mixed), so the same function can place shards too.
// Cost: one xxh64 of the digest plus one 32-bit mix per agent; the names'
// hashes are cached (5,000 agents: about 60 us a pick, bench-free arithmetic).
import { rendezvousWeight, type Hasher, type KeyHash } from '../routing/hash.ts';

/** Names whose hashes are cached at most (a DaemonSet's pods over a day of replacements). */
const MAX_CACHED_NAMES = 20_000;

export type CoordinatorPicker = (key: string, members: Iterable<string>) => string | undefined;

export function createCoordinatorPicker(hasher: Hasher): CoordinatorPicker {
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
  return (key, members) => {
    const hash = hasher.hash(key);
    let best: string | undefined;
    let bestWeight = -1;
    for (const name of members) {
      const seed = seedOf(name);
      const weight = rendezvousWeight(hash, seed.hi, seed.lo);
      // Ties (one in 2^32) go to the smaller name, so that every agent picks the same one.
      if (weight > bestWeight || (weight === bestWeight && best !== undefined && name < best)) {
        best = name;
        bestWeight = weight;
      }
    }
    return best;
  };
}
