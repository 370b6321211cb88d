// This agent's part in the peer-to-peer index: one ownership table computed
// from the ready members (recomputed, debounced, when they change), the owner
// service for the shards it owns, the holder that pushes its keys to their
// owners, and the locator that asks owners on a miss. The parts share the
// table and nothing else; the agent (internal/agent/p2p.ts) feeds membership
// from the EndpointSlices and keys from the node's images.
import type { Agent } from 'node:http';
import type { PeerSigner } from '../auth/sign.ts';
import type { Logger } from '../log/logger.ts';
import type { Candidate } from '../peer/client.ts';
import type { Hasher } from '../routing/hash.ts';
import { createRendezvousRanking } from '../routing/rendezvous.ts';
import { createOwnerClient } from './client.ts';
import { createHolder, type Holder, type HolderStats } from './holder.ts';
import { createLocator, type Locator, type LocatorStats } from './locator.ts';
import { createOwnerService, type MemberView, type OwnerService, type OwnerServiceStats } from './owner.ts';
import { agentOwnership, sameMembers, type OwnershipTable } from './ownership.ts';

export interface IndexNodeOptions {
  self: string;
  hasher: Hasher;
  /** The ready agents now, this one included when its endpoint is ready. */
  members(): readonly string[];
  /** Zone and readiness of an agent (this one included). */
  member(name: string): MemberView | undefined;
  /** How to reach another agent, when it is known and ready. */
  candidate(name: string): Candidate | undefined;
  /** This agent's zone. */
  zone(): string | undefined;
  agent: Agent;
  sign?: PeerSigner;
  log: Logger;
  timing?: Partial<IndexTiming>;
}

/** The index's clocks; each has a default below. */
export interface IndexTiming {
  /** A membership change waits this long for more before the table is recomputed. */
  membershipDebounceMs: number;
  /** A change of keys waits this long for more before it is pushed. */
  pushDelayMs: number;
  /** Every owner checks a holder's digests this often. */
  repairIntervalMs: number;
  /** An owner answers `warming` this long after taking a shard over. */
  warmMs: number;
  /** Data of shards not owned is kept this long. */
  graceMs: number;
  /** A lookup asks the second owner when the first has not answered within this. */
  lookupHedgeMs: number;
  lookupTimeoutMs: number;
  /** Answers with holders are reused this long. */
  lookupCacheMs: number;
  pushTimeoutMs: number;
}

export const DEFAULT_INDEX_TIMING: IndexTiming = {
  membershipDebounceMs: 200,
  pushDelayMs: 100,
  repairIntervalMs: 60_000,
  warmMs: 5_000,
  graceMs: 30_000,
  lookupHedgeMs: 50,
  lookupTimeoutMs: 250,
  lookupCacheMs: 2_000,
  pushTimeoutMs: 10_000,
};

export interface IndexNodeStats {
  owner: OwnerServiceStats;
  holder: HolderStats;
  locator: LocatorStats;
  members: number;
}

export interface IndexNode {
  readonly owner: OwnerService;
  locate: Locator['locate'];
  /** This agent's keys now (the whole set). */
  setKeys(keys: ReadonlySet<string>): void;
  /** The members may have changed (debounced). */
  membershipChanged(): void;
  /** An agent's endpoint is gone: its keys are forgotten here. */
  removeAgent(name: string): void;
  /** The current table (tests, `mirra shards`). */
  table(): OwnershipTable | undefined;
  stats(): IndexNodeStats;
  close(): void;
}

/** Cached lookup answers at most (one per key a node misses within lookupCacheMs). */
const MAX_CACHED_ANSWERS = 10_000;
/** Pushes in flight at most, to different owners. */
const MAX_PUSHES_IN_FLIGHT = 16;

interface Parts {
  owner: OwnerService;
  holder: Holder;
  locator: Locator;
}

function createParts(options: IndexNodeOptions, timing: IndexTiming, table: () => OwnershipTable | undefined): Parts {
  const { self, log } = options;
  const owner = createOwnerService({ hasher: options.hasher, warmMs: timing.warmMs, graceMs: timing.graceMs, member: options.member });
  const client = createOwnerClient({ self, agent: options.agent, sign: options.sign, pushTimeoutMs: timing.pushTimeoutMs });
  const reach = (name: string): Candidate => {
    const candidate = options.candidate(name);
    if (candidate === undefined) throw new Error(`owner ${name} has no ready endpoint`);
    return candidate;
  };
  const holder = createHolder({
    hasher: options.hasher,
    send: async (name, entries) => (name === self ? { instance: owner.instance, resend: owner.receive(self, entries) } : client.push(reach(name), entries)),
    log: log.child({ component: 'index-holder' }),
    flushDelayMs: timing.pushDelayMs,
    repairIntervalMs: timing.repairIntervalMs,
    maxInFlight: MAX_PUSHES_IN_FLIGHT,
    minRetryMs: 500,
    maxRetryMs: 30_000,
  });
  const locator = createLocator({
    hasher: options.hasher,
    table,
    ask: async (name, query) => (name === self ? owner.holders(query.key, query.zone) : client.holders(reach(name), query)),
    zone: options.zone,
    hedgeMs: timing.lookupHedgeMs,
    timeoutMs: timing.lookupTimeoutMs,
    cacheMs: timing.lookupCacheMs,
    maxCached: MAX_CACHED_ANSWERS,
    log: log.child({ component: 'index-locator' }),
  });
  return { owner, holder, locator };
}

export function createIndexNode(options: IndexNodeOptions): IndexNode {
  const timing = { ...DEFAULT_INDEX_TIMING, ...options.timing };
  const log = options.log.child({ component: 'index' });
  const rank = createRendezvousRanking(options.hasher);
  let table: OwnershipTable | undefined;
  let timer: NodeJS.Timeout | undefined;
  const { owner, holder, locator } = createParts(options, timing, () => table);
  const recompute = (): void => {
    timer = undefined;
    const members = [...options.members()].sort();
    if (table !== undefined && sameMembers(table.members, members)) return;
    table = agentOwnership(rank, members);
    const owned = table.ownedBy(options.self);
    owner.setOwned(owned);
    holder.setOwnership(table);
    log.info({ members: members.length, ownedShards: owned.length }, 'shard ownership recomputed');
  };
  const sweeper = setInterval(() => owner.sweep(), Math.max(1000, timing.graceMs / 3));
  sweeper.unref();
  return {
    owner,
    locate: (key) => locator.locate(key),
    setKeys: (keys) => holder.setKeys(keys),
    membershipChanged() {
      if (timer !== undefined) return;
      timer = setTimeout(recompute, timing.membershipDebounceMs);
      timer.unref();
    },
    removeAgent: (name) => owner.removeHolder(name),
    table: () => table,
    stats: () => ({ owner: owner.stats(), holder: holder.stats(), locator: locator.stats(), members: table?.members.length ?? 0 }),
    close() {
      clearTimeout(timer);
      clearInterval(sweeper);
      holder.close();
    },
  };
}
