// Orders lookup candidates: by tier (ascending), then by rendezvous weight
// (descending), as one ascending sort key per candidate,
// tier * 2^32 + (2^32 - 1 - weight) (exact in a double). At 1,000 candidates a
// comparator sort takes ~150 us in V8 and a Float64Array sort more; here one
// counting pass on the key's top 10 bits (tier, top byte of the weight) leaves
// ~4 candidates per bucket and an insertion pass finishes the exact order in a
// few microseconds. With a small limit only the best `limit` candidates are
// selected, against the key of the worst one kept. Ties keep candidate order.

export interface OrderScratch {
  a: Int32Array;
  buckets: Uint16Array;
  sorted: Float64Array;
  readonly counts: Uint32Array;
}

/** Tiers are 0..3 (zone, saturated). */
export const TIERS = 4;
const BUCKETS = TIERS * 256;
/** Keys / 2^24: tier and the top byte of the inverted weight. */
const BUCKET_WIDTH = 2 ** 24;
const SELECT_MAX = 16;

export function createOrderScratch(capacity: number): OrderScratch {
  return { a: new Int32Array(capacity), buckets: new Uint16Array(capacity), sorted: new Float64Array(capacity), counts: new Uint32Array(BUCKETS) };
}

/** The sort key of (tier, weight): ascending keys are the lookup order. */
export function orderKey(tier: number, weight: number): number {
  return tier * 4294967296 + (4294967295 - weight);
}

/** The best `limit` of `count` candidates, in order, into out[0..limit). */
function selectTop(count: number, limit: number, keys: Float64Array, out: Int32Array): void {
  let filled = 0;
  let worst = Infinity;
  for (let p = 0; p < count; p++) {
    const key = keys[p]!;
    if (key >= worst) continue;
    let j = filled === limit ? limit - 1 : filled++;
    while (j > 0 && key < keys[out[j - 1]!]!) {
      out[j] = out[j - 1]!;
      j--;
    }
    out[j] = p;
    if (filled === limit) worst = keys[out[limit - 1]!]!;
  }
}

/** Insertion sort of out[0..count) by sorted[] (the keys in the same order), moving both. */
function insertionSort(out: Int32Array, sorted: Float64Array, count: number): void {
  for (let i = 1; i < count; i++) {
    const key = sorted[i]!;
    const p = out[i]!;
    let j = i - 1;
    while (j >= 0 && sorted[j]! > key) {
      sorted[j + 1] = sorted[j]!;
      out[j + 1] = out[j]!;
      j--;
    }
    sorted[j + 1] = key;
    out[j + 1] = p;
  }
}

/**
 * Candidate positions in ascending key order; at least the first
 * min(limit, count) are valid. The returned array is scratch (valid until the
 * next call).
 */
export function orderByKeys(count: number, keys: Float64Array, scratch: OrderScratch, limit = count): Int32Array {
  if (scratch.a.length < count) {
    scratch.a = new Int32Array(count * 2);
    scratch.buckets = new Uint16Array(count * 2);
    scratch.sorted = new Float64Array(count * 2);
  }
  const { a: out, sorted } = scratch;
  const wanted = Math.min(limit, count);
  if (wanted <= 0) return out;
  if (wanted <= SELECT_MAX && wanted < count) {
    selectTop(count, wanted, keys, out);
    return out;
  }
  if (count <= 32) {
    for (let i = 0; i < count; i++) {
      out[i] = i;
      sorted[i] = keys[i]!;
    }
    insertionSort(out, sorted, count);
    return out;
  }
  const { buckets, counts } = scratch;
  counts.fill(0);
  for (let i = 0; i < count; i++) {
    const bucket = Math.floor(keys[i]! / BUCKET_WIDTH);
    buckets[i] = bucket;
    counts[bucket]!++;
  }
  let sum = 0;
  for (let k = 0; k < BUCKETS; k++) {
    const n = counts[k]!;
    counts[k] = sum;
    sum += n;
  }
  for (let i = 0; i < count; i++) {
    const at = counts[buckets[i]!]!++;
    out[at] = i;
    sorted[at] = keys[i]!;
  }
  insertionSort(out, sorted, count);
  return out;
}

/** Candidates as separate tier (0..3) and weight (uint32) columns. */
export interface CandidateColumns {
  readonly tiers: Uint8Array;
  readonly weights: Uint32Array;
}

/** orderByKeys on separate tier and weight columns. */
export function orderCandidates(count: number, candidates: CandidateColumns, scratch: OrderScratch, limit = count): Int32Array {
  const { tiers, weights } = candidates;
  const keys = new Float64Array(count);
  for (let i = 0; i < count; i++) keys[i] = orderKey(tiers[i]!, weights[i]!);
  return orderByKeys(count, keys, scratch, limit);
}
