// One growable Uint32Array holding the bucket words of one shard column for
// all peers (region per slot), so that the lookup's gather loop is a single
// typed-array read per peer. Word 0 is a permanent empty bucket: slots without
// a filter point at it. Replaced regions become garbage; when the arena is
// full it compacts instead of growing if over half of it is garbage, so
// copying stays amortised O(1) per stored word.

export interface BucketArena {
  words: Uint32Array;
  /** Words in use, garbage included (word 0 counts). */
  used: number;
  garbage: number;
  /** Per slot: first word of its region (0: none) and its length. */
  offsets: Int32Array;
  lengths: Int32Array;
}

const MIN_WORDS = 1024;

export function createArena(slots: number): BucketArena {
  return { words: new Uint32Array(MIN_WORDS), used: 1, garbage: 0, offsets: new Int32Array(slots), lengths: new Int32Array(slots) };
}

export function growArenaSlots(arena: BucketArena, slots: number): void {
  const offsets = new Int32Array(slots);
  offsets.set(arena.offsets);
  const lengths = new Int32Array(slots);
  lengths.set(arena.lengths);
  arena.offsets = offsets;
  arena.lengths = lengths;
}

export function freeRegion(arena: BucketArena, slot: number): void {
  arena.garbage += arena.lengths[slot]!;
  arena.offsets[slot] = 0;
  arena.lengths[slot] = 0;
}

/** Moves a region to another slot (the target's own region is freed). */
export function moveRegion(arena: BucketArena, from: number, to: number): void {
  freeRegion(arena, to);
  arena.offsets[to] = arena.offsets[from]!;
  arena.lengths[to] = arena.lengths[from]!;
  arena.offsets[from] = 0;
  arena.lengths[from] = 0;
}

function compact(arena: BucketArena, extraWords: number): void {
  const live = arena.used - arena.garbage;
  const words = new Uint32Array(Math.max(MIN_WORDS, Math.ceil((live + extraWords) * 1.5)));
  let at = 1;
  for (let slot = 0; slot < arena.offsets.length; slot++) {
    const length = arena.lengths[slot]!;
    if (length === 0) continue;
    const offset = arena.offsets[slot]!;
    words.set(arena.words.subarray(offset, offset + length), at);
    arena.offsets[slot] = at;
    at += length;
  }
  arena.words = words;
  arena.used = at;
  arena.garbage = 0;
}

/** Replaces the slot's region with a copy of `data`. */
export function storeRegion(arena: BucketArena, slot: number, data: Uint32Array): void {
  freeRegion(arena, slot);
  if (data.length === 0) return;
  if (arena.used + data.length > arena.words.length) {
    if (arena.garbage * 2 > arena.used) {
      compact(arena, data.length);
    } else {
      const words = new Uint32Array(Math.max(arena.words.length * 2, arena.used + data.length));
      words.set(arena.words.subarray(0, arena.used));
      arena.words = words;
    }
  }
  arena.words.set(data, arena.used);
  arena.offsets[slot] = arena.used;
  arena.lengths[slot] = data.length;
  arena.used += data.length;
}

export function arenaBytes(arena: BucketArena): number {
  return arena.words.byteLength + arena.offsets.byteLength + arena.lengths.byteLength;
}
