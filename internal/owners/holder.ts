// The holder's end of the peer-to-peer index: this agent's keys, by shard, go
// to each shard's owners (ownership.ts). For every (owner, shard) it keeps
// what the owner was last told and acknowledged; a change sends the
// difference (a delta), an owner that is new for a shard, restarted (a new
// instance in its answer) or that asks for it (`resend`) gets the shard in
// full, and every repair interval a check of the digests finds what was lost
// anyway. One push per owner at a time carries all of its dirty shards; a
// failed push is retried with backoff while the owner is still an owner.
import type { Logger } from '../log/logger.ts';
import type { Hasher } from '../routing/hash.ts';
import { digestOf, keyNumber, shardOfKey } from '../routing/owner-store.ts';
import type { OwnershipTable } from './ownership.ts';
import { MAX_KEYS_PER_PUSH, OWNER_SHARDS, type IndexEntry, type PushAnswer } from './protocol.ts';

export interface HolderOptions {
  hasher: Hasher;
  /** Sends entries to an owner (this agent's own owner in memory); rejects when it could not. */
  send(owner: string, entries: readonly IndexEntry[]): Promise<PushAnswer>;
  log: Logger;
  /** A change waits this long for more before it is sent. */
  flushDelayMs: number;
  /** Every owner is asked to check its digests this often. */
  repairIntervalMs: number;
  /** Pushes in flight at most (to different owners). */
  maxInFlight: number;
  /** Backoff of a failed push: from minRetryMs, doubling, to maxRetryMs. */
  minRetryMs: number;
  maxRetryMs: number;
}

export interface HolderStats {
  keys: number;
  owners: number;
  pushes: number;
  pushFailures: number;
  fullShards: number;
  deltaShards: number;
  resends: number;
}

export interface Holder {
  /** This agent's keys now (the whole set). */
  setKeys(keys: ReadonlySet<string>): void;
  /** The ownership table after a membership change. */
  setOwnership(table: OwnershipTable): void;
  /** Resolves when nothing is dirty or in flight (tests and benchmarks). */
  idle(): Promise<void>;
  stats(): HolderStats;
  close(): void;
}

/** What one owner is believed to have of this agent's keys. */
interface OwnerSync {
  /** Shard -> the keys the owner acknowledged; undefined: send the shard in full. */
  readonly acked: Map<number, ReadonlySet<number> | undefined>;
  readonly dirty: Set<number>;
  /** Shards the owner is known to have nothing of this agent's in (new to it, or it restarted): an empty one need not be sent. */
  readonly fresh: Set<number>;
  /** Shards to check by digest on the next push. */
  readonly checks: Set<number>;
  instance: string | undefined;
  failures: number;
  retryAt: number;
}

interface HolderState {
  readonly options: HolderOptions;
  /** Shard -> this agent's keys in it. */
  mine: Map<number, Set<number>>;
  /** Key string -> key number (no hashing again on the next change). */
  numbers: Map<string, number>;
  table: OwnershipTable | undefined;
  readonly owners: Map<string, OwnerSync>;
  inFlight: number;
  /** Owners with a push in flight (by name: a sync dropped and made again must not push beside its predecessor). */
  readonly busy: Set<string>;
  /** Owners that may have something to send (flush looks at these only: at 5,000 agents a holder has 512 owners). */
  readonly pending: Set<string>;
  timer: NodeJS.Timeout | undefined;
  /** When the pending timer fires. */
  timerAt: number;
  repairTimer: NodeJS.Timeout | undefined;
  closed: boolean;
  readonly waiters: (() => void)[];
  readonly counts: Omit<HolderStats, 'keys' | 'owners'>;
}

const EMPTY: ReadonlySet<number> = new Set();

function syncOf(state: HolderState, owner: string): OwnerSync {
  let sync = state.owners.get(owner);
  if (sync === undefined) {
    sync = { acked: new Map(), dirty: new Set(), fresh: new Set(), checks: new Set(), instance: undefined, failures: 0, retryAt: 0 };
    state.owners.set(owner, sync);
  }
  return sync;
}

function sameSet(a: ReadonlySet<number> | undefined, b: ReadonlySet<number> | undefined): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const key of a ?? EMPTY) if (!b?.has(key)) return false;
  return true;
}

function markDirty(state: HolderState, shard: number): void {
  for (const owner of state.table?.owners(shard) ?? []) {
    syncOf(state, owner).dirty.add(shard);
    state.pending.add(owner);
  }
}

function setKeys(state: HolderState, keys: ReadonlySet<string>): void {
  const numbers = new Map<string, number>();
  const mine = new Map<number, Set<number>>();
  for (const key of keys) {
    const number = state.numbers.get(key) ?? keyNumber(state.options.hasher.hash(key));
    numbers.set(key, number);
    const shard = shardOfKey(number, OWNER_SHARDS);
    let set = mine.get(shard);
    if (set === undefined) mine.set(shard, (set = new Set()));
    set.add(number);
  }
  for (let shard = 0; shard < OWNER_SHARDS; shard++) if (!sameSet(state.mine.get(shard), mine.get(shard))) markDirty(state, shard);
  state.mine = mine;
  state.numbers = numbers;
  schedule(state, state.options.flushDelayMs);
}

function setOwnership(state: HolderState, table: OwnershipTable): void {
  state.table = table;
  for (const [owner, sync] of state.owners) {
    const shards = new Set(table.ownedBy(owner));
    if (shards.size === 0) {
      state.owners.delete(owner);
      continue;
    }
    for (const shard of sync.acked.keys()) {
      if (shards.has(shard)) continue;
      sync.acked.delete(shard);
      sync.dirty.delete(shard);
      sync.fresh.delete(shard);
      sync.checks.delete(shard);
    }
  }
  for (const owner of table.members) {
    const shards = table.ownedBy(owner);
    if (shards.length === 0) continue;
    const sync = syncOf(state, owner);
    state.pending.add(owner);
    for (const shard of shards) {
      if (sync.acked.has(shard)) continue;
      sync.acked.set(shard, undefined);
      sync.fresh.add(shard);
      sync.dirty.add(shard);
    }
  }
  schedule(state, 0);
}

/** An entry for a dirty shard (and the set it makes the owner have), or undefined when the owner has it already. */
function entryFor(state: HolderState, sync: OwnerSync, shard: number): { entry: Exclude<IndexEntry, { op: 'check' }>; sent: ReadonlySet<number> } | undefined {
  const current = state.mine.get(shard) ?? EMPTY;
  const acked = sync.acked.get(shard);
  const sent = new Set(current);
  const digest = digestOf(current);
  if (acked === undefined) return { entry: { shard, op: 'full', keys: [...current], digest }, sent };
  const added = [...current].filter((key) => !acked.has(key));
  const removed = [...acked].filter((key) => !current.has(key));
  if (added.length === 0 && removed.length === 0) return undefined;
  return { entry: { shard, op: 'delta', added, removed, digest }, sent };
}

/** One push to an owner: the sync it was built from, its entries, and the set each shard's entry makes the owner have. */
interface BuiltPush {
  readonly sync: OwnerSync;
  readonly entries: IndexEntry[];
  readonly sent: Map<number, ReadonlySet<number>>;
}

/** The entries of the next push to one owner (dirty shards up to MAX_KEYS_PER_PUSH keys, then checks); takes them off the dirty set. */
function buildPush(state: HolderState, sync: OwnerSync): BuiltPush {
  const entries: IndexEntry[] = [];
  const sent = new Map<number, ReadonlySet<number>>();
  let keys = 0;
  for (const shard of sync.dirty) {
    sync.dirty.delete(shard);
    sync.checks.delete(shard);
    const fresh = sync.fresh.delete(shard);
    if (fresh && sync.acked.get(shard) === undefined && (state.mine.get(shard)?.size ?? 0) === 0) {
      // Nothing to tell an owner that has nothing of this agent's: most shards of a node are empty at a few
      // thousand keys. Anything stale it may keep there (it owned the shard before) is found by the next repair.
      sync.acked.set(shard, EMPTY);
      continue;
    }
    const next = entryFor(state, sync, shard);
    if (next === undefined) continue;
    entries.push(next.entry);
    sent.set(shard, next.sent);
    keys += next.entry.op === 'full' ? next.entry.keys.length : next.entry.added.length + next.entry.removed.length;
    if (keys >= MAX_KEYS_PER_PUSH) break;
  }
  for (const shard of sync.checks) {
    const acked = sync.acked.get(shard);
    if (acked !== undefined) entries.push({ shard, op: 'check', digest: digestOf(acked) });
  }
  sync.checks.clear();
  return { sync, entries, sent };
}

function onAnswer(state: HolderState, owner: string, push: BuiltPush, answer: PushAnswer): void {
  const { sync, sent } = push;
  if (state.owners.get(owner) !== sync) return; // no longer an owner, or an owner again since: a newer sync decides
  sync.failures = 0;
  if (sync.instance !== undefined && sync.instance !== answer.instance) {
    // A new start of the owner has only what this push carried (its resend list names the deltas it could not apply).
    state.options.log.info({ owner }, 'owner restarted: sending it all of its shards again');
    for (const shard of sync.acked.keys()) {
      if (sent.has(shard)) continue;
      sync.acked.set(shard, undefined);
      sync.fresh.add(shard);
      sync.dirty.add(shard);
    }
  }
  sync.instance = answer.instance;
  state.pending.add(owner);
  for (const [shard, keys] of sent) if (sync.acked.has(shard)) sync.acked.set(shard, keys);
  for (const shard of answer.resend) {
    if (!sync.acked.has(shard)) continue;
    state.counts.resends++;
    sync.acked.set(shard, undefined);
    sync.dirty.add(shard);
  }
}

function onFailure(state: HolderState, owner: string, push: BuiltPush, err: unknown): void {
  state.counts.pushFailures++;
  const { sync, entries } = push;
  if (state.owners.get(owner) !== sync) return;
  // The owner may or may not have applied the push. A delta from the acknowledged set is right either way
  // (adding a key twice or removing it twice changes nothing), and the digest would catch the rest.
  for (const entry of entries) {
    if (!sync.acked.has(entry.shard)) continue;
    (entry.op === 'check' ? sync.checks : sync.dirty).add(entry.shard);
  }
  state.pending.add(owner);
  sync.failures++;
  const delayMs = Math.min(state.options.maxRetryMs, state.options.minRetryMs * 2 ** Math.min(sync.failures - 1, 16));
  sync.retryAt = Date.now() + delayMs;
  schedule(state, delayMs);
  const fields = { err, owner, failures: sync.failures, retryInMs: delayMs };
  if (sync.failures === 1) state.options.log.info(fields, 'pushing keys to a shard owner failed; retrying');
  else state.options.log.debug(fields, 'pushing keys to a shard owner failed again; retrying');
}

function push(state: HolderState, owner: string, sync: OwnerSync): void {
  const built = buildPush(state, sync);
  const { entries } = built;
  if (entries.length === 0) return;
  state.busy.add(owner);
  state.inFlight++;
  state.counts.pushes++;
  const full: number[] = [];
  const delta: number[] = [];
  for (const entry of entries) {
    if (entry.op === 'full') full.push(entry.shard);
    else if (entry.op === 'delta') delta.push(entry.shard);
  }
  state.counts.fullShards += full.length;
  state.counts.deltaShards += delta.length;
  state.options.log.debug({ owner, full, delta, checks: entries.length - full.length - delta.length }, 'pushing keys to a shard owner');
  state.options
    .send(owner, entries)
    .then(
      (answer) => onAnswer(state, owner, built, answer),
      (err: unknown) => onFailure(state, owner, built, err),
    )
    .finally(() => {
      state.busy.delete(owner);
      state.inFlight--;
      flush(state);
    });
}

function flush(state: HolderState): void {
  state.timer = undefined;
  if (state.closed) return;
  const now = Date.now();
  let waiting = false;
  let nextRetryAt = Infinity;
  for (const owner of state.pending) {
    const sync = state.owners.get(owner);
    if (sync === undefined || (sync.dirty.size === 0 && sync.checks.size === 0)) {
      if (!state.busy.has(owner)) state.pending.delete(owner);
      continue;
    }
    waiting = true;
    if (sync.retryAt > now) nextRetryAt = Math.min(nextRetryAt, sync.retryAt);
    if (state.busy.has(owner) || sync.retryAt > now || state.inFlight >= state.options.maxInFlight) continue;
    push(state, owner, sync);
  }
  // An owner waiting out its backoff gets a timer of its own (a pending timer for later must not hide it).
  if (nextRetryAt !== Infinity) schedule(state, nextRetryAt - now);
  if (!waiting && state.inFlight === 0) for (const resolve of state.waiters.splice(0)) resolve();
}

/** Flushes in `delayMs`, unless a timer fires sooner already. */
function schedule(state: HolderState, delayMs: number): void {
  if (state.closed) return;
  const at = Date.now() + Math.max(0, delayMs);
  if (state.timer !== undefined && state.timerAt <= at) return;
  clearTimeout(state.timer);
  state.timerAt = at;
  state.timer = setTimeout(() => flush(state), Math.max(0, delayMs));
  state.timer.unref();
}

function repair(state: HolderState): void {
  for (const [owner, sync] of state.owners) {
    for (const [shard, acked] of sync.acked) if (acked !== undefined && !sync.dirty.has(shard)) sync.checks.add(shard);
    state.pending.add(owner);
  }
  schedule(state, 0);
}

export function createHolder(options: HolderOptions): Holder {
  const state: HolderState = {
    options,
    mine: new Map(),
    numbers: new Map(),
    table: undefined,
    owners: new Map(),
    inFlight: 0,
    busy: new Set(),
    pending: new Set(),
    timer: undefined,
    timerAt: 0,
    repairTimer: undefined,
    closed: false,
    waiters: [],
    counts: { pushes: 0, pushFailures: 0, fullShards: 0, deltaShards: 0, resends: 0 },
  };
  state.repairTimer = setInterval(() => repair(state), options.repairIntervalMs);
  state.repairTimer.unref();
  return {
    setKeys: (keys) => setKeys(state, keys),
    setOwnership: (table) => setOwnership(state, table),
    idle: () =>
      new Promise<void>((resolve) => {
        state.waiters.push(resolve);
        // At once, not on a timer: the timers are unref'd, and a caller with nothing else to wait for must not exit.
        clearTimeout(state.timer);
        flush(state);
      }),
    stats: () => ({ keys: state.numbers.size, owners: state.owners.size, ...state.counts }),
    close() {
      state.closed = true;
      clearTimeout(state.timer);
      clearInterval(state.repairTimer);
      for (const resolve of state.waiters.splice(0)) resolve();
    },
  };
}
