// The lookup's scan over the peer columns: which peers claim a key. It runs
// in passes (indices, gather, compare): a fused loop keeps fewer cache misses
// in flight and is 2-5x slower at 1,000 peers. The passes stay in this one
// function on purpose: split into helpers (or with a per-group compare) the
// scan measured ~50% slower. Keep the gather loop minimal.
import { FILTERED, NOT_CANDIDATE, type PeerColumns } from './peer-columns.ts';
import { jumpHash, reduceRange, type KeyHash } from './hash.ts';
import { isOverflow, overflowHas, wordHas } from './shard-filter.ts';

/** Writes into `out` the slots (below `used`) whose peer claims the key; returns how many. */
export function scan(columns: PeerColumns, used: number, hash: KeyHash, out: Int32Array): number {
  const { index, words, lows, shifts } = columns.scratch;
  const x = hash.x;
  let first = true;
  // Normally one group (one shard count). Slots outside a group have scale,
  // offset and shift 0 in its columns: they read word 0 (the empty bucket)
  // and OR nothing into the words, lows and shifts of their own group.
  for (const group of columns.groups.values()) {
    const column = group.columns[jumpHash(hash.hi, hash.lo, group.shards)]!;
    const { scales, ranges } = column;
    const offsets = column.arena.offsets;
    const groupShifts = column.shifts;
    const data = column.arena.words;
    if (first) {
      // Pass 1: value, bucket index and low part per slot (sequential reads only).
      for (let p = 0; p < used; p++) {
        const scale = scales[p]!;
        const v = scale >= 0 ? Math.floor(x * scale) : reduceRange(x, ranges[p]!);
        const shift = groupShifts[p]!;
        index[p] = offsets[p]! + (v >>> shift);
        lows[p] = v & ((1 << shift) - 1);
      }
      // Pass 2: the gather, one random read per slot.
      for (let p = 0; p < used; p++) words[p] = data[index[p]!]!;
      shifts.set(groupShifts.subarray(0, used));
    } else {
      for (let p = 0; p < used; p++) {
        const scale = scales[p]!;
        const v = scale >= 0 ? Math.floor(x * scale) : reduceRange(x, ranges[p]!);
        const shift = groupShifts[p]!;
        index[p] = offsets[p]! + (v >>> shift);
        lows[p] = lows[p]! | (v & ((1 << shift) - 1));
      }
      for (let p = 0; p < used; p++) words[p] = words[p]! | data[index[p]!]!;
      for (let p = 0; p < used; p++) shifts[p] = shifts[p]! | groupShifts[p]!;
    }
    first = false;
  }
  // Pass 3: compare; branch-free on the answer (every candidate slot is
  // written, hits advance the count). Saturated peers always claim.
  const state = columns.state;
  let count = 0;
  for (let p = 0; p < used; p++) {
    const st = state[p]!;
    if (st === NOT_CANDIDATE) continue;
    let hit = 1;
    if (st === FILTERED) {
      const word = words[p]!;
      hit = isOverflow(word) ? overflowHit(columns, p, hash) : wordHas(word, lows[p]!, shifts[p]!);
    }
    out[count] = p;
    count += hit;
  }
  return count;
}

function overflowHit(columns: PeerColumns, slot: number, hash: KeyHash): number {
  const group = columns.groups.get(columns.groupOf[slot]!)!;
  return overflowHas(group.columns[jumpHash(hash.hi, hash.lo, group.shards)]!.filters[slot]!, hash.x) ? 1 : 0;
}
