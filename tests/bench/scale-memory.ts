// bench:scale's memory of one agent's routing state: the agent with the most
// postings as an owner is rebuilt alone on a quiet heap (--expose-gc): its
// ownership table over all members, its owner service filled with every
// holder's keys in the shards it owns (the real receive path), and its own
// holder with its keys acknowledged by every owner. Heap bytes after minus
// before, all of it kept alive until measured.
import { createLogger } from '../../internal/log/logger.ts';
import { createHolder } from '../../internal/owners/holder.ts';
import { createOwnerService } from '../../internal/owners/owner.ts';
import { agentOwnership } from '../../internal/owners/ownership.ts';
import { OWNER_SHARDS, type IndexEntry } from '../../internal/owners/protocol.ts';
import type { Hasher } from '../../internal/routing/hash.ts';
import { digestOf, keyNumber, shardOfKey } from '../../internal/routing/owner-store.ts';
import { createRendezvousRanking } from '../../internal/routing/rendezvous.ts';

export interface OneAgentInput {
  hasher: Hasher;
  /** Every member's name, in node order. */
  members: readonly string[];
  /** The keys of the node at an index. */
  keysOf(node: number): ReadonlySet<string>;
  /** The agent to rebuild. */
  name: string;
}

/** Each holder's keys by shard, for the shards `owned` (key numbers). */
function entriesFor(input: OneAgentInput, node: number, owned: ReadonlySet<number>): IndexEntry[] {
  const byShard = new Map<number, Set<number>>();
  for (const key of input.keysOf(node)) {
    const number = keyNumber(input.hasher.hash(key));
    const shard = shardOfKey(number, OWNER_SHARDS);
    if (!owned.has(shard)) continue;
    let set = byShard.get(shard);
    if (set === undefined) byShard.set(shard, (set = new Set()));
    set.add(number);
  }
  return [...byShard].map(([shard, keys]) => ({ shard, op: 'full', keys: [...keys], digest: digestOf(keys) }));
}

/** Heap bytes of one agent's routing state. */
export async function measureOneAgent(input: OneAgentInput, gc: () => void): Promise<number> {
  // Hash every key first, so that the measured heap holds no hashing garbage.
  const node = input.members.indexOf(input.name);
  const probeTable = agentOwnership(createRendezvousRanking(input.hasher), input.members);
  const owned = new Set(probeTable.ownedBy(input.name));
  const pushes = input.members.map((_, i) => entriesFor(input, i, owned));
  gc();
  const before = process.memoryUsage().heapUsed;
  const table = agentOwnership(createRendezvousRanking(input.hasher), input.members);
  const owner = createOwnerService({ hasher: input.hasher, warmMs: 0, graceMs: 60_000, member: () => ({ ready: true, zone: undefined }) });
  owner.setOwned(table.ownedBy(input.name));
  input.members.forEach((holder, i) => owner.receive(holder, pushes[i]!));
  pushes.length = 0;
  const holder = createHolder({
    hasher: input.hasher,
    send: async () => ({ instance: 'bench', resend: [] }),
    log: createLogger('silent'),
    flushDelayMs: 0,
    repairIntervalMs: 3_600_000,
    maxInFlight: 16,
    minRetryMs: 10,
    maxRetryMs: 100,
  });
  holder.setOwnership(table);
  holder.setKeys(input.keysOf(node));
  await holder.idle();
  gc();
  const after = process.memoryUsage().heapUsed;
  if (owner.stats().postings === 0 || holder.stats().keys === 0) throw new Error('the rebuilt agent is empty');
  holder.close();
  return after - before;
}
