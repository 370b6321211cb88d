// npm run bench:lookup: a shard owner's lookup at 5,000 agents. The owner is
// bench:scale's busiest at N = 5,000 (3 of the 256 shards): every agent has
// about 8 keys in each shard, 6 of them shared by every node (base images)
// and 2 of its own, so a popular key has 5,000 holders and the owner keeps
// ~120,000 postings. It is filled through the real receive path (full
// pushes), then asked with the real holders() (ready holders, same zone
// first, then rendezvous order, the best 16): 40% popular keys, 40% a node's
// own, 20% keys nobody has, timed one by one after a warm-up, hashing the
// key included. Twice: with the owner's answer cache (a popular key's order
// reused for a second) and with a clock that moves 2 s per call (every
// popular key ordered again: its 5,000 holders). The reference measured in
// the same run is the bare owner store's holders() of the same keys (a Map
// lookup, no ordering). Also: a delta of a pulled image applied with its
// digest check, and the heap bytes per posting. The last line is the JSON
// summary.
import { createOwnerService } from '../../internal/owners/owner.ts';
import { OWNER_SHARDS, type IndexEntry } from '../../internal/owners/protocol.ts';
import { createHasher } from '../../internal/routing/hash.ts';
import { createOwnerStore, digestOf, keyNumber, shardOfKey } from '../../internal/routing/owner-store.ts';
import { podName } from './scale-sim.ts';
import { percentile } from './stats.ts';

const HOLDERS = 5000;
const OWNED = [17, 112, 230];
const SHARED_PER_SHARD = 6;
const OWN_PER_SHARD = 2;
const LOOKUPS = 20_000;
const WARMUP = 3_000;
const DELTAS = 500;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const hasher = await createHasher();

/** Keys (strings) whose key number falls in `shard`, by rejection from a counter. */
function keysIn(shard: number, count: number, seed: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const key = `sha256:${hasher.digest(`${seed}-${i}`)}${hasher.digest(`${seed}-${i}-b`)}${hasher.digest(`${seed}-${i}-c`)}${hasher.digest(`${seed}-${i}-d`)}`;
    if (shardOfKey(keyNumber(hasher.hash(key)), OWNER_SHARDS) === shard) out.push(key);
  }
  return out;
}

const shared = new Map(OWNED.map((shard) => [shard, keysIn(shard, SHARED_PER_SHARD, `shared-${shard}`)]));
const holders = Array.from({ length: HOLDERS }, (_, i) => podName(i));
const ownKeys = holders.map((_, h) => OWNED.flatMap((shard) => keysIn(shard, OWN_PER_SHARD, `own-${h}-${shard}`)));
const pushes: IndexEntry[][] = holders.map((_, h) =>
  OWNED.map((shard) => {
    const keys = new Set(
      [...shared.get(shard)!, ...ownKeys[h]!.filter((k) => shardOfKey(keyNumber(hasher.hash(k)), OWNER_SHARDS) === shard)].map((k) =>
        keyNumber(hasher.hash(k)),
      ),
    );
    return { shard, op: 'full', keys: [...keys], digest: digestOf(keys) };
  }),
);
const zoneOf = new Map(holders.map((name, i) => [name, `zone-${i % 3}`]));

gc();
const before = process.memoryUsage().heapUsed;
const owner = createOwnerService({ hasher, warmMs: 0, graceMs: 60_000, member: (name) => ({ ready: true, zone: zoneOf.get(name) }) });
owner.setOwned(OWNED);
const fillStarted = performance.now();
holders.forEach((name, h) => owner.receive(name, pushes[h]!));
const fillMs = performance.now() - fillStarted;
gc();
const ownerBytes = process.memoryUsage().heapUsed - before;
const postings = owner.stats().postings;

const store = createOwnerStore();
holders.forEach((name, h) => {
  for (const entry of pushes[h]!) if (entry.op === 'full') store.replace(name, entry.shard, entry.keys);
});

type Kind = 'popular' | 'own' | 'absent';
let state = 20240601;
const random = (): number => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296;
const allShared = [...shared.values()].flat();
const queries: { key: string; kind: Kind }[] = Array.from({ length: WARMUP + LOOKUPS }, (_, i) => {
  const r = random();
  if (r < 0.4) return { key: allShared[Math.floor(random() * allShared.length)]!, kind: 'popular' };
  if (r < 0.8) return { key: ownKeys[Math.floor(random() * HOLDERS)]![Math.floor(random() * OWNED.length * OWN_PER_SHARD)]!, kind: 'own' };
  return { key: `sha256:absent-${i}`, kind: 'absent' };
});

function time(lookup: (key: string) => number): { all: number[]; byKind: Map<Kind, number[]> } {
  const all: number[] = [];
  const byKind = new Map<Kind, number[]>([
    ['popular', []],
    ['own', []],
    ['absent', []],
  ]);
  let sink = 0;
  queries.forEach(({ key, kind }, i) => {
    const t0 = process.hrtime.bigint();
    sink += lookup(key);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (i < WARMUP) return;
    all.push(us);
    byKind.get(kind)!.push(us);
  });
  if (sink < 0) throw new Error('unreachable');
  all.sort((a, b) => a - b);
  for (const list of byKind.values()) list.sort((a, b) => a - b);
  return { all, byKind };
}

const ordered = time((key) => owner.holders(keyNumber(hasher.hash(key)), 'zone-0').holders.length);
let clock = 0;
const uncachedOwner = createOwnerService({
  hasher,
  warmMs: 0,
  graceMs: 60_000,
  member: (name) => ({ ready: true, zone: zoneOf.get(name) }),
  now: () => (clock += 2000),
});
uncachedOwner.setOwned(OWNED);
holders.forEach((name, h) => uncachedOwner.receive(name, pushes[h]!));
const uncached = time((key) => uncachedOwner.holders(keyNumber(hasher.hash(key)), 'zone-0').holders.length);
const bare = time((key) => store.holders(keyNumber(hasher.hash(key))).size);

let deltaMs = 0;
for (let d = 0; d < DELTAS; d++) {
  const name = holders[d]!;
  const added = keysIn(OWNED[d % OWNED.length]!, 4, `pulled-${d}`).map((k) => keyNumber(hasher.hash(k)));
  const full = pushes[d]![d % OWNED.length]!;
  if (full.op !== 'full') throw new Error('unreachable');
  const after = new Set([...full.keys, ...added]);
  const t0 = performance.now();
  const resend = owner.receive(name, [{ shard: full.shard, op: 'delta', added, removed: [], digest: digestOf(after) }]);
  deltaMs += performance.now() - t0;
  if (resend.length !== 0) throw new Error('a delta did not reach its digest');
}

const p99 = (list: number[]): number => percentile(list, 0.99);
console.log(
  `owner of ${OWNED.length} shards at ${HOLDERS} holders: ${postings} postings, filled in ${fillMs.toFixed(0)} ms, heap ${(ownerBytes / 1e6).toFixed(1)} MB (${(ownerBytes / postings).toFixed(0)} B per posting)`,
);
console.log(`holders() with ordering: p50 ${percentile(ordered.all, 0.5).toFixed(1)} us, p99 ${p99(ordered.all).toFixed(1)} us`);
for (const [kind, list] of ordered.byKind) {
  const again = uncached.byKind.get(kind)!;
  console.log(
    `  ${kind.padEnd(8)} p50 ${percentile(list, 0.5).toFixed(1)} us, p99 ${p99(list).toFixed(1)} us; without the answer cache p50 ${percentile(again, 0.5).toFixed(1)} us, p99 ${p99(again).toFixed(1)} us (bare store p99 ${p99(bare.byKind.get(kind)!).toFixed(1)} us)`,
  );
}
console.log(
  `bare store holders() (reference): p50 ${percentile(bare.all, 0.5).toFixed(1)} us, p99 ${p99(bare.all).toFixed(1)} us; ratio p99 ${(p99(ordered.all) / p99(bare.all)).toFixed(1)}`,
);
console.log(`a pulled image's delta (4 keys in one shard, digest checked): ${((deltaMs / DELTAS) * 1000).toFixed(1)} us`);
console.log(
  JSON.stringify({
    bench: 'lookup',
    owner_lookup_p99_us: Number(p99(ordered.all).toFixed(1)),
    owner_lookup_popular_p99_us: Number(p99(ordered.byKind.get('popular')!).toFixed(1)),
    owner_lookup_popular_uncached_p99_us: Number(p99(uncached.byKind.get('popular')!).toFixed(1)),
    bare_store_p99_us: Number(p99(bare.all).toFixed(1)),
    ratio_p99: Number((p99(ordered.all) / p99(bare.all)).toFixed(1)),
    bytes_per_posting: Math.round(ownerBytes / postings),
    owner_mb: Number((ownerBytes / 1e6).toFixed(1)),
    delta_us: Number(((deltaMs / DELTAS) * 1000).toFixed(1)),
  }),
);
