// The lookup's scan: which peers claim a key. Per shard group (normally one),
// the key's shard column, then per block of BLOCK_PEERS slots one cell of its
// cell table: the entries of every block member whose value interval meets the
// key's cell (~20 per block at 2,500 keys per shard). An entry claims the key
// when its low bits equal those of the member's reduceRange(x): exact, see
// cell-table.ts. Two passes (cell bounds for all blocks, then the entries)
// keep the blocks' cache misses in flight together. Wide tables (ranges over
// 2^21, rare) have their own loop. The loop bodies are what the lookup costs:
// keep them minimal (measured: a branch on the scale costs ~25%).
import { BLOCK_PEERS, CELL_SHIFT, NARROW_SHIFT, WIDE_SHIFT, type CellTable, type Entries } from './cell-table.ts';
import type { PeerColumns, ShardColumn } from './peer-columns.ts';
import { jumpHash, reduceRange, type KeyHash } from './hash.ts';

const NARROW_MASK = 2 ** NARROW_SHIFT - 1;
const WIDE_MASK = 2 ** WIDE_SHIFT - 1;

export interface ScanScratch {
  /** Per block: first entry and end of the key's cell. */
  from: Uint32Array;
  to: Uint32Array;
  /** Sink of pass 1's reads (kept so that they are not optimised away). */
  touched: number;
  /** The current lookup's output slots and the columns' FILTERED mask (set once per scan, read by pass 2). */
  out: Int32Array;
  filtered: Uint8Array;
}

export function createScanScratch(): ScanScratch {
  return { from: new Uint32Array(0), to: new Uint32Array(0), touched: 0, out: new Int32Array(0), filtered: new Uint8Array(0) };
}

/** Pass 1 of a table kind: the cell's bounds in every block, touching its first entry so that these cache misses overlap. */
function cellBounds(tables: readonly (CellTable<Entries> | undefined)[], cell: number, scratch: ScanScratch): void {
  const blocks = tables.length;
  if (scratch.from.length < blocks) {
    scratch.from = new Uint32Array(blocks * 2);
    scratch.to = new Uint32Array(blocks * 2);
  }
  const { from, to } = scratch;
  let touched = 0;
  for (let b = 0; b < blocks; b++) {
    const table = tables[b];
    if (table === undefined) {
      from[b] = to[b] = 0;
      continue;
    }
    const first = table.starts[cell]!;
    const end = table.starts[cell + 1]!;
    from[b] = first;
    to[b] = end;
    if (first < end) touched ^= table.entries[first]!;
  }
  scratch.touched = touched;
}

/**
 * Pass 2 over the column's narrow tables (ranges <= 2^21: v = floor(x * scale)
 * exactly), appending to scratch.out[count..]; returns the new count.
 * Branch-free (half of the entries hit for a popular key): (d - 1) >>> 31 is 1
 * iff d is 0.
 */
function scanNarrow(column: ShardColumn, x: number, count: number, scratch: ScanScratch): number {
  const { from, to, out, filtered } = scratch;
  const tables = column.narrow;
  const scales = column.scales;
  let n = count;
  for (let b = 0; b < tables.length; b++) {
    const end = to[b]!;
    let k = from[b]!;
    if (k === end) continue;
    const entries = tables[b]!.entries;
    const base = b * BLOCK_PEERS;
    for (; k < end; k++) {
      const e = entries[k]!;
      const slot = base + (e >>> NARROW_SHIFT);
      const v = Math.floor(x * scales[slot]!);
      out[n] = slot;
      n += ((((v ^ e) & NARROW_MASK) - 1) >>> 31) & filtered[slot]!;
    }
  }
  return n;
}

/** Pass 2 over the column's wide tables (any range: the exact two-step reduction). */
function scanWide(column: ShardColumn, x: number, count: number, scratch: ScanScratch): number {
  const { from, to, out, filtered } = scratch;
  const tables = column.wide;
  const ranges = column.ranges;
  let n = count;
  for (let b = 0; b < tables.length; b++) {
    const entries = tables[b]?.entries;
    if (entries === undefined) continue;
    const base = b * BLOCK_PEERS;
    for (let k = from[b]!; k < to[b]!; k++) {
      const e = entries[k]!;
      const slot = base + (e >>> WIDE_SHIFT);
      if (((reduceRange(x, ranges[slot]!) ^ e) & WIDE_MASK) === 0 && filtered[slot] === 1) out[n++] = slot;
    }
  }
  return n;
}

/** Writes into `out` the slots whose ready peer claims the key (filtered, then saturated); returns how many. */
export function scan(columns: PeerColumns, hash: KeyHash, out: Int32Array, scratch: ScanScratch): number {
  scratch.out = out;
  scratch.filtered = columns.filtered;
  let count = 0;
  for (const group of columns.groups.values()) {
    const column = group.columns[jumpHash(hash.hi, hash.lo, group.shards)]!;
    const cell = hash.x >>> CELL_SHIFT;
    cellBounds(column.narrow, cell, scratch);
    count = scanNarrow(column, hash.x, count, scratch);
    if (column.wideMembers > 0) {
      cellBounds(column.wide, cell, scratch);
      count = scanWide(column, hash.x, count, scratch);
    }
  }
  const saturated = columns.saturated;
  for (let i = 0; i < saturated.length; i++) out[count++] = saturated[i]!;
  return count;
}
