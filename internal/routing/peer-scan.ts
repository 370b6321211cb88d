// The lookup's scan over the peer columns: which peers claim a key. It runs
// in passes (indices, gather, compare): a fused loop keeps fewer cache misses
// in flight and is 2-5x slower at 1,000 peers. Keep the gather loop minimal:
// every extra operation in it costs ~10 ns per peer.
import { EXACT_RANGE, FILTERED, SATURATED, type PeerColumns, type ShardColumn, type ShardGroup } from './peer-columns.ts';
import { jumpHash, reduceRange, type KeyHash } from './hash.ts';
import { isOverflow, overflowHas, wordHas, wordHas7 } from './shard-filter.ts';

/**
 * Passes 1 and 2 for one group: each slot's value, bucket index and low part
 * (sequential reads only), then one random read per slot. Slots outside the
 * group have scale, offset and shift 0: they read word 0, the empty bucket.
 */
function gather(column: ShardColumn, used: number, x: number, index: Int32Array, words: Uint32Array, lows: Uint8Array): void {
  const { scales, shifts: groupShifts } = column;
  const offsets = column.arena.offsets;
  for (let p = 0; p < used; p++) {
    const v = Math.floor(x * scales[p]!);
    const shift = groupShifts[p]!;
    index[p] = offsets[p]! + (v >>> shift);
    lows[p] = v & ((1 << shift) - 1);
  }
  if (column.inexact > 0) {
    // Shards over 2^21 values (bucketScale 0): the exact two-step reduction.
    const { ranges, shifts } = column;
    for (let p = 0; p < used; p++) {
      if (ranges[p]! <= EXACT_RANGE) continue;
      const v = reduceRange(x, ranges[p]!);
      index[p] = offsets[p]! + (v >>> shifts[p]!);
      lows[p] = v & ((1 << shifts[p]!) - 1);
    }
  }
  const data = column.arena.words;
  for (let p = 0; p < used; p++) words[p] = data[index[p]!]!;
}

/**
 * Pass 3 for one group: compare, branch-free on the answer (every member slot
 * is written, hits advance the count). Overflow buckets (~1%) are resolved
 * after the loop.
 */
function compare(columns: PeerColumns, group: ShardGroup, column: ShardColumn, used: number, x: number, out: Int32Array, start: number): number {
  const { state, groupOf } = columns;
  const { words, lows, index: pending } = columns.scratch;
  const shifts = column.shifts;
  const shards = group.shards;
  let count = start;
  let overflows = 0;
  for (let p = 0; p < used; p++) {
    if (state[p] !== FILTERED || groupOf[p] !== shards) continue;
    const word = words[p]!;
    let hit = 0;
    if (isOverflow(word)) {
      pending[overflows++] = p;
    } else {
      const shift = shifts[p]!;
      hit = shift === 7 ? wordHas7(word, lows[p]!) : wordHas(word, lows[p]!, shift);
    }
    out[count] = p;
    count += hit;
  }
  for (let i = 0; i < overflows; i++) {
    const p = pending[i]!;
    if (overflowHas(column.filters[p]!, x)) out[count++] = p;
  }
  return count;
}

/** Writes into `out` the slots (below `used`) whose peer claims the key; returns how many. */
export function scan(columns: PeerColumns, used: number, hash: KeyHash, out: Int32Array): number {
  const { index, words, lows } = columns.scratch;
  let count = 0;
  for (const group of columns.groups.values()) {
    const column = group.columns[jumpHash(hash.hi, hash.lo, group.shards)]!;
    gather(column, used, hash.x, index, words, lows);
    count = compare(columns, group, column, used, hash.x, out, count);
  }
  const state = columns.state;
  if (columns.saturated > 0) for (let p = 0; p < used; p++) if (state[p] === SATURATED) out[count++] = p;
  return count;
}
