// The peer-to-peer half of the agent: the node's keys (a view of the image
// inventory, internal/state/node-state.ts) are encoded into the summary
// annotations of the own pod, with a generation that only grows; the peers'
// pods and EndpointSlices feed the peer index and the directory; misses on
// the local store go to the ready peers that claim the key, same zone first.
// The pure parts (generation, peer URL, candidates) are exported for tests.
import type { PeerSigner } from '../auth/sign.ts';
import { createCoordinatorClient } from '../coalesce/client.ts';
import { createCoalescer, type Coalescer } from '../coalesce/coalescer.ts';
import { createCoordinatorPicker } from '../coalesce/coordinator.ts';
import { createInProgressSource } from '../coalesce/in-progress-source.ts';
import { createFetchRecords, type FetchRecords } from '../coalesce/records.ts';
import { committedSize } from '../containerd/blobs.ts';
import type { ContentSource } from '../content/source.ts';
import type { CoalesceMetricsStats } from '../metrics/metrics.ts';
import type { IngestControl } from '../containerd/client.ts';
import { abortIngestsOf } from '../containerd/ingests.ts';
import type { ImageInventory } from '../containerd/inventory.ts';
import type { KubeClient } from '../kube/client.ts';
import { watchPeers, type PeerInfo, type PeerWatcher } from '../kube/peers.ts';
import { createPublisher, type Publisher } from '../kube/publisher.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { publishHooks, recordSummary } from '../metrics/record.ts';
import { createPeerAgent, type Candidate } from '../peer/client.ts';
import { createPeerSource, type PeerSource } from '../peer/source.ts';
import { UPDATED_ANNOTATION } from '../routing/annotations.ts';
import { encodeSummary } from '../routing/encode.ts';
import type { Hasher } from '../routing/hash.ts';
import { createPeerIndex, type PeerIndex } from '../routing/peer-index.ts';
import { createNodeState, type NodeState } from '../state/node-state.ts';

export interface PeerToPeerOptions {
  kube: KubeClient;
  /** The node's image inventory: its mirrored images become the advertised keys. */
  inventory: ImageInventory;
  /** containerd's ingests: one that got wrong bytes from a peer is aborted. */
  ingests: IngestControl;
  hasher: Hasher;
  logger: Logger;
  podName: string;
  namespace: string;
  peerSelector: string;
  serviceName: string;
  mirroredRegistries: readonly string[];
  resolveTags: boolean;
  publishDebounceMs: number;
  summaryShards: number;
  /** This node's zone (--zone; '': the own endpoint's zone in the EndpointSlice): same-zone peers first. */
  zone: string;
  metrics: Metrics;
  /** A peer that sends no byte of a blob for this long is given up on. */
  peerStallTimeoutMs?: number;
  /** Signs every request to a peer (peer auth); undefined: unsigned. */
  sign?: PeerSigner;
  /** Blob streams pulled from peers at once at most (0: no limit). */
  maxPeerStreams?: number;
  /** Cold rollouts: one upstream fetch per blob, the other nodes stream it from the fetcher's ingest; undefined: off. */
  coalesce?: CoalesceSettings;
}

export interface CoalesceSettings {
  /** An ask to a digest's coordinator that is not answered within this is "nobody is fetching". */
  coordinatorTimeoutMs: number;
  /** A fetch whose ingest does not grow for this long is over (the coordinator drops it, followers are cut). */
  fetchStallMs: number;
  /** containerd's content directory (ingests and blobs are read from it). */
  contentPath: string;
  /** containerd's namespace of the node's images. */
  namespace: string;
}

export interface PeerToPeer {
  source: PeerSource;
  /** The advertised keys (published on every change). */
  state: NodeState;
  /** Cold rollouts (with CoalesceSettings): this agent's records as a coordinator, and what peers may stream from its fetches. */
  coalesce: { records: FetchRecords; peerContent: ContentSource } | undefined;
  close(): Promise<void>;
}

/** A follow is cut to free a download slot only after waiting this long for its first byte. */
const YIELD_MIN_WAIT_MS = 500;

/** A fetch record lives this long after its last renew: the fetcher renews every second, so three renews may be lost. */
const FETCH_RECORD_TTL_MS = 3000;

/** Peers asked per key at most. */
export const CANDIDATE_LIMIT = 5;

/** The next summary generation: a millisecond timestamp, and always above the previous one (a clock step back or two changes in 1 ms). */
export function nextGeneration(previous: number, nowMs: number): number {
  return Math.max(previous + 1, nowMs);
}

/** http://ip:port, the IPv6 address in brackets. */
export function peerUrl(ip: string, port: number): string {
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

/** The peers to ask for a key: those the index names (same zone first), that the directory knows and that are ready. */
export function peerCandidates(names: readonly string[], directory: ReadonlyMap<string, PeerInfo>): Candidate[] {
  return names.flatMap((name) => {
    const peer = directory.get(name);
    return peer === undefined || !peer.ready ? [] : [{ name, url: peerUrl(peer.ip, peer.port) }];
  });
}

/** Encodes the keys into summary annotations and hands them to the publisher, each time with a newer generation. */
function summaryPublisher(options: PeerToPeerOptions, publisher: Publisher): (keys: ReadonlySet<string>) => void {
  const summaryLog = options.logger.child({ component: 'summary' });
  let generation = 0;
  return (keys) => {
    generation = nextGeneration(generation, Date.now());
    const { annotations, stats } = encodeSummary(keys, {
      hasher: options.hasher,
      shards: options.summaryShards,
      generation,
      onDegrade: (event) => summaryLog.warn({ event }, 'summary over budget: degraded to a higher false-positive rate'),
    });
    summaryLog.debug({ keys: stats.keys, bytes: stats.bytes, bytesPerKey: stats.bytesPerKey }, 'summary encoded');
    recordSummary(options.metrics, stats);
    publisher.publish({ ...annotations, [UPDATED_ANNOTATION]: new Date(generation).toISOString() });
  };
}

/** The ready agents: the ready peers, and this one when its own endpoint is ready (every agent counts the same ones). */
function readyMembers(watcher: PeerWatcher, self: string): string[] {
  const members: string[] = [];
  for (const peer of watcher.peers().values()) if (peer.ready) members.push(peer.name);
  if (watcher.ownReady()) members.push(self);
  return members;
}

/** Cold-rollout coordination: the records this agent keeps as a coordinator, the coalescer that asks and follows. */
function startCoalescing(options: PeerToPeerOptions, settings: CoalesceSettings, watcher: PeerWatcher, onUnstarted: () => void): Coalescing {
  const self = options.podName;
  const log = options.logger.child({ component: 'coalesce' });
  const records = createFetchRecords({ ttlMs: FETCH_RECORD_TTL_MS, isAlive: (name) => name === self || watcher.peers().get(name)?.ready === true });
  const coalescer = createCoalescer({
    self,
    members: () => readyMembers(watcher, self),
    candidate: (name) => peerCandidates([name], watcher.peers())[0],
    pick: createCoordinatorPicker(options.hasher),
    records,
    client: createCoordinatorClient({ self, agent: createPeerAgent({ maxSocketsPerPeer: 8 }), timeoutMs: settings.coordinatorTimeoutMs, sign: options.sign }),
    fetches: {
      ingests: options.ingests,
      isCommitted: async (digest) => (await committedSize(settings.contentPath, digest)) !== undefined,
      stallMs: settings.fetchStallMs,
      onUnstarted,
      log,
    },
    log,
  });
  const ingestBytes = { sent: 0 };
  const peerContent = createInProgressSource({
    fetches: coalescer.fetches,
    contentPath: settings.contentPath,
    namespace: settings.namespace,
    stallMs: settings.fetchStallMs,
    onIngestBytes: (bytes) => (ingestBytes.sent += bytes),
  });
  return { records, coalescer, peerContent, ingestBytes };
}

interface Coalescing {
  records: FetchRecords;
  coalescer: Coalescer;
  peerContent: ContentSource;
  ingestBytes: { sent: number };
}

function peerSource(options: PeerToPeerOptions, index: PeerIndex, watcher: PeerWatcher, coalescing: Coalescing | undefined): PeerSource {
  const { logger } = options;
  // --zone wins; else the own endpoint's zone (from the node's topology label, via the EndpointSlice).
  const ownZone = (): string | undefined => (options.zone === '' ? watcher.ownZone() : options.zone);
  return createPeerSource({
    logger: logger.child({ component: 'peer-source' }),
    resolveTags: options.resolveTags,
    idleTimeoutMs: options.peerStallTimeoutMs,
    sign: options.sign,
    maxStreams: options.maxPeerStreams,
    onWrongBytesDelivered: (digest) => void abortIngestsOf(options.ingests, digest, logger.child({ component: 'containerd-ingests' })),
    follow: coalescing?.coalescer.follow,
    candidates: (key) => peerCandidates(index.lookup(key, { zone: ownZone(), limit: CANDIDATE_LIMIT }), watcher.peers()),
  });
}

function coalesceStats(coalescing: Coalescing): CoalesceMetricsStats {
  return {
    ...coalescing.coalescer.stats(),
    ...coalescing.records.stats(),
    fetches: coalescing.coalescer.fetches.size(),
    ingestBytes: coalescing.ingestBytes.sent,
  };
}

export function startPeerToPeer(options: PeerToPeerOptions): PeerToPeer {
  const { logger } = options;
  const index = createPeerIndex({ self: options.podName, hasher: options.hasher });
  const watcher = watchPeers({
    client: options.kube,
    namespace: options.namespace,
    labelSelector: options.peerSelector,
    serviceName: options.serviceName,
    self: options.podName,
    index,
    logger: logger.child({ component: 'peers' }),
  });
  const publisher = createPublisher({
    client: options.kube,
    namespace: options.namespace,
    podName: options.podName,
    logger: logger.child({ component: 'publisher' }),
    debounceMs: options.publishDebounceMs,
    maxBackoffMs: 10_000,
    ...publishHooks(options.metrics),
  });
  const state = createNodeState({
    inventory: options.inventory,
    mirroredRegistries: options.mirroredRegistries,
    logger: logger.child({ component: 'state' }),
    onChange: summaryPublisher(options, publisher),
  });
  // A fetch waiting for a download slot of containerd's gets one: a follow with no byte yet is cut (fetch-path.ts).
  const slots = { yield: (): boolean => false };
  const coalescing = options.coalesce === undefined ? undefined : startCoalescing(options, options.coalesce, watcher, () => void slots.yield());
  const source = peerSource(options, index, watcher, coalescing);
  slots.yield = () => source.yieldWaitingFollow(YIELD_MIN_WAIT_MS);
  options.metrics.readFrom({
    peerSource: () => source.stats(),
    peerIndex: () => index.stats(),
    peerDirectory: () => watcher.peers(),
    coalesce: coalescing === undefined ? undefined : () => coalesceStats(coalescing),
  });
  return {
    source,
    state,
    coalesce: coalescing === undefined ? undefined : { records: coalescing.records, peerContent: coalescing.peerContent },
    async close() {
      state.close();
      source.close();
      coalescing?.coalescer.close();
      await Promise.allSettled([publisher.close(), watcher.close()]);
    },
  };
}
