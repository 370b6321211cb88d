// Column store behind the peer index's lookup. One slot per peer. Peers are
// grouped by shard count S (normally one group); per group and shard index,
// each slot's filter metadata sits in parallel arrays and its bucket words in
// one arena, so a scan (peer-scan.ts) reads columns sequentially and does one
// random read per peer.
import { arenaBytes, createArena, freeRegion, growArenaSlots, moveRegion, storeRegion, type BucketArena } from './bucket-arena.ts';
import type { ShardFilter } from './shard-filter.ts';

/** Slot states: not a candidate, exact filters, saturated (claims everything). */
export const NOT_CANDIDATE = 0;
export const FILTERED = 1;
export const SATURATED = 2;

export interface ShardColumn {
  readonly arena: BucketArena;
  /** range / 2^32 when floor(x * scale) is exact (range <= 2^21), else -1 (use `ranges`); 0 outside the group. */
  scales: Float64Array;
  ranges: Float64Array;
  shifts: Uint8Array;
  /** The stored filters (bucket words released: they live in the arena). */
  filters: (ShardFilter | undefined)[];
}

export interface ShardGroup {
  readonly shards: number;
  readonly columns: ShardColumn[];
  members: number;
}

export interface PeerColumns {
  capacity: number;
  state: Uint8Array;
  /** Shard count of the slot's group (0: none). */
  groupOf: Uint16Array;
  zones: Int32Array;
  seedHi: Uint32Array;
  seedLo: Uint32Array;
  readonly groups: Map<number, ShardGroup>;
  scratch: { index: Int32Array; words: Uint32Array; lows: Uint8Array; shifts: Uint8Array };
}

export interface SlotValues {
  readonly ready: boolean;
  readonly zoneId: number;
  readonly seedHi: number;
  readonly seedLo: number;
  readonly saturated: boolean;
  /** The peer's shard filters (empty when it has no usable summary or is saturated). */
  readonly filters: readonly ShardFilter[];
}

const RELEASED = new Uint32Array(0);
/** Ranges up to 2^21: floor(x * range / 2^32) is exact as one double multiply. */
const EXACT_RANGE = 0x200000;

function newScratch(capacity: number): PeerColumns['scratch'] {
  return { index: new Int32Array(capacity), words: new Uint32Array(capacity), lows: new Uint8Array(capacity), shifts: new Uint8Array(capacity) };
}

export function createColumns(capacity: number): PeerColumns {
  return {
    capacity,
    state: new Uint8Array(capacity),
    groupOf: new Uint16Array(capacity),
    zones: new Int32Array(capacity),
    seedHi: new Uint32Array(capacity),
    seedLo: new Uint32Array(capacity),
    groups: new Map(),
    scratch: newScratch(capacity),
  };
}

function newColumn(capacity: number): ShardColumn {
  return {
    arena: createArena(capacity),
    scales: new Float64Array(capacity),
    ranges: new Float64Array(capacity),
    shifts: new Uint8Array(capacity),
    filters: Array.from({ length: capacity }, () => undefined),
  };
}

function grown<T extends Uint8Array | Uint16Array | Int32Array | Uint32Array | Float64Array>(old: T, next: T): T {
  next.set(old);
  return next;
}

/** Makes room for `slots` slots (doubling). */
export function ensureCapacity(columns: PeerColumns, slots: number): void {
  if (slots <= columns.capacity) return;
  const n = Math.max(slots, columns.capacity * 2);
  columns.state = grown(columns.state, new Uint8Array(n));
  columns.groupOf = grown(columns.groupOf, new Uint16Array(n));
  columns.zones = grown(columns.zones, new Int32Array(n));
  columns.seedHi = grown(columns.seedHi, new Uint32Array(n));
  columns.seedLo = grown(columns.seedLo, new Uint32Array(n));
  columns.scratch = newScratch(n);
  for (const group of columns.groups.values()) {
    for (const column of group.columns) {
      growArenaSlots(column.arena, n);
      column.scales = grown(column.scales, new Float64Array(n));
      column.ranges = grown(column.ranges, new Float64Array(n));
      column.shifts = grown(column.shifts, new Uint8Array(n));
      while (column.filters.length < n) column.filters.push(undefined);
    }
  }
  columns.capacity = n;
}

function leaveGroup(columns: PeerColumns, slot: number): void {
  const group = columns.groups.get(columns.groupOf[slot]!);
  columns.groupOf[slot] = 0;
  if (group === undefined) return;
  for (const column of group.columns) {
    freeRegion(column.arena, slot);
    column.scales[slot] = 0;
    column.ranges[slot] = 0;
    column.shifts[slot] = 0;
    column.filters[slot] = undefined;
  }
  if (--group.members === 0) columns.groups.delete(group.shards);
}

/**
 * Writes a peer's state into its slot and returns its filters as stored (bucket
 * words moved into the arenas). Pass those back next time: an identical
 * filter object is not copied again.
 */
export function writeSlot(columns: PeerColumns, slot: number, peer: SlotValues): ShardFilter[] {
  columns.state[slot] = !peer.ready || (!peer.saturated && peer.filters.length === 0) ? NOT_CANDIDATE : peer.saturated ? SATURATED : FILTERED;
  columns.zones[slot] = peer.zoneId;
  columns.seedHi[slot] = peer.seedHi;
  columns.seedLo[slot] = peer.seedLo;
  const shards = peer.filters.length;
  if (columns.groupOf[slot] !== shards) leaveGroup(columns, slot);
  if (shards === 0) return [];
  let group = columns.groups.get(shards);
  if (group === undefined) {
    group = { shards, columns: Array.from({ length: shards }, () => newColumn(columns.capacity)), members: 0 };
    columns.groups.set(shards, group);
  }
  if (columns.groupOf[slot] !== shards) {
    columns.groupOf[slot] = shards;
    group.members++;
  }
  return peer.filters.map((filter, s) => {
    const column = group.columns[s]!;
    if (column.filters[slot] === filter) return filter;
    storeRegion(column.arena, slot, filter.buckets);
    const stored = { ...filter, buckets: RELEASED };
    column.scales[slot] = filter.range <= EXACT_RANGE ? filter.range / 4294967296 : -1;
    column.ranges[slot] = filter.range;
    column.shifts[slot] = filter.shift;
    column.filters[slot] = stored;
    return stored;
  });
}

/** Moves slot `from` (the last one) into `to`, whose peer left. */
export function moveSlot(columns: PeerColumns, from: number, to: number): void {
  leaveGroup(columns, to);
  columns.state[to] = NOT_CANDIDATE;
  for (const name of ['state', 'groupOf', 'zones', 'seedHi', 'seedLo'] as const) columns[name][to] = columns[name][from]!;
  const group = columns.groups.get(columns.groupOf[from]!);
  for (const column of group?.columns ?? []) {
    moveRegion(column.arena, from, to);
    column.scales[to] = column.scales[from]!;
    column.ranges[to] = column.ranges[from]!;
    column.shifts[to] = column.shifts[from]!;
    column.filters[to] = column.filters[from];
    column.scales[from] = 0;
    column.ranges[from] = 0;
    column.shifts[from] = 0;
    column.filters[from] = undefined;
  }
  columns.state[from] = NOT_CANDIDATE;
  columns.groupOf[from] = 0;
}

export function clearSlot(columns: PeerColumns, slot: number): void {
  leaveGroup(columns, slot);
  columns.state[slot] = NOT_CANDIDATE;
}

/** Bytes of the arenas and per-slot columns. */
export function columnBytes(columns: PeerColumns): number {
  let bytes = columns.capacity * 20;
  for (const group of columns.groups.values()) for (const c of group.columns) bytes += arenaBytes(c.arena) + columns.capacity * 17;
  return bytes;
}
