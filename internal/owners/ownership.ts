// Who owns which shard of the key space: the first OWNER_REPLICAS ready agents
// by rendezvous hash of (shard, agent) (internal/routing/rendezvous.ts). Every
// agent that sees the same ready endpoints computes the same table, with
// nothing elected or written down; a member joining or leaving moves only the
// shards it owned or now owns (about R x S / N of them).
//
// The table is recomputed when the members change: S x N weights, 1.3 million
// 32-bit mixes at 5,000 agents (measured in bench:scale, about 20 ms). The
// caller debounces membership changes.
import type { RendezvousRanking } from '../routing/rendezvous.ts';
import { OWNER_REPLICAS, OWNER_SHARDS } from './protocol.ts';

export interface OwnershipTable {
  /** The members the table was computed from, sorted. */
  readonly members: readonly string[];
  /** The owners of a shard, first owner first (fewer than R when there are fewer members). */
  owners(shard: number): readonly string[];
  /** The shards `name` owns (ascending). */
  ownedBy(name: string): readonly number[];
}

export interface OwnershipOptions {
  rank: RendezvousRanking;
  shards: number;
  replicas: number;
}

/** The rendezvous key of a shard (the cold-rollout coordinator ranks digests, which never look like this). */
export function shardName(shard: number): string {
  return `shard/${shard}`;
}

export function computeOwnership(options: OwnershipOptions, members: Iterable<string>): OwnershipTable {
  const sorted = [...new Set(members)].sort();
  const byShard: (readonly string[])[] = [];
  const byOwner = new Map<string, number[]>();
  for (let shard = 0; shard < options.shards; shard++) {
    const owners = options.rank(shardName(shard), sorted, options.replicas);
    byShard.push(owners);
    for (const owner of owners) {
      let list = byOwner.get(owner);
      if (list === undefined) byOwner.set(owner, (list = []));
      list.push(shard);
    }
  }
  return {
    members: sorted,
    owners: (shard) => byShard[shard] ?? [],
    ownedBy: (name) => byOwner.get(name) ?? [],
  };
}

/** The table every agent computes: OWNER_SHARDS shards, OWNER_REPLICAS owners each (mirra shards and the tests compute it the same way). */
export function agentOwnership(rank: RendezvousRanking, members: Iterable<string>): OwnershipTable {
  return computeOwnership({ rank, shards: OWNER_SHARDS, replicas: OWNER_REPLICAS }, members);
}

/** Whether two sorted member lists are the same. */
export function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}
