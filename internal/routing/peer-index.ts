// The peer index: every peer's decoded summary, its readiness and zone, and
// the lookup of the peers that may have a key. Pure and in-memory; the kube
// layer feeds it from the pod and EndpointSlice watches.
import { decodeSummary, type PeerSummary, type ReusableSummary } from './decode.ts';
import { SummaryError } from './errors.ts';
import { rendezvousWeight, type Hasher, type KeyHash } from './hash.ts';
import { createOrderScratch, orderCandidates } from './order.ts';
import { clearSlot, columnBytes, createColumns, ensureCapacity, moveSlot, SATURATED, writeSlot } from './peer-columns.ts';
import { scan } from './peer-scan.ts';

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
  /** Bytes of the bucket arenas and per-peer columns. */
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
  summary: ReusableSummary | undefined;
  slot: number;
}

const NO_ZONE = -1;
const UNKNOWN_ZONE = -2;

export function createPeerIndex(options: { self: string; hasher: Hasher }): PeerIndex {
  const { self, hasher } = options;
  const byName = new Map<string, Entry>();
  const entries: Entry[] = [];
  const zoneIds = new Map<string, number>();
  const columns = createColumns(64);
  let shardDecodes = 0;
  let slots = new Int32Array(64);
  let tiers = new Uint8Array(64);
  let weights = new Uint32Array(64);
  const scratch = createOrderScratch(64);

  const zoneIdOf = (zone: string | undefined): number => {
    if (zone === undefined) return NO_ZONE;
    let id = zoneIds.get(zone);
    if (id === undefined) zoneIds.set(zone, (id = zoneIds.size));
    return id;
  };

  const entryOf = (name: string): Entry => {
    let entry = byName.get(name);
    if (entry === undefined) {
      const seed = hasher.hash(name);
      entry = { name, seedHi: seed.hi, seedLo: seed.lo, zoneId: NO_ZONE, ready: false, summary: undefined, slot: entries.length };
      byName.set(name, entry);
      entries.push(entry);
      ensureCapacity(columns, entries.length);
      if (slots.length < columns.capacity) {
        slots = new Int32Array(columns.capacity);
        tiers = new Uint8Array(columns.capacity);
        weights = new Uint32Array(columns.capacity);
      }
    }
    return entry;
  };

  const store = (entry: Entry, summary: ReusableSummary | undefined): void => {
    const saturated = summary?.header.mode === 'all';
    const filters = writeSlot(columns, entry.slot, { ...entry, saturated, filters: summary?.filters ?? [] });
    entry.summary = summary === undefined ? undefined : { header: summary.header, shardTags: summary.shardTags, filters };
  };

  const upsertPeer = (name: string, update: PeerUpdate): UpsertResult => {
    if (name === self) return { status: 'self', decodedShards: 0 };
    const entry = entryOf(name);
    entry.zoneId = zoneIdOf(update.zone);
    entry.ready = update.ready;
    let summary: PeerSummary | undefined;
    try {
      summary = decodeSummary(update.annotations, { previous: entry.summary, tag: hasher.digest });
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

  const removePeer = (name: string): boolean => {
    const entry = byName.get(name);
    if (entry === undefined) return false;
    byName.delete(name);
    const last = entries.pop()!;
    if (last !== entry) {
      moveSlot(columns, last.slot, entry.slot);
      entries[entry.slot] = last;
      last.slot = entry.slot;
    } else {
      clearSlot(columns, entry.slot);
    }
    return true;
  };

  const lookupHash = (hash: KeyHash, lookupOptions: LookupOptions = {}): string[] => {
    const zone = lookupOptions.zone;
    const callerZone = zone === undefined ? NO_ZONE : (zoneIds.get(zone) ?? UNKNOWN_ZONE);
    const count = scan(columns, entries.length, hash, slots);
    const { state, zones, seedHi, seedLo } = columns;
    for (let i = 0; i < count; i++) {
      const p = slots[i]!;
      // Tier: same zone (0) before other zones (2); saturated summaries (+1) after exact ones.
      tiers[i] = (callerZone === NO_ZONE || zones[p] === callerZone ? 0 : 2) + (state[p] === SATURATED ? 1 : 0);
      weights[i] = rendezvousWeight(hash, seedHi[p]!, seedLo[p]!);
    }
    const wanted = lookupOptions.limit ?? count;
    const limit = Number.isFinite(wanted) ? Math.max(0, Math.min(count, Math.floor(wanted))) : count;
    const order = orderCandidates(count, tiers, weights, scratch, limit);
    const names = new Array<string>(limit);
    for (let i = 0; i < limit; i++) names[i] = entries[slots[order[i]!]!]!.name;
    return names;
  };

  return {
    upsertPeer,
    removePeer,
    setReady(name: string, ready: boolean): void {
      if (name === self) return;
      const entry = entryOf(name);
      entry.ready = ready;
      store(entry, entry.summary);
    },
    lookup: (key: string, lookupOptions?: LookupOptions) => lookupHash(hasher.hash(key), lookupOptions),
    lookupHash,
    stats(): PeerIndexStats {
      let candidates = 0;
      for (const e of entries) if (e.ready && e.summary !== undefined) candidates++;
      return { peers: entries.length, candidates, shardDecodes, filterBytes: columnBytes(columns) };
    },
  };
}
