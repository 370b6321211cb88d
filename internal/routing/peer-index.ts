// The peer index: every peer's decoded summary, its readiness and zone, and
// the lookup of the peers that may have a key. Pure and in-memory; the kube
// layer feeds it from the pod and EndpointSlice watches.
import type { ShardValues } from './cell-table.ts';
import { decodeShards, type DecodedShards } from './decode.ts';
import type { ShardCode } from './gcs.ts';
import { SummaryError } from './errors.ts';
import { rendezvousWeight32, type Hasher, type KeyHash } from './hash.ts';
import { createOrderScratch, orderByKeys, orderKey } from './order.ts';
import { clearSlot, columnBytes, createColumns, ensureCapacity, SATURATED, writeSlot, type PeerColumns } from './peer-columns.ts';
import { createScanScratch, scan } from './peer-scan.ts';

export interface PeerUpdate {
  zone?: string | undefined;
  ready: boolean;
  /** The pod's annotations (all of them, or only the summary's). */
  annotations: Readonly<Record<string, string | undefined>> | undefined;
}

export interface UpsertResult {
  /** ok: summary in use; none: the pod has no summary yet; invalid: see error; self: ignored. */
  readonly status: 'ok' | 'none' | 'invalid' | 'self';
  /** Shards decoded by this call (unchanged shards are reused). */
  readonly decodedShards: number;
  readonly error?: SummaryError;
}

export interface LookupOptions {
  /** The caller's zone: peers in it come first. */
  zone?: string | undefined;
  /** At most this many peers (default: all). */
  limit?: number;
}

export interface PeerIndexStats {
  readonly peers: number;
  /** Ready peers with a usable summary. */
  readonly candidates: number;
  /** Shards decoded since the index was created. */
  readonly shardDecodes: number;
  /** Bytes of the cell tables and per-peer columns. */
  readonly filterBytes: number;
}

export interface PeerIndex {
  upsertPeer(name: string, update: PeerUpdate): UpsertResult;
  removePeer(name: string): boolean;
  /** Readiness from the EndpointSlice; creates the peer (without summary) when unknown. */
  setReady(name: string, ready: boolean): void;
  /** Ready peers whose summary claims the key, never self: same zone first, then by rendezvous hash. */
  lookup(key: string, options?: LookupOptions): string[];
  lookupHash(hash: KeyHash, options?: LookupOptions): string[];
  stats(): PeerIndexStats;
}

interface Entry {
  readonly name: string;
  readonly seedHi: number;
  readonly seedLo: number;
  zoneId: number;
  ready: boolean;
  /** The usable summary as stored in the columns (undefined: none or invalid). */
  summary: StoredSummary | undefined;
  slot: number;
}

type StoredSummary = Pick<DecodedShards<ShardValues>, 'header' | 'shardTags' | 'filters'>;

/** The index keeps a decoded shard's values as they are (the cell tables dedupe them). */
const shardValues = (code: ShardCode): ShardValues => ({ range: code.values.length * code.m, keys: code.values.length, values: code.values });

const NO_ZONE = -1;
const UNKNOWN_ZONE = -2;

/** The index's peers by name and by slot, their columns, and the lookup's per-slot work arrays. */
interface PeerSlots {
  readonly byName: Map<string, Entry>;
  /** Peer names by slot ('' when free): one packed array, so that naming 500 candidates misses no cache lines on Entry objects. */
  readonly slotNames: string[];
  /** Free slots, reused by the next new peers (lowest first, so that blocks stay full). */
  readonly freeSlots: number[];
  readonly columns: PeerColumns;
  /** The lookup's candidate slots and their sort keys (grown with the columns). */
  slots: Int32Array;
  keys: Float64Array;
}

function createPeerSlots(): PeerSlots {
  return { byName: new Map(), slotNames: [], freeSlots: [], columns: createColumns(64), slots: new Int32Array(64), keys: new Float64Array(64) };
}

/** The peer's entry, created (in a free slot) when unknown. */
function entryOf(peers: PeerSlots, name: string, hasher: Hasher): Entry {
  let entry = peers.byName.get(name);
  if (entry === undefined) {
    const { slotNames, columns } = peers;
    const seed = hasher.hash(name);
    const slot = peers.freeSlots.pop() ?? slotNames.length;
    entry = { name, seedHi: seed.hi, seedLo: seed.lo, zoneId: NO_ZONE, ready: false, summary: undefined, slot };
    peers.byName.set(name, entry);
    slotNames[slot] = name;
    ensureCapacity(columns, slotNames.length);
    if (peers.slots.length < columns.capacity) {
      peers.slots = new Int32Array(columns.capacity);
      peers.keys = new Float64Array(columns.capacity);
    }
  }
  return entry;
}

function removeEntry(peers: PeerSlots, name: string): boolean {
  const entry = peers.byName.get(name);
  if (entry === undefined) return false;
  peers.byName.delete(name);
  clearSlot(peers.columns, entry.slot);
  peers.slotNames[entry.slot] = '';
  peers.freeSlots.push(entry.slot);
  peers.freeSlots.sort((a, b) => b - a);
  return true;
}

export function createPeerIndex(options: { self: string; hasher: Hasher }): PeerIndex {
  const { self, hasher } = options;
  const peers = createPeerSlots();
  const { byName, slotNames, columns } = peers;
  const zoneIds = new Map<string, number>();
  let shardDecodes = 0;
  const scratch = createOrderScratch(64);
  const scanScratch = createScanScratch();

  const zoneIdOf = (zone: string | undefined): number => {
    if (zone === undefined) return NO_ZONE;
    let id = zoneIds.get(zone);
    if (id === undefined) zoneIds.set(zone, (id = zoneIds.size));
    return id;
  };

  const store = (entry: Entry, summary: StoredSummary | undefined): void => {
    const saturated = summary?.header.mode === 'all';
    const filters = writeSlot(columns, entry.slot, { ...entry, saturated, filters: summary?.filters ?? [] });
    entry.summary = summary === undefined ? undefined : { header: summary.header, shardTags: summary.shardTags, filters };
  };

  const upsertPeer = (name: string, update: PeerUpdate): UpsertResult => {
    if (name === self) return { status: 'self', decodedShards: 0 };
    const entry = entryOf(peers, name, hasher);
    entry.zoneId = zoneIdOf(update.zone);
    entry.ready = update.ready;
    let summary: DecodedShards<ShardValues> | undefined;
    try {
      summary = decodeShards(update.annotations, shardValues, { previous: entry.summary, tag: hasher.digest });
    } catch (err) {
      if (!(err instanceof SummaryError)) throw err;
      store(entry, undefined);
      return { status: 'invalid', decodedShards: 0, error: err };
    }
    store(entry, summary);
    const decodedShards = summary?.decodedShards ?? 0;
    shardDecodes += decodedShards;
    return { status: summary === undefined ? 'none' : 'ok', decodedShards };
  };

  const lookupHash = (hash: KeyHash, lookupOptions: LookupOptions = {}): string[] => {
    const zone = lookupOptions.zone;
    const callerZone = zone === undefined ? NO_ZONE : (zoneIds.get(zone) ?? UNKNOWN_ZONE);
    const { slots, keys } = peers;
    const count = scan(columns, hash, slots, scanScratch);
    const { state, zones, seedHi, seedLo } = columns;
    const { hi, lo } = hash;
    for (let i = 0; i < count; i++) {
      const p = slots[i]!;
      // Tier: same zone (0) before other zones (2); saturated summaries (+1) after exact ones.
      const tier = (callerZone === NO_ZONE || zones[p] === callerZone ? 0 : 2) + (state[p] === SATURATED ? 1 : 0);
      keys[i] = orderKey(tier, rendezvousWeight32(hi, lo, seedHi[p]!, seedLo[p]!));
    }
    const wanted = lookupOptions.limit ?? count;
    const limit = Number.isFinite(wanted) ? Math.max(0, Math.min(count, Math.floor(wanted))) : count;
    const order = orderByKeys(count, keys, scratch, limit);
    const names = new Array<string>(limit);
    for (let i = 0; i < limit; i++) names[i] = slotNames[slots[order[i]!]!]!;
    return names;
  };

  return {
    upsertPeer,
    removePeer: (name: string) => removeEntry(peers, name),
    setReady(name: string, ready: boolean): void {
      if (name === self) return;
      const entry = entryOf(peers, name, hasher);
      entry.ready = ready;
      store(entry, entry.summary);
    },
    lookup: (key: string, lookupOptions?: LookupOptions) => lookupHash(hasher.hash(key), lookupOptions),
    lookupHash,
    stats(): PeerIndexStats {
      let candidates = 0;
      for (const e of byName.values()) if (e.ready && e.summary !== undefined) candidates++;
      return { peers: byName.size, candidates, shardDecodes, filterBytes: columnBytes(columns) };
    },
  };
}
