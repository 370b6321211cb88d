// Which agent coordinates the first pulls of a digest: the ready agent ranked
// first for the digest by rendezvous hashing over the ready endpoints of the
// Service's EndpointSlices (internal/routing/rendezvous.ts). Every agent
// computes the same one from the same input, so they all ask the same one
// without an election, a lease or any write to the API; when an agent joins
// or leaves, only the digests it wins or won move (about 1/N of them).
import type { Hasher } from '../routing/hash.ts';
import { createRendezvousRanking } from '../routing/rendezvous.ts';

export type CoordinatorPicker = (key: string, members: Iterable<string>) => string | undefined;

export function createCoordinatorPicker(hasher: Hasher): CoordinatorPicker {
  const rank = createRendezvousRanking(hasher);
  return (key, members) => rank(key, members, 1)[0];
}
