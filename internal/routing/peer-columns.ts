// Column store behind the peer index's lookup. One slot per peer (slots are
// stable: a removed peer's slot is reused by the next new one). Peers are
// grouped by shard count S (normally one group); per group and shard index,
// each slot's range sits in parallel arrays and its values in the cell table
// (cell-table.ts) of its block of BLOCK_PEERS slots, so that a lookup
// (peer-scan.ts) reads one cell per block instead of one bucket per peer.
import {
  BLOCK_PEERS,
  createCellTable,
  createNarrowScratch,
  createWideScratch,
  NARROW_MAX_RANGE,
  replacePeer,
  tableBytes,
  tableEntries,
  type CellScratch,
  type CellTable,
  type Entries,
  type PeerValues,
  type ShardValues,
} from './cell-table.ts';

/** Slot states: not a candidate, exact filters, saturated (claims everything). */
export const NOT_CANDIDATE = 0;
export const FILTERED = 1;
export const SATURATED = 2;

export interface ShardColumn {
  /** range / 2^32 for slots in narrow tables (floor(x * scale) is exact up to 2^21), else -1 (wide: use `ranges`); 0 outside the group. */
  scales: Float64Array;
  ranges: Float64Array;
  /** Per block: the cell tables of this shard index (undefined: no member of the block has values there). */
  readonly narrow: (CellTable<Uint16Array> | undefined)[];
  readonly wide: (CellTable<Int32Array> | undefined)[];
  /** Per slot: where its values are (NONE, NARROW, WIDE). */
  kinds: Uint8Array;
  /** Slots with values in wide tables (normally 0: the scan skips them). */
  wideMembers: number;
  /** The stored shards (values released: they live in the tables); compared by identity to skip unchanged shards. */
  readonly filters: (ShardValues | undefined)[];
}

export interface ShardGroup {
  readonly shards: number;
  readonly columns: ShardColumn[];
  members: number;
}

export interface PeerColumns {
  capacity: number;
  state: Uint8Array;
  /** 1 where the state is FILTERED, else 0 (the scan's branch-free mask). */
  filtered: Uint8Array;
  /** Shard count of the slot's group (0: none). */
  groupOf: Uint16Array;
  zones: Int32Array;
  seedHi: Uint32Array;
  seedLo: Uint32Array;
  readonly groups: Map<number, ShardGroup>;
  /** Slots in state SATURATED (they claim every key). */
  saturated: Int32Array;
  readonly narrowScratch: CellScratch<Uint16Array>;
  readonly wideScratch: CellScratch<Int32Array>;
}

export interface SlotValues {
  readonly ready: boolean;
  readonly zoneId: number;
  readonly seedHi: number;
  readonly seedLo: number;
  readonly saturated: boolean;
  /** The peer's shards (empty when it has no usable summary or is saturated). */
  readonly filters: readonly ShardValues[];
}

const NO_VALUES = new Uint32Array(0);
/** No values (what leaveGroup stores). */
const NO_PEER_VALUES: PeerValues = { values: NO_VALUES, range: 0 };

export function createColumns(capacity: number): PeerColumns {
  return {
    capacity,
    state: new Uint8Array(capacity),
    filtered: new Uint8Array(capacity),
    groupOf: new Uint16Array(capacity),
    zones: new Int32Array(capacity),
    seedHi: new Uint32Array(capacity),
    seedLo: new Uint32Array(capacity),
    groups: new Map(),
    saturated: new Int32Array(0),
    narrowScratch: createNarrowScratch(),
    wideScratch: createWideScratch(),
  };
}

function blocksFor(capacity: number): number {
  return Math.ceil(capacity / BLOCK_PEERS);
}

function newColumn(capacity: number): ShardColumn {
  return {
    scales: new Float64Array(capacity),
    ranges: new Float64Array(capacity),
    narrow: Array.from({ length: blocksFor(capacity) }, () => undefined),
    wide: Array.from({ length: blocksFor(capacity) }, () => undefined),
    kinds: new Uint8Array(capacity),
    wideMembers: 0,
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
  columns.filtered = grown(columns.filtered, new Uint8Array(n));
  columns.groupOf = grown(columns.groupOf, new Uint16Array(n));
  columns.zones = grown(columns.zones, new Int32Array(n));
  columns.seedHi = grown(columns.seedHi, new Uint32Array(n));
  columns.seedLo = grown(columns.seedLo, new Uint32Array(n));
  for (const group of columns.groups.values()) {
    for (const column of group.columns) {
      column.scales = grown(column.scales, new Float64Array(n));
      column.ranges = grown(column.ranges, new Float64Array(n));
      column.kinds = grown(column.kinds, new Uint8Array(n));
      while (column.narrow.length < blocksFor(n)) column.narrow.push(undefined);
      while (column.wide.length < blocksFor(n)) column.wide.push(undefined);
      while (column.filters.length < n) column.filters.push(undefined);
    }
  }
  columns.capacity = n;
}

const NONE = 0;
const NARROW = 1;
const WIDE = 2;

function replaceIn<E extends Entries>(tables: (CellTable<E> | undefined)[], scratch: CellScratch<E>, slot: number, peer: PeerValues): void {
  const block = Math.floor(slot / BLOCK_PEERS);
  let table = tables[block];
  if (table === undefined) {
    if (peer.values.length === 0) return;
    table = tables[block] = createCellTable(scratch);
  }
  replacePeer(table, slot % BLOCK_PEERS, peer, scratch);
  if (tableEntries(table) === 0) tables[block] = undefined;
}

/** Puts the slot's values for one shard index into its block's narrow or wide table (no values: takes them out). */
function storeValues(columns: PeerColumns, column: ShardColumn, slot: number, peer: PeerValues): void {
  const { values, range } = peer;
  const kind = values.length === 0 ? NONE : range <= NARROW_MAX_RANGE ? NARROW : WIDE;
  const was = column.kinds[slot];
  // The table the slot leaves gets no values, at the range the slot had in it
  // (column.ranges is updated after this): a shard that grew past 2^21 values
  // leaves the narrow table, which cannot take the new, wide range.
  const before = column.ranges[slot] ?? 0;
  const none = values.length === 0 ? peer : before === 0 ? NO_PEER_VALUES : { values: NO_VALUES, range: before };
  if (was === NARROW || kind === NARROW) replaceIn(column.narrow, columns.narrowScratch, slot, kind === NARROW ? peer : none);
  if (was === WIDE || kind === WIDE) replaceIn(column.wide, columns.wideScratch, slot, kind === WIDE ? peer : none);
  column.wideMembers += (kind === WIDE ? 1 : 0) - (was === WIDE ? 1 : 0);
  column.kinds[slot] = kind;
}

function leaveGroup(columns: PeerColumns, slot: number): void {
  const group = columns.groups.get(columns.groupOf[slot]!);
  columns.groupOf[slot] = 0;
  if (group === undefined) return;
  for (const column of group.columns) {
    storeValues(columns, column, slot, NO_PEER_VALUES);
    column.scales[slot] = 0;
    column.ranges[slot] = 0;
    column.filters[slot] = undefined;
  }
  if (--group.members === 0) columns.groups.delete(group.shards);
}

function setState(columns: PeerColumns, slot: number, state: number): void {
  const was = columns.state[slot];
  columns.state[slot] = state;
  columns.filtered[slot] = state === FILTERED ? 1 : 0;
  if ((was === SATURATED) === (state === SATURATED)) return;
  const list = Array.from(columns.saturated).filter((s) => s !== slot);
  if (state === SATURATED) list.push(slot);
  columns.saturated = Int32Array.from(list);
}

/**
 * Writes a peer's state into its slot and returns its shards as stored
 * (values moved into the cell tables). Pass those back next time: an
 * identical shard object is not copied again.
 */
export function writeSlot(columns: PeerColumns, slot: number, peer: SlotValues): ShardValues[] {
  const state = !peer.ready || (!peer.saturated && peer.filters.length === 0) ? NOT_CANDIDATE : peer.saturated ? SATURATED : FILTERED;
  setState(columns, slot, state);
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
    storeValues(columns, column, slot, filter);
    const stored = { range: filter.range, keys: filter.keys, values: NO_VALUES };
    column.scales[slot] = filter.range <= NARROW_MAX_RANGE ? filter.range / 4294967296 : -1;
    column.ranges[slot] = filter.range;
    column.filters[slot] = stored;
    return stored;
  });
}

/** Empties the slot (its peer left). */
export function clearSlot(columns: PeerColumns, slot: number): void {
  leaveGroup(columns, slot);
  setState(columns, slot, NOT_CANDIDATE);
  columns.zones[slot] = 0;
  columns.seedHi[slot] = 0;
  columns.seedLo[slot] = 0;
}

/** Bytes of the cell tables and per-slot columns. */
export function columnBytes(columns: PeerColumns): number {
  let bytes = columns.capacity * 15;
  for (const group of columns.groups.values()) {
    for (const column of group.columns) {
      bytes += columns.capacity * 17;
      for (const table of [...column.narrow, ...column.wide]) if (table !== undefined) bytes += tableBytes(table);
    }
  }
  return bytes;
}
