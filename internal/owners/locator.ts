// The asker's end of the peer-to-peer index: on a local miss, who holds a
// key? One hop to the first owner of the key's shard (in memory when that is
// this agent). The second owner is asked too when the first fails, does not
// answer within the hedge delay, or answers `warming` (it took the shard over
// lately); their holders are merged, first owner's first. Answers with
// holders are cached briefly (many requests of one pull ask for the same
// keys; a holder that lost a key since answers 404, which costs one fast
// round trip); one lookup per key is in flight at a time.
import type { Logger } from '../log/logger.ts';
import type { Hasher } from '../routing/hash.ts';
import { keyNumber, shardOfKey } from '../routing/owner-store.ts';
import type { OwnershipTable } from './ownership.ts';
import { OWNER_SHARDS, type HoldersAnswer, type HoldersQuery } from './protocol.ts';

export interface LocatorOptions {
  hasher: Hasher;
  table(): OwnershipTable | undefined;
  /** Asks one owner (this agent: in memory). */
  ask(owner: string, query: HoldersQuery): Promise<HoldersAnswer>;
  /** This agent's zone (its askers' holders in it come first). */
  zone(): string | undefined;
  /** The second owner is asked when the first has not answered within this. */
  hedgeMs: number;
  /** A lookup gives up on an owner after this. */
  timeoutMs: number;
  /** How long answers with holders are reused. */
  cacheMs: number;
  /** Cached answers at most. */
  maxCached: number;
  log: Logger;
  now?: () => number;
}

export interface LocatorStats {
  lookups: number;
  cacheHits: number;
  secondAsks: number;
  ownerFailures: number;
}

export interface Locator {
  /** The holders of a key, best first (this agent may be among them). */
  locate(key: string): Promise<readonly string[]>;
  stats(): LocatorStats;
}

interface Cached {
  holders: readonly string[];
  expiresAt: number;
}

type Outcome = { ok: true; answer: HoldersAnswer } | { ok: false };

interface LocatorState {
  readonly options: LocatorOptions;
  readonly now: () => number;
  readonly cache: Map<number, Cached>;
  readonly inFlight: Map<number, Promise<readonly string[]>>;
  readonly counts: LocatorStats;
}

function askOwner(state: LocatorState, owner: string, key: number, signal: AbortSignal): Promise<Outcome> {
  const { options } = state;
  return options.ask(owner, { key, zone: options.zone(), timeoutMs: options.timeoutMs, signal }).then(
    (answer): Outcome => ({ ok: true, answer }),
    (err: unknown): Outcome => {
      state.counts.ownerFailures++;
      options.log.debug({ err, owner }, 'shard owner did not answer a lookup');
      return { ok: false };
    },
  );
}

/** Holders named by several owners, the first owner's first, each once (the agent's lookups and `mirra locate`). */
export function mergeHolders(lists: readonly (readonly string[])[]): string[] {
  const out: string[] = [];
  for (const list of lists) for (const name of list) if (!out.includes(name)) out.push(name);
  return out;
}

const usable = (outcome: Outcome): outcome is { ok: true; answer: HoldersAnswer } => outcome.ok && !outcome.answer.warming;
const holdersOf = (outcome: Outcome): readonly string[] => (outcome.ok ? outcome.answer.holders : []);

/**
 * The first owner's answer; the second's too when the first failed or is
 * warming (merged, first's first); when the first is only slow, the first
 * usable answer of either, so that a hung first owner costs the hedge delay.
 */
async function askOwners(state: LocatorState, owners: readonly string[], key: number): Promise<readonly string[]> {
  const controller = new AbortController();
  try {
    const first = askOwner(state, owners[0]!, key, controller.signal);
    let hedge: NodeJS.Timeout | undefined;
    const hedged = new Promise<'hedge'>((resolve) => (hedge = setTimeout(() => resolve('hedge'), state.options.hedgeMs)));
    const early = await Promise.race([first, hedged]);
    clearTimeout(hedge);
    if (early !== 'hedge' && usable(early)) return early.answer.holders;
    if (owners[1] === undefined) return holdersOf(await first);
    state.counts.secondAsks++;
    const second = askOwner(state, owners[1], key, controller.signal);
    if (early === 'hedge') {
      const winner = await Promise.race([first, second]);
      if (usable(winner)) return winner.answer.holders;
    }
    const [a, b] = await Promise.all([first, second]);
    return mergeHolders([holdersOf(a), holdersOf(b)]);
  } finally {
    controller.abort();
  }
}

function remember(state: LocatorState, key: number, holders: readonly string[]): void {
  if (holders.length === 0) return;
  const { cache } = state;
  if (cache.size >= state.options.maxCached) {
    const now = state.now();
    for (const [k, entry] of cache) if (entry.expiresAt <= now) cache.delete(k);
    if (cache.size >= state.options.maxCached) cache.delete(cache.keys().next().value!);
  }
  cache.set(key, { holders, expiresAt: state.now() + state.options.cacheMs });
}

function locate(state: LocatorState, key: string): Promise<readonly string[]> {
  const number = keyNumber(state.options.hasher.hash(key));
  const cached = state.cache.get(number);
  state.counts.lookups++;
  if (cached !== undefined && cached.expiresAt > state.now()) {
    state.counts.cacheHits++;
    return Promise.resolve(cached.holders);
  }
  const running = state.inFlight.get(number);
  if (running !== undefined) return running;
  const owners = state.options.table()?.owners(shardOfKey(number, OWNER_SHARDS)) ?? [];
  if (owners.length === 0) return Promise.resolve([]);
  const lookup = askOwners(state, owners, number)
    .then((holders) => {
      remember(state, number, holders);
      return holders;
    })
    .finally(() => state.inFlight.delete(number));
  state.inFlight.set(number, lookup);
  return lookup;
}

export function createLocator(options: LocatorOptions): Locator {
  const state: LocatorState = {
    options,
    now: options.now ?? Date.now,
    cache: new Map(),
    inFlight: new Map(),
    counts: { lookups: 0, cacheHits: 0, secondAsks: 0, ownerFailures: 0 },
  };
  return { locate: (key) => locate(state, key), stats: () => ({ ...state.counts }) };
}
