// One shard's values for a block of up to BLOCK_PEERS peers, inverted so that
// a lookup reads one cell instead of one bucket per peer. The 32-bit
// filter-hash space is cut into CELLS equal cells; a peer's value v (the keys
// x with reduceRange(x, range) = v) is listed in every cell its x-interval
// meets, as one entry `local << shift | v mod 2^shift` (local: the peer's
// index in the block). Within one cell a peer's values span at most
// cell width x range / 2^32 + 1, so the low bits identify v there and a probe
// of x is exact:
//   narrow (Uint16Array): shift 10, for ranges <= 2^21 (span <= 257), the
//     normal case (2,500 keys at m = 104 is a range of 260,000), where the
//     lookup's floor(x * range / 2^32) is one exact double multiply;
//   wide (Int32Array): shift 24, for any range <= 2^32 (span <= 2^19 + 1).
// Entries per peer and shard: its distinct values plus one per cell boundary
// an interval crosses (~3% at m = 104 and 2,500 keys per shard).
import { reduceRange } from './hash.ts';

export const CELL_BITS = 13;
export const CELLS = 1 << CELL_BITS;
/** x >>> CELL_SHIFT is x's cell. */
export const CELL_SHIFT = 32 - CELL_BITS;
const CELL_WIDTH = 2 ** CELL_SHIFT;
/** Peers per block (at most 64: a narrow entry has 6 bits for the local index). */
export const BLOCK_PEERS = 64;
export const NARROW_SHIFT = 10;
export const WIDE_SHIFT = 24;
/** Largest range kept in narrow tables (up to 2^22 would fit the low bits; 2^21 keeps x * range exact in a double). */
export const NARROW_MAX_RANGE = 2 ** 21;

export type Entries = Uint16Array | Int32Array;

/** One decoded shard as the index takes it: the GCS values (sorted, duplicates allowed) and its range n * m. */
export interface ShardValues {
  readonly range: number;
  readonly keys: number;
  readonly values: Uint32Array;
}

/** What replacePeer stores for one peer: its values (sorted, duplicates allowed, each below `range`). */
export type PeerValues = Pick<ShardValues, 'values' | 'range'>;

/** A peer of a table as tableHas probes it: its index in the block and its range. */
export interface TableMember {
  readonly local: number;
  readonly range: number;
}

export interface CellTable<E extends Entries> {
  /** Cell c's entries are entries[starts[c] .. starts[c + 1]). */
  readonly starts: Int32Array;
  /** Capacity >= starts[CELLS]. */
  entries: E;
}

/** Work buffers of replacePeer for one entry kind, shared by all tables of an index. */
export interface CellScratch<E extends Entries> {
  readonly shift: number;
  readonly allocate: (length: number) => E;
  readonly own: Int32Array;
  added: E;
  merged: E;
}

export function createCellTable<E extends Entries>(scratch: CellScratch<E>): CellTable<E> {
  return { starts: new Int32Array(CELLS + 1), entries: scratch.allocate(0) };
}

function createScratch<E extends Entries>(shift: number, allocate: (length: number) => E): CellScratch<E> {
  return { shift, allocate, own: new Int32Array(CELLS + 1), added: allocate(0), merged: allocate(0) };
}

export function createNarrowScratch(): CellScratch<Uint16Array> {
  return createScratch(NARROW_SHIFT, (length) => new Uint16Array(length));
}

export function createWideScratch(): CellScratch<Int32Array> {
  return createScratch(WIDE_SHIFT, (length) => new Int32Array(length));
}

export function tableEntries(table: CellTable<Entries>): number {
  return table.starts[CELLS]!;
}

export function tableBytes(table: CellTable<Entries>): number {
  return table.starts.byteLength + table.entries.byteLength;
}

/** The smallest x with reduceRange(x, range) >= v, for 0 <= v <= range (2^32 for v = range). */
export function firstX(v: number, range: number): number {
  // v * 2^32 is exact; the quotient is off by at most one after rounding.
  let x = Math.ceil((v * 4294967296) / range);
  if (x > 0 && reduceRange(x - 1, range) >= v) x--;
  else if (x < 4294967296 && reduceRange(x, range) < v) x++;
  return x;
}

/**
 * Peer `local`'s entries (`local << shift` | low bits of each distinct value)
 * grouped by cell: cell starts into scratch.own, entries into scratch.added
 * (which must have room for values.length + CELLS).
 */
function peerCells(local: number, values: Uint32Array, range: number, scratch: CellScratch<Entries>): void {
  const { shift, own, added } = scratch;
  const tag = local << shift;
  const mask = 2 ** shift - 1;
  let pos = 0;
  let cell = 0;
  let previous = -1;
  own[0] = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v === previous) continue;
    previous = v;
    // The cells met by v's x-interval [firstX(v), firstX(v + 1)).
    const first = Math.floor(firstX(v, range) / CELL_WIDTH);
    const last = Math.floor((firstX(v + 1, range) - 1) / CELL_WIDTH);
    for (let c = first; c <= last; c++) {
      while (cell < c) own[++cell] = pos;
      added[pos++] = tag | (v & mask);
    }
  }
  while (cell < CELLS) own[++cell] = pos;
}

/**
 * The merge loop of replacePeer (a function of its own: V8 optimises it once,
 * not per call by on-stack replacement): the table's entries without peer
 * `local`'s, plus scratch.own/added, into scratch.merged; rewrites the table's
 * starts and returns the entry count.
 */
function mergeCells(table: CellTable<Entries>, local: number, scratch: CellScratch<Entries>): number {
  const { starts, entries: old } = table;
  const { shift, own, added, merged } = scratch;
  let pos = 0;
  let from = starts[0]!;
  for (let c = 0; c < CELLS; c++) {
    const to = starts[c + 1]!;
    starts[c] = pos;
    // Branch-free filter: every entry is written, the peer's own old ones are overwritten.
    for (let k = from; k < to; k++) {
      const e = old[k]!;
      merged[pos] = e;
      pos += e >>> shift === local ? 0 : 1;
    }
    for (let k = own[c]!, end = own[c + 1]!; k < end; k++) merged[pos++] = added[k]!;
    from = to;
  }
  starts[CELLS] = pos;
  return pos;
}

/**
 * Replaces the entries of peer `local` with those of `peer.values` (sorted,
 * duplicates allowed, each below `peer.range`, which must not exceed
 * NARROW_MAX_RANGE in a narrow table; empty to remove the peer).
 * O(table + CELLS): bound by memory traffic.
 */
export function replacePeer<E extends Entries>(table: CellTable<E>, local: number, peer: PeerValues, scratch: CellScratch<E>): void {
  const { values, range } = peer;
  if (!Number.isInteger(local) || local < 0 || local >= BLOCK_PEERS) throw new RangeError(`local index ${local} outside the block`);
  const shift = scratch.shift;
  if (shift === NARROW_SHIFT && range > NARROW_MAX_RANGE) throw new RangeError(`range ${range} too large for a narrow table`);
  const n = values.length;
  if (n === 0 || range === 0) {
    scratch.own.fill(0);
  } else {
    if (scratch.added.length < n + CELLS) scratch.added = scratch.allocate(n + CELLS);
    peerCells(local, values, range, scratch);
  }
  const bound = table.starts[CELLS]! + scratch.own[CELLS]!;
  if (scratch.merged.length < bound) scratch.merged = scratch.allocate(bound + (bound >>> 3));
  const old = table.entries;
  const merged = scratch.merged;
  const used = mergeCells(table, local, scratch);
  // The merged buffer becomes the table's when it wastes little (no copy);
  // else the entries are copied into a buffer of their size.
  if (merged.length <= used + (used >>> 3) + 1024) {
    table.entries = merged;
    scratch.merged = old;
  } else {
    if (used > old.length || used + (used >>> 3) + 1024 < old.length) table.entries = scratch.allocate(used + (used >>> 4));
    table.entries.set(merged.subarray(0, used));
  }
}

/** Whether peer `member.local` lists reduceRange(x, member.range) (the reference of the lookup's inlined probe). */
export function tableHas(table: CellTable<Entries>, shift: number, member: TableMember, x: number): boolean {
  const { local, range } = member;
  const cell = x >>> CELL_SHIFT;
  const mask = 2 ** shift - 1;
  const low = reduceRange(x, range) & mask;
  for (let k = table.starts[cell]!; k < table.starts[cell + 1]!; k++) {
    const e = table.entries[k]!;
    if (e >>> shift === local && (e & mask) === low) return true;
  }
  return false;
}
