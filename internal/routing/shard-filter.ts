// The in-memory form of one decoded shard, built so that a probe is one random
// 32-bit read. The values of [0, range) are split into buckets of 2^shift
// (shift = 7 at m = 104: ~1.23 values per bucket); a bucket word holds the
// count in bits 0-2 and up to `capacity` distinct low parts (shift bits each,
// ascending) above it. Count 7 marks a bucket that did not fit (~0.9% at
// m = 104): its lows live in the sorted overflow lists. 3.25 bytes per key.
// `has` of a decoded summary (decode.ts) probes these words; the peer index
// keeps its own inverted form (cell-table.ts).
import { reduceRange } from './hash.ts';

export interface ShardFilter {
  /** n * m; 0 for an empty shard (claims nothing). */
  readonly range: number;
  readonly keys: number;
  readonly shift: number;
  readonly buckets: Uint32Array;
  /** Sorted ids of overflowing buckets; their lows are overflowLows[overflowStarts[i]..overflowStarts[i+1]]. */
  readonly overflowBuckets: Uint32Array;
  readonly overflowStarts: Uint32Array;
  readonly overflowLows: Uint8Array;
}

const COUNT_MASK = 7;
const OVERFLOW = 7;

/** Bucket width 2^shift: 128 for m >= 65, else the smallest power of two >= m (1 to 2 values per bucket). */
export function bucketShift(m: number): number {
  let shift = 1;
  while (shift < 7 && 2 ** shift < m) shift++;
  return shift;
}

function capacity(shift: number): number {
  return Math.min(6, Math.floor(29 / shift));
}

/** Builds the filter from sorted (non-decreasing) values in [0, range). */
export function buildShardFilter(values: Uint32Array, range: number, m: number): ShardFilter {
  const shift = bucketShift(m);
  const empty = new Uint32Array(0);
  if (values.length === 0 || range === 0) {
    // One empty bucket word, so that a probe of an empty shard reads a word like any other.
    return {
      range: 0,
      keys: 0,
      shift,
      buckets: new Uint32Array(1),
      overflowBuckets: empty,
      overflowStarts: new Uint32Array(1),
      overflowLows: new Uint8Array(0),
    };
  }
  const cap = capacity(shift);
  const mask = 2 ** shift - 1;
  const buckets = new Uint32Array(Math.ceil(range / 2 ** shift));
  const overflowBuckets: number[] = [];
  const overflowStarts: number[] = [0];
  const overflowLows: number[] = [];
  const lows: number[] = [];
  for (let i = 0; i < values.length;) {
    const b = values[i]! >>> shift;
    lows.length = 0;
    for (; i < values.length && values[i]! >>> shift === b; i++) {
      const low = values[i]! & mask;
      if (lows[lows.length - 1] !== low) lows.push(low);
    }
    if (lows.length <= cap) {
      let word = lows.length;
      for (let j = 0; j < lows.length; j++) word += lows[j]! * 2 ** (3 + j * shift);
      buckets[b] = word;
    } else {
      buckets[b] = OVERFLOW;
      overflowBuckets.push(b);
      overflowLows.push(...lows);
      overflowStarts.push(overflowLows.length);
    }
  }
  return {
    range,
    keys: values.length,
    shift,
    buckets,
    overflowBuckets: Uint32Array.from(overflowBuckets),
    overflowStarts: Uint32Array.from(overflowStarts),
    overflowLows: Uint8Array.from(overflowLows),
  };
}

/** Constant lookup tables (filled once at load, never written after): per shift, each field's lowest bit (to replicate a low part) and highest bit. */
const FIELD_LOW = new Uint32Array(8);
const FIELD_HIGH = new Uint32Array(8);
for (let shift = 1; shift <= 7; shift++) {
  for (let j = 0; j < capacity(shift); j++) FIELD_LOW[shift]! += 2 ** (j * shift);
  FIELD_HIGH[shift] = FIELD_LOW[shift]! * 2 ** (shift - 1);
}

/** Whether a bucket word (not an overflow word) holds `low`; branch-free SWAR "has a zero field" on word ^ low. */
export function wordHas(word: number, low: number, shift: number): number {
  const fieldLow = FIELD_LOW[shift]!;
  const diff = (word >>> 3) ^ Math.imul(low, fieldLow);
  const zero = (diff - fieldLow) & ~diff & FIELD_HIGH[shift]! & ((1 << ((word & COUNT_MASK) * shift)) - 1);
  return (zero | -zero) >>> 31;
}

/** wordHas for shift 7 (m >= 65, the default) with its constants inlined: the lookup's hot path. */
export function wordHas7(word: number, low: number): number {
  const diff = (word >>> 3) ^ Math.imul(low, 0x204081);
  const zero = (diff - 0x204081) & ~diff & 0x8102040 & ((1 << ((word & COUNT_MASK) * 7)) - 1);
  return (zero | -zero) >>> 31;
}

export function isOverflow(word: number): boolean {
  return (word & COUNT_MASK) === OVERFLOW;
}

export function overflowHas(filter: ShardFilter, x: number): boolean {
  const v = reduceRange(x, filter.range);
  const b = v >>> filter.shift;
  const low = v & ((1 << filter.shift) - 1);
  const ids = filter.overflowBuckets;
  let lo = 0;
  let hi = ids.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const id = ids[mid]!;
    if (id === b) {
      for (let i = filter.overflowStarts[mid]!; i < filter.overflowStarts[mid + 1]!; i++) if (filter.overflowLows[i] === low) return true;
      return false;
    }
    if (id < b) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Whether the shard claims the key with this filter hash (no false negatives). */
export function filterHas(filter: ShardFilter, x: number): boolean {
  if (filter.range === 0) return false;
  const v = reduceRange(x, filter.range);
  const word = filter.buckets[v >>> filter.shift]!;
  if (isOverflow(word)) return overflowHas(filter, x);
  return wordHas(word, v & ((1 << filter.shift) - 1), filter.shift) === 1;
}

/** Bytes held by the filter's typed arrays. */
export function filterBytes(filter: ShardFilter): number {
  return filter.buckets.byteLength + filter.overflowBuckets.byteLength + filter.overflowStarts.byteLength + filter.overflowLows.byteLength;
}
