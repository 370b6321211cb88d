// What a shard's owner keeps (discovery peer to peer, internal/owners): for each
// shard it owns, which agents hold which keys, as the holders told it (a full
// set per holder and shard, then deltas), and the lookup of a key's holders.
// Pure and in memory; the transport and the ownership (rendezvous.ts) are
// elsewhere. Holders also get a digest of what the owner has from them per
// shard, order-free, so that a periodic comparison repairs lost deltas.
//
// Keys are kept as 53 bits of their xxh64 (hash.ts): a collision of two keys
// among the ~40,000 of one owner's shards is about one in 10^8 and costs a
// false positive (a holder asked for a key it lacks answers 404). A key belongs to one shard (jump hash); a holder that
// names it under two loses it from lookups when either is cleared. Memory: a
// Set entry per (holder, key) in each view; bench:scale measures the bytes
// per posting and one agent's whole routing state at 5,000 agents.
import { fmix32, jumpHash, type KeyHash } from './hash.ts';

export interface OwnerStoreStats {
  /** Distinct keys held for by at least one holder. */
  keys: number;
  /** (key, holder) pairs. */
  postings: number;
  holders: number;
  shards: number;
}

export interface OwnerStore {
  /** Everything `holder` has in `shard` (key numbers, keyNumber()), replacing what it had there. */
  replace(holder: string, shard: number, keys: readonly number[]): void;
  /** `holder` gained `added` and lost `removed` in `shard`. */
  apply(holder: string, shard: number, added: readonly number[], removed: readonly number[]): void;
  /** Forgets a holder everywhere (its agent is gone). */
  removeHolder(holder: string): void;
  /** Forgets a shard (no longer owned here). */
  dropShard(shard: number): void;
  /** The holders of a key number, in the order they first told of it (the store's own set: do not change it). */
  holders(key: number): ReadonlySet<string>;
  /** An order-free digest of what `holder` has in `shard` here: `<count>-<hex>`, `0-0` for nothing. */
  digest(holder: string, shard: number): string;
  stats(): OwnerStoreStats;
}

/** 53 bits of a key's 64-bit hash: exact in a double, a Map key without allocation. */
export function keyNumber(hash: KeyHash): number {
  return (hash.hi >>> 11) * 4294967296 + hash.lo;
}

/** The high 21 and low 32 bits of a key number. */
export function keyHalves(key: number): { hi: number; lo: number } {
  return { hi: Math.floor(key / 4294967296), lo: key % 4294967296 };
}

/** The shard of a key number among `shards` (jump consistent hash of its bits: a change of S moves ~1/S of the keys). */
export function shardOfKey(key: number, shards: number): number {
  const { hi, lo } = keyHalves(key);
  return jumpHash(hi, lo, shards);
}

/** The digest's per-key term: two mixed 32-bit words, summed, so that the order of the keys does not matter. */
function digestTerms(key: number): [number, number] {
  const lo = key % 4294967296;
  const hi = Math.floor(key / 4294967296);
  return [fmix32(lo ^ Math.imul(hi, 0x9e3779b1)), fmix32(hi ^ 0x85ebca6b ^ lo)];
}

/** The store's two views of the same postings: by key (lookups) and by shard and holder (replace, deltas, digests). */
interface Postings {
  /** key -> holder names (a Set: a popular key has thousands of holders, each added and removed in O(1)). */
  readonly byKey: Map<number, Set<string>>;
  /** shard -> holder -> keys. */
  readonly byShard: Map<number, Map<string, Set<number>>>;
}

function unlink(p: Postings, key: number, holder: string): void {
  const names = p.byKey.get(key);
  if (names === undefined || !names.delete(holder)) return;
  if (names.size === 0) p.byKey.delete(key);
}

function link(p: Postings, key: number, holder: string): void {
  const names = p.byKey.get(key);
  if (names === undefined) p.byKey.set(key, new Set([holder]));
  else names.add(holder);
}

/** The keys `holder` has in `shard`, made empty when `create` and not there. */
function keysOf(p: Postings, holder: string, shard: number, create: boolean): Set<number> | undefined {
  let holders = p.byShard.get(shard);
  if (holders === undefined) {
    if (!create) return undefined;
    holders = new Map<string, Set<number>>();
    p.byShard.set(shard, holders);
  }
  let keys = holders.get(holder);
  if (keys === undefined && create) {
    keys = new Set<number>();
    holders.set(holder, keys);
  }
  return keys;
}

function clear(p: Postings, holder: string, shard: number): void {
  const holders = p.byShard.get(shard);
  const keys = holders?.get(holder);
  if (holders === undefined || keys === undefined) return;
  for (const key of keys) unlink(p, key, holder);
  holders.delete(holder);
  if (holders.size === 0) p.byShard.delete(shard);
}

/** The order-free digest of a set of key numbers, as the owner computes it for a holder and shard: `<count>-<hex>`, `0-0` for none. */
export function digestOf(keys: ReadonlySet<number> | undefined): string {
  if (keys === undefined || keys.size === 0) return '0-0';
  let a = 0;
  let b = 0;
  for (const key of keys) {
    const [x, y] = digestTerms(key);
    a = (a + x) >>> 0;
    b = (b + y) >>> 0;
  }
  return `${keys.size}-${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}`;
}

function statsOf(p: Postings): OwnerStoreStats {
  let postings = 0;
  const holders = new Set<string>();
  for (const shardHolders of p.byShard.values()) {
    for (const [holder, keys] of shardHolders) {
      postings += keys.size;
      holders.add(holder);
    }
  }
  return { keys: p.byKey.size, postings, holders: holders.size, shards: p.byShard.size };
}

const NO_HOLDERS: ReadonlySet<string> = new Set();

export function createOwnerStore(): OwnerStore {
  const p: Postings = { byKey: new Map(), byShard: new Map() };
  const add = (set: Set<number>, holder: string, key: number): void => {
    if (set.has(key)) return;
    set.add(key);
    link(p, key, holder);
  };
  return {
    replace(holder, shard, keys) {
      clear(p, holder, shard);
      const set = keys.length === 0 ? undefined : keysOf(p, holder, shard, true);
      for (const key of keys) if (set !== undefined) add(set, holder, key);
    },
    apply(holder, shard, added, removed) {
      const set = keysOf(p, holder, shard, added.length > 0);
      if (set === undefined) return;
      for (const key of removed) if (set.delete(key)) unlink(p, key, holder);
      for (const key of added) add(set, holder, key);
      if (set.size === 0) clear(p, holder, shard);
    },
    removeHolder(holder) {
      for (const shard of [...p.byShard.keys()]) clear(p, holder, shard);
    },
    dropShard(shard) {
      for (const holder of [...(p.byShard.get(shard)?.keys() ?? [])]) clear(p, holder, shard);
    },
    holders: (key) => p.byKey.get(key) ?? NO_HOLDERS,
    digest: (holder, shard) => digestOf(keysOf(p, holder, shard, false)),
    stats: () => statsOf(p),
  };
}
