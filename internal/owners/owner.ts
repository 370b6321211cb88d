// The owner's end of the peer-to-peer index: what holders push for the shards
// this agent owns goes into the owner store (internal/routing/owner-store.ts),
// and a lookup names a key's holders, same zone first, then by rendezvous
// hash of (key, holder), so that askers in one zone spread over the same
// holders the same way. A shard taken over lately is answered as `warming`
// (its holders may not have filled it in yet: the asker asks the second owner
// too). Pushes for a shard this agent does not own are kept for a grace
// period (two agents may see a membership change a moment apart) and then
// dropped, as are shards it stops owning.
import { randomBytes } from 'node:crypto';
import type { Hasher } from '../routing/hash.ts';
import { offerBest } from '../routing/best-of.ts';
import { rendezvousWeight32 } from '../routing/hash.ts';
import { createOwnerStore, keyHalves, shardOfKey, type OwnerStoreStats } from '../routing/owner-store.ts';
import { MAX_HOLDERS_ANSWERED, OWNER_SHARDS, type HoldersAnswer, type IndexEntry } from './protocol.ts';

/** What the owner knows of an agent from the EndpointSlices (this one included). */
export interface MemberView {
  readonly ready: boolean;
  readonly zone: string | undefined;
}

export interface OwnerServiceOptions {
  hasher: Hasher;
  /** How long after taking a shard over its answers say `warming`. */
  warmMs: number;
  /** How long data of a shard this agent does not own is kept. */
  graceMs: number;
  /** The zone and readiness of an agent, undefined when it has no endpoint. */
  member(name: string): MemberView | undefined;
  now?: () => number;
}

export interface OwnerServiceStats extends OwnerStoreStats {
  /** Shards this agent owns now. */
  owned: number;
  pushes: number;
  lookups: number;
  /** Entries whose digest the store did not reach (the holder was asked to send the shard in full). */
  resends: number;
}

export interface OwnerService {
  /** A random id of this agent's start: a holder that sees it change sends everything again. */
  readonly instance: string;
  /** Applies a holder's entries; returns the shards it must send in full. */
  receive(holder: string, entries: readonly IndexEntry[]): number[];
  /** A key number's holders for an asker in `zone`, best first. */
  holders(key: number, zone: string | undefined): HoldersAnswer;
  /** The shards this agent owns now (after a membership change). */
  setOwned(shards: readonly number[]): void;
  /** Forgets a holder whose agent is gone, and drops shards not owned for the grace period. */
  removeHolder(name: string): void;
  /** Drops what the grace period is over for (called every few seconds). */
  sweep(): void;
  stats(): OwnerServiceStats;
}

/** Names whose hashes are cached at most. */
const MAX_CACHED_SEEDS = 20_000;
/**
 * A key with at least this many holders has its ordered answer kept for
 * ANSWER_CACHE_MS: ordering 5,000 holders takes ~0.3 ms (bench:lookup) and in
 * a rollout wave every node asks for the same new keys within a minute. A
 * push that touches the key drops its answers at once; readiness changes of
 * its holders show within ANSWER_CACHE_MS.
 */
const CACHE_FROM_HOLDERS = 64;
const ANSWER_CACHE_MS = 1000;
/** Cached answers at most (by key and zone). */
const MAX_CACHED_ANSWERS = 4096;

interface OwnerState {
  readonly options: OwnerServiceOptions;
  readonly now: () => number;
  readonly store: ReturnType<typeof createOwnerStore>;
  /** Shard -> since when this agent owns it. */
  readonly owned: Map<number, number>;
  /** Shard with data here that this agent does not own -> since when. */
  readonly unowned: Map<number, number>;
  readonly seeds: Map<string, { hi: number; lo: number }>;
  /** Key number -> zone -> ordered holders and when they were ordered. */
  readonly answers: Map<number, Map<string, { holders: string[]; at: number }>>;
  readonly counts: { pushes: number; lookups: number; resends: number };
}

function forgetAnswers(state: OwnerState, entry: IndexEntry): void {
  if (state.answers.size === 0) return;
  if (entry.op === 'full') {
    // A full set may drop keys it does not name: every cached key of the shard goes.
    for (const key of state.answers.keys()) if (shardOfKey(key, OWNER_SHARDS) === entry.shard) state.answers.delete(key);
  } else if (entry.op === 'delta') {
    for (const key of entry.added) state.answers.delete(key);
    for (const key of entry.removed) state.answers.delete(key);
  }
}

function applyEntry(state: OwnerState, holder: string, entry: IndexEntry): boolean {
  const { store } = state;
  forgetAnswers(state, entry);
  if (entry.op === 'full') store.replace(holder, entry.shard, entry.keys);
  else if (entry.op === 'delta') store.apply(holder, entry.shard, entry.added, entry.removed);
  if (!state.owned.has(entry.shard) && !state.unowned.has(entry.shard)) state.unowned.set(entry.shard, state.now());
  return store.digest(holder, entry.shard) === entry.digest;
}

function seedOf(state: OwnerState, name: string): { hi: number; lo: number } {
  let seed = state.seeds.get(name);
  if (seed === undefined) {
    if (state.seeds.size >= MAX_CACHED_SEEDS) state.seeds.clear();
    seed = state.options.hasher.hash(name);
    state.seeds.set(name, seed);
  }
  return seed;
}

interface Ranked {
  name: string;
  tier: number;
  weight: number;
}

/** Whether a ranks before b: the smaller tier, then the higher weight, then the smaller name. */
function before(a: Ranked, b: Ranked): boolean {
  return a.tier < b.tier || (a.tier === b.tier && (a.weight > b.weight || (a.weight === b.weight && a.name < b.name)));
}

/**
 * The ready holders of a key, same zone first, then by rendezvous weight; at
 * most MAX_HOLDERS_ANSWERED, kept in one pass (internal/routing/best-of.ts:
 * a popular key has a holder per node, no sort of thousands).
 */
function orderHolders(state: OwnerState, key: number, names: Iterable<string>, zone: string | undefined): string[] {
  const { hi, lo } = keyHalves(key);
  const best: Ranked[] = [];
  for (const name of names) {
    const member = state.options.member(name);
    if (member === undefined || !member.ready) continue;
    const seed = seedOf(state, name);
    const entry = { name, tier: zone === undefined || member.zone === zone ? 0 : 1, weight: rendezvousWeight32(hi, lo, seed.hi, seed.lo) };
    offerBest(best, entry, MAX_HOLDERS_ANSWERED, before);
  }
  return best.map((entry) => entry.name);
}

/** The ordered holders of a key, from the cache when it has many holders and was ordered lately. */
function orderedHolders(state: OwnerState, key: number, zone: string | undefined): string[] {
  const names = state.store.holders(key);
  if (names.size < CACHE_FROM_HOLDERS) return orderHolders(state, key, names, zone);
  const now = state.now();
  let byZone = state.answers.get(key);
  const cached = byZone?.get(zone ?? '');
  if (cached !== undefined && now - cached.at < ANSWER_CACHE_MS) return cached.holders;
  const holders = orderHolders(state, key, names, zone);
  if (byZone === undefined) {
    if (state.answers.size >= MAX_CACHED_ANSWERS) state.answers.clear();
    state.answers.set(key, (byZone = new Map<string, { holders: string[]; at: number }>()));
  }
  byZone.set(zone ?? '', { holders, at: now });
  return holders;
}

function setOwned(state: OwnerState, shards: readonly number[]): void {
  const now = state.now();
  const next = new Set(shards);
  for (const shard of state.owned.keys()) {
    if (!next.has(shard)) {
      state.owned.delete(shard);
      state.unowned.set(shard, now);
    }
  }
  for (const shard of next) {
    if (state.owned.has(shard)) continue;
    state.owned.set(shard, now);
    state.unowned.delete(shard);
  }
}

function sweep(state: OwnerState): void {
  const cutoff = state.now() - state.options.graceMs;
  for (const [shard, since] of state.unowned) {
    if (since > cutoff) continue;
    state.store.dropShard(shard);
    for (const key of state.answers.keys()) if (shardOfKey(key, OWNER_SHARDS) === shard) state.answers.delete(key);
    state.unowned.delete(shard);
  }
}

export function createOwnerService(options: OwnerServiceOptions): OwnerService {
  const state: OwnerState = {
    options,
    now: options.now ?? Date.now,
    store: createOwnerStore(),
    owned: new Map(),
    unowned: new Map(),
    seeds: new Map(),
    answers: new Map(),
    counts: { pushes: 0, lookups: 0, resends: 0 },
  };
  const instance = randomBytes(12).toString('base64url');
  return {
    instance,
    receive(holder, entries) {
      state.counts.pushes++;
      const resend: number[] = [];
      for (const entry of entries) if (!applyEntry(state, holder, entry)) resend.push(entry.shard);
      state.counts.resends += resend.length;
      return resend;
    },
    holders(key, zone) {
      state.counts.lookups++;
      const since = state.owned.get(shardOfKey(key, OWNER_SHARDS));
      const warming = since === undefined || state.now() - since < options.warmMs;
      return { instance, holders: orderedHolders(state, key, zone), warming };
    },
    setOwned: (shards) => setOwned(state, shards),
    removeHolder(name) {
      state.store.removeHolder(name);
      state.answers.clear();
    },
    sweep: () => sweep(state),
    stats: () => ({ ...state.store.stats(), owned: state.owned.size, ...state.counts }),
  };
}
