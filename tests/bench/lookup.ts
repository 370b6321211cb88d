// npm run bench:lookup: the peer index at 1,000 peers x 20,000 keys each.
// Every peer's annotations come from the real encoder and go through the real
// decoder; lookups include hashing the key. Prints lookup p50/p99, the index's
// memory, annotation bytes per key and the measured false-positive rate; the
// last line is the JSON summary.
//
// Key model: a popular pool of 10,000 keys (base images; each peer holds a
// random half of it) and a long tail of 500,000 keys (each peer holds 15,000;
// ~30 peers per tail key). Lookups: 40% popular (~500 candidates), 40% tail,
// 20% keys nobody has (only false positives answer). Peers spread over 3 zones.
// Lookups are timed one by one (process.hrtime.bigint, 20,000 after 3,000 of
// warm-up), hashing of the key string included; garbage-collector pauses are
// observed and reported, and lookups that overlapped one are counted (they stay
// in the headline percentiles). Last, 100 peers are updated twice in the full
// index: a new summary (every shard changes) and one new image (13 keys).
import { createHasher, type KeyHash } from '../../internal/routing/hash.ts';
import { encodeSummaryHashes, encodeSummary } from '../../internal/routing/encode.ts';
import { createPeerIndex } from '../../internal/routing/peer-index.ts';
import { PerformanceObserver } from 'node:perf_hooks';
import { percentile } from './stats.ts';

const PEERS = 1000;
const KEYS_PER_PEER = 20000;
const POPULAR = 10000;
const POPULAR_PER_PEER = 5000;
const TAIL = 500000;
const LOOKUPS = 20000;
const WARMUP = 3000;
/** The agent's limit (cmd/p2p.ts). */
const AGENT_LIMIT = 5;
const UPDATE_PEERS = 100;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = mulberry32(20240601);
const randomInt = (n: number): number => Math.floor(random() * n);
const digest = (): string => {
  let hex = '';
  for (let i = 0; i < 8; i++) hex += (Math.floor(random() * 4294967296) >>> 0).toString(16).padStart(8, '0');
  return `sha256:${hex}`;
};

const hasher = await createHasher();
const popularKeys = Array.from({ length: POPULAR }, (_, i) => (i % 10 === 0 ? `docker.io/library/base${i}:1.${i % 7}` : digest()));
const tailKeys = Array.from({ length: TAIL }, digest);
const popularHashes = popularKeys.map((k) => hasher.hash(k));
const tailHashes = tailKeys.map((k) => hasher.hash(k));
const usedBytes = (): number => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

// Annotation size of the real encoder at several key counts (one node).
console.log('keys      bytes    bytes/key  (S=8, m=104, base64 and annotation names included)');
for (const n of [1000, 2000, 10000, 20000, 50000]) {
  const { stats } = encodeSummary(tailKeys.slice(0, n), { hasher, generation: 1234 });
  console.log(`${String(n).padEnd(9)} ${String(stats.bytes).padEnd(8)} ${stats.bytesPerKey.toFixed(3)}`);
}

/** `count` distinct random indices in [0, n) (partial Fisher-Yates on a scratch array). */
function sample(n: number, count: number, scratch: Uint32Array): Uint32Array {
  for (let i = 0; i < count; i++) {
    const j = i + randomInt(n - i);
    const t = scratch[i]!;
    scratch[i] = scratch[j]!;
    scratch[j] = t;
  }
  return scratch.subarray(0, count);
}

const before = usedBytes();
const index = createPeerIndex({ self: 'mirra-self', hasher });
const popularScratch = Uint32Array.from({ length: POPULAR }, (_, i) => i);
const tailScratch = Uint32Array.from({ length: TAIL }, (_, i) => i);
let annotationBytes = 0;
let encodeMs = 0;
let upsertMs = 0;
for (let p = 0; p < PEERS; p++) {
  const hashes: KeyHash[] = [];
  for (const i of sample(POPULAR, POPULAR_PER_PEER, popularScratch)) hashes.push(popularHashes[i]!);
  for (const i of sample(TAIL, KEYS_PER_PEER - POPULAR_PER_PEER, tailScratch)) hashes.push(tailHashes[i]!);
  let t = performance.now();
  const { annotations, stats } = encodeSummaryHashes(hashes, { generation: 1 });
  encodeMs += performance.now() - t;
  annotationBytes += stats.bytes;
  t = performance.now();
  const result = index.upsertPeer(`mirra-${p}`, { zone: `zone-${p % 3}`, ready: true, annotations });
  upsertMs += performance.now() - t;
  if (result.status !== 'ok') throw new Error(`peer ${p}: ${result.status} ${result.error?.message ?? ''}`);
}
const indexBytes = usedBytes() - before;
// Keeps the key pools alive up to here (V8 frees dead top-level-await locals early, which would skew the delta).
const poolKeys = popularHashes.length + tailHashes.length;
const stats = index.stats();

type Category = 'popular' | 'tail' | 'absent';
const queries: Array<{ key: string; category: Category }> = [];
for (let i = 0; i < WARMUP + LOOKUPS; i++) {
  const r = random();
  queries.push(
    r < 0.4
      ? { key: popularKeys[randomInt(POPULAR)]!, category: 'popular' }
      : r < 0.8
        ? { key: tailKeys[randomInt(TAIL)]!, category: 'tail' }
        : { key: digest(), category: 'absent' },
  );
}

const gcPauses: Array<{ start: number; end: number }> = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, end: e.startTime + e.duration });
}).observe({ entryTypes: ['gc'] });

interface Measured {
  p50: number;
  p99: number;
  max: number;
  gcCount: number;
  gcMs: number;
  /** Lookups that overlapped a GC pause, and p99 without them. */
  gcHit: number;
  p99NoGc: number;
  fpClaims: number;
  absentLookups: number;
  candidates: number;
  byCategory: Map<Category, number[]>;
}

async function measure(limit: number | undefined): Promise<Measured> {
  const times = new Float64Array(LOOKUPS);
  const starts = new Float64Array(LOOKUPS);
  gcPauses.length = 0;
  const byCategory = new Map<Category, number[]>([
    ['popular', []],
    ['tail', []],
    ['absent', []],
  ]);
  let fpClaims = 0;
  let absentLookups = 0;
  let candidates = 0;
  for (let i = 0; i < queries.length; i++) {
    const { key, category } = queries[i]!;
    const startMs = performance.now();
    const t0 = process.hrtime.bigint();
    const peers = index.lookup(key, { zone: 'zone-0', limit });
    const elapsed = Number(process.hrtime.bigint() - t0) / 1000;
    if (i < WARMUP) continue;
    times[i - WARMUP] = elapsed;
    starts[i - WARMUP] = startMs;
    byCategory.get(category)!.push(elapsed);
    candidates += peers.length;
    if (category === 'absent') {
      absentLookups++;
      fpClaims += peers.length;
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // lets the GC observer deliver
  const pauses = gcPauses.filter((g) => g.end >= starts[0]!);
  const clean: number[] = [];
  for (let i = 0; i < LOOKUPS; i++) {
    const end = starts[i]! + times[i]! / 1000 + 0.01;
    if (!pauses.some((g) => g.start <= end && g.end >= starts[i]!)) clean.push(times[i]!);
  }
  clean.sort((x, y) => x - y);
  times.sort();
  for (const list of byCategory.values()) list.sort((x, y) => x - y);
  return {
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99),
    max: times[LOOKUPS - 1]!,
    gcCount: pauses.length,
    gcMs: pauses.reduce((sum, g) => sum + g.end - g.start, 0),
    gcHit: LOOKUPS - clean.length,
    p99NoGc: percentile(clean, 0.99),
    fpClaims,
    absentLookups,
    candidates,
    byCategory,
  };
}

const full = await measure(undefined);
const limited = await measure(AGENT_LIMIT);

/** Updates of peers already in the full index: a new summary (all shards change), then one new image on top (13 keys). */
function measureUpdates(): { fullMs: number; imageMs: number } {
  let fullMs = 0;
  let imageMs = 0;
  for (let p = 0; p < UPDATE_PEERS; p++) {
    const hashes: KeyHash[] = [];
    for (const i of sample(POPULAR, POPULAR_PER_PEER, popularScratch)) hashes.push(popularHashes[i]!);
    for (const i of sample(TAIL, KEYS_PER_PEER - POPULAR_PER_PEER, tailScratch)) hashes.push(tailHashes[i]!);
    const renewed = encodeSummaryHashes(hashes, { generation: 2 }).annotations;
    for (let k = 0; k < 13; k++) hashes.push(hasher.hash(digest()));
    const pulled = encodeSummaryHashes(hashes, { generation: 3 }).annotations;
    let t = performance.now();
    index.upsertPeer(`mirra-${p * 7}`, { zone: `zone-${(p * 7) % 3}`, ready: true, annotations: renewed });
    fullMs += performance.now() - t;
    t = performance.now();
    index.upsertPeer(`mirra-${p * 7}`, { zone: `zone-${(p * 7) % 3}`, ready: true, annotations: pulled });
    imageMs += performance.now() - t;
  }
  return { fullMs: fullMs / UPDATE_PEERS, imageMs: imageMs / UPDATE_PEERS };
}
const updates = measureUpdates();
const fpRate = full.fpClaims / (full.absentLookups * stats.candidates);
const bytesPerKey = annotationBytes / (PEERS * KEYS_PER_PEER);
const indexMb = indexBytes / (1024 * 1024);
const gcLine = (m: Measured): string =>
  `GC ${m.gcCount} pauses, ${m.gcMs.toFixed(1)} ms; ${m.gcHit} lookups overlapped one (p99 without them ${m.p99NoGc.toFixed(1)} us)`;

console.log('');
console.log(
  `peers ${PEERS} x ${KEYS_PER_PEER} keys (pool of ${poolKeys} distinct keys); encode ${(encodeMs / PEERS).toFixed(1)} ms/peer, upsert (decode) ${(upsertMs / PEERS).toFixed(1)} ms/peer`,
);
console.log(`update in the full index: new summary ${updates.fullMs.toFixed(1)} ms/peer, one new image ${updates.imageMs.toFixed(1)} ms/peer`);
console.log(
  `lookup (all candidates ordered): p50 ${full.p50.toFixed(1)} us, p99 ${full.p99.toFixed(1)} us, max ${full.max.toFixed(1)} us, mean ${(full.candidates / LOOKUPS).toFixed(0)} peers returned`,
);
console.log(`  ${gcLine(full)}`);
console.log(
  `lookup (limit ${AGENT_LIMIT}):                p50 ${limited.p50.toFixed(1)} us, p99 ${limited.p99.toFixed(1)} us, max ${limited.max.toFixed(1)} us`,
);
console.log(`  ${gcLine(limited)}`);
for (const [category, list] of full.byCategory) {
  const top = limited.byCategory.get(category)!;
  console.log(
    `  ${category.padEnd(8)} ${String(list.length).padStart(5)} lookups: p50 ${percentile(list, 0.5).toFixed(1)} / p99 ${percentile(list, 0.99).toFixed(1)} us (limit ${AGENT_LIMIT}: ${percentile(top, 0.5).toFixed(1)} / ${percentile(top, 0.99).toFixed(1)} us)`,
  );
}
console.log(
  `index memory ${indexMb.toFixed(1)} MB (filters ${(stats.filterBytes / 1048576).toFixed(1)} MB, ${(indexBytes / (PEERS * KEYS_PER_PEER)).toFixed(2)} bytes/key)`,
);
console.log(
  `annotation ${bytesPerKey.toFixed(3)} bytes/key; false positives ${full.fpClaims} of ${full.absentLookups} absent lookups x ${stats.candidates} peers = ${(fpRate * 100).toFixed(3)}%`,
);
console.log(
  JSON.stringify({
    bench: 'lookup',
    lookup_p99_us: Number(full.p99.toFixed(1)),
    lookup_limit5_p99_us: Number(limited.p99.toFixed(1)),
    bytes_per_key: Number(bytesPerKey.toFixed(3)),
    fp_rate: Number(fpRate.toFixed(5)),
    index_mb: Number(indexMb.toFixed(1)),
  }),
);
