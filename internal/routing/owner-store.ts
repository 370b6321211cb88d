// What a shard's owner keeps (issue 14, discovery peer to peer): for each
// shard it owns, which agents hold which keys, as the holders told it (a full
// set per holder and shard, then deltas), and the lookup of a key's holders.
// Pure and in memory; the transport and the ownership (rendezvous.ts) are
// elsewhere. Holders also get a digest of what the owner has from them per
// shard, order-free, so that a periodic comparison repairs lost deltas.
//
// Keys are kept as 53 bits of their xxh64 (hash.ts): a collision of two keys
// among the ~40,000 of one owner's shards is about one in 10^8 and costs a
// false positive (a holder asked for a key it lacks answers 404), as the
// summary's filters do. A key belongs to one shard (jump hash); a holder that
// names it under two loses it from lookups when either is cleared. Memory: one Map entry per key and one Set entry per
// (holder, key), about 150 bytes per posting; at 5,000 agents x 2,000 keys,
// 2 owners per shard, each agent holds 4,000 postings on average.
import { fmix32, type KeyHash } from './hash.ts';

export interface OwnerStoreStats {
  /** Distinct keys held for by at least one holder. */
  keys: number;
  /** (key, holder) pairs. */
  postings: number;
  holders: number;
  shards: number;
}

export interface OwnerStore {
  /** Everything `holder` has in `shard`, replacing what it had there. */
  replace(holder: string, shard: number, keys: readonly KeyHash[]): void;
  /** `holder` gained `added` and lost `removed` in `shard`. */
  apply(holder: string, shard: number, added: readonly KeyHash[], removed: readonly KeyHash[]): void;
  /** Forgets a holder everywhere (its agent is gone). */
  removeHolder(holder: string): void;
  /** Forgets a shard (no longer owned here). */
  dropShard(shard: number): void;
  /** The holders of a key, in the order they first told of it. */
  holders(hash: KeyHash): string[];
  /** An order-free digest of what `holder` has in `shard` here: `<count>-<hex>`, `0-0` for nothing. */
  digest(holder: string, shard: number): string;
  stats(): OwnerStoreStats;
}

/** 53 bits of a key's 64-bit hash: exact in a double, a Map key without allocation. */
export function keyNumber(hash: KeyHash): number {
  return (hash.hi >>> 11) * 4294967296 + hash.lo;
}

/** The digest's per-key term: two mixed 32-bit words, summed, so that the order of the keys does not matter. */
function digestTerms(key: number): [number, number] {
  const lo = key % 4294967296;
  const hi = Math.floor(key / 4294967296);
  return [fmix32(lo ^ Math.imul(hi, 0x9e3779b1)), fmix32(hi ^ 0x85ebca6b ^ lo)];
}

/** The store's two views of the same postings: by key (lookups) and by shard and holder (replace, deltas, digests). */
interface Postings {
  /** key -> holder names. */
  readonly byKey: Map<number, string[]>;
  /** shard -> holder -> keys. */
  readonly byShard: Map<number, Map<string, Set<number>>>;
}

function unlink(p: Postings, key: number, holder: string): void {
  const names = p.byKey.get(key);
  const at = names?.indexOf(holder) ?? -1;
  if (names === undefined || at < 0) return;
  names.splice(at, 1);
  if (names.length === 0) p.byKey.delete(key);
}

function link(p: Postings, key: number, holder: string): void {
  const names = p.byKey.get(key);
  if (names === undefined) p.byKey.set(key, [holder]);
  else if (!names.includes(holder)) names.push(holder);
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

function digestOf(keys: ReadonlySet<number> | undefined): string {
  if (keys === undefined) return '0-0';
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

export function createOwnerStore(): OwnerStore {
  const p: Postings = { byKey: new Map(), byShard: new Map() };
  const add = (set: Set<number>, holder: string, hash: KeyHash): void => {
    const key = keyNumber(hash);
    set.add(key);
    link(p, key, holder);
  };
  return {
    replace(holder, shard, keys) {
      clear(p, holder, shard);
      const set = keys.length === 0 ? undefined : keysOf(p, holder, shard, true);
      for (const hash of keys) if (set !== undefined) add(set, holder, hash);
    },
    apply(holder, shard, added, removed) {
      const set = keysOf(p, holder, shard, added.length > 0);
      if (set === undefined) return;
      for (const hash of removed) {
        const key = keyNumber(hash);
        if (set.delete(key)) unlink(p, key, holder);
      }
      for (const hash of added) add(set, holder, hash);
      if (set.size === 0) clear(p, holder, shard);
    },
    removeHolder(holder) {
      for (const shard of [...p.byShard.keys()]) clear(p, holder, shard);
    },
    dropShard(shard) {
      for (const holder of [...(p.byShard.get(shard)?.keys() ?? [])]) clear(p, holder, shard);
    },
    holders: (hash) => [...(p.byKey.get(keyNumber(hash)) ?? [])],
    digest: (holder, shard) => digestOf(keysOf(p, holder, shard, false)),
    stats: () => statsOf(p),
  };
}
