// The peer-to-peer half of the agent: the EndpointSlices give the members and
// the directory; the node's keys (a view of the image inventory,
// internal/state/node-state.ts) go to the owners of their shards
// (internal/owners); misses on the local store ask a shard's owner which
// ready peers hold the key, same zone first. The pure parts (peer URL,
// candidates) are exported for tests.
import type { PeerSigner } from '../auth/sign.ts';
import { createCoordinatorClient } from '../coalesce/client.ts';
import { createCoalescer, type Coalescer } from '../coalesce/coalescer.ts';
import { createCoordinatorPicker } from '../coalesce/coordinator.ts';
import { createInProgressSource } from '../coalesce/in-progress-source.ts';
import { createFetchRecords, type FetchRecords } from '../coalesce/records.ts';
import { committedSize } from '../containerd/blobs.ts';
import type { ContentSource } from '../content/source.ts';
import type { CoalesceMetricsStats, IndexMetricsStats } from '../metrics/metrics.ts';
import type { IngestControl } from '../containerd/client.ts';
import { abortIngestsOf } from '../containerd/ingests.ts';
import type { ImageInventory } from '../containerd/inventory.ts';
import type { KubeClient } from '../kube/client.ts';
import { watchPeers, type PeerInfo, type PeerWatcher } from '../kube/peers.ts';
import { createPublisher, type Publisher } from '../kube/publisher.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { publishHooks } from '../metrics/record.ts';
import { createIndexNode, type IndexNode, type IndexTiming } from '../owners/index-node.ts';
import { statusAnnotations, UPDATED_ANNOTATION } from '../owners/status.ts';
import type { MemberView } from '../owners/owner.ts';
import { createPeerAgent, type Candidate } from '../peer/client.ts';
import { createPeerSource, type PeerSource } from '../peer/source.ts';
import type { RedirectSettings } from '../peer/redirects.ts';
import type { Hasher } from '../routing/hash.ts';
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
  serviceName: string;
  mirroredRegistries: readonly string[];
  resolveTags: boolean;
  /** At most one update of the status annotations per this interval. */
  statusIntervalMs: number;
  /** This node's zone (--zone; '': the own endpoint's zone in the EndpointSlice): same-zone peers first. */
  zone: string;
  metrics: Metrics;
  /** A peer that sends no byte of a blob for this long is given up on. */
  peerStallTimeoutMs?: number;
  /** Signs every request to a peer (peer auth); undefined: unsigned. */
  sign?: PeerSigner;
  /** Large blobs answered with a redirect to their holder (internal/peer/redirect-path.ts); undefined: streamed. */
  redirect?: RedirectSettings;
  /** Blob streams pulled from peers at once at most (0: no limit). */
  maxPeerStreams?: number;
  /** Cold rollouts: one upstream fetch per blob, the other nodes stream it from the fetcher's ingest; undefined: off. */
  coalesce?: CoalesceSettings;
  /** The peer-to-peer index's clocks (tests shorten them); each one left out is its default. */
  indexTiming?: Partial<IndexTiming>;
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
  /** The advertised keys (pushed to their owners on every change). */
  state: NodeState;
  /** This agent's part in the peer-to-peer index (the registry answers its owner routes). */
  index: IndexNode;
  /** Cold rollouts (with CoalesceSettings): this agent's records as a coordinator, and what peers may stream from its fetches. */
  coalesce: { records: FetchRecords; peerContent: ContentSource } | undefined;
  close(): Promise<void>;
}

/** A follow is cut to free a download slot only after waiting this long for its first byte. */
const YIELD_MIN_WAIT_MS = 500;

/** A fetch record lives this long after its last renew: the fetcher renews every second, so three renews may be lost. */
const FETCH_RECORD_TTL_MS = 3000;

/**
 * How often the status annotations are compared with the index (the publisher sends only changes, at most one per
 * --status-interval): every 10 s, or every interval when that is shorter (down to 1 s), so that a short interval
 * (tests, the demo) shows a change within about one interval rather than within 10 s.
 */
const STATUS_TICK_MS = 10_000;
const MIN_STATUS_TICK_MS = 1000;

/** Peers asked per key at most. */
export const CANDIDATE_LIMIT = 5;

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

/** Publishes the index's status on the own pod: soon after start, then only on change, at most once per --status-interval. */
function startStatus(options: PeerToPeerOptions, node: IndexNode): { close(): Promise<void> } {
  const publisher: Publisher = createPublisher({
    client: options.kube,
    namespace: options.namespace,
    podName: options.podName,
    logger: options.logger.child({ component: 'status' }),
    debounceMs: options.statusIntervalMs,
    maxBackoffMs: 30_000,
    ...publishHooks(options.metrics),
  });
  let last = '';
  const tick = (): void => {
    const { owner, holder, members } = node.stats();
    const owned = node.table()?.ownedBy(options.podName) ?? [];
    const annotations = statusAnnotations({ keys: holder.keys, owned, postings: owner.postings, members });
    const serialized = JSON.stringify(annotations);
    if (serialized === last) return;
    const first = last === '';
    last = serialized;
    publisher.publish({ ...annotations, [UPDATED_ANNOTATION]: new Date().toISOString() });
    if (first) void publisher.flush();
  };
  const first = setTimeout(tick, 2_000);
  const timer = setInterval(tick, Math.min(STATUS_TICK_MS, Math.max(MIN_STATUS_TICK_MS, options.statusIntervalMs)));
  first.unref();
  timer.unref();
  return {
    async close() {
      clearTimeout(first);
      clearInterval(timer);
      await publisher.close();
    },
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

/** What the index knows of an agent: this one from its own endpoint, the others from the directory. */
function memberView(watcher: PeerWatcher, self: string, name: string): MemberView | undefined {
  if (name === self) return { ready: watcher.ownReady(), zone: watcher.ownZone() };
  return watcher.peers().get(name);
}

function startIndex(options: PeerToPeerOptions, watcher: PeerWatcher, ownZone: () => string | undefined): IndexNode {
  const self = options.podName;
  return createIndexNode({
    self,
    hasher: options.hasher,
    members: () => readyMembers(watcher, self),
    member: (name) => memberView(watcher, self, name),
    candidate: (name) => peerCandidates([name], watcher.peers())[0],
    zone: ownZone,
    agent: createPeerAgent({ maxSocketsPerPeer: 8 }),
    sign: options.sign,
    log: options.logger,
    timing: options.indexTiming,
  });
}

function peerSource(options: PeerToPeerOptions, index: IndexNode, watcher: PeerWatcher, coalescing: Coalescing | undefined): PeerSource {
  const { logger } = options;
  return createPeerSource({
    logger: logger.child({ component: 'peer-source' }),
    resolveTags: options.resolveTags,
    idleTimeoutMs: options.peerStallTimeoutMs,
    sign: options.sign,
    maxStreams: options.maxPeerStreams,
    onWrongBytesDelivered: (digest) => void abortIngestsOf(options.ingests, digest, logger.child({ component: 'containerd-ingests' })),
    follow: coalescing?.coalescer.follow,
    redirect: options.redirect,
    candidates: async (key) => peerCandidates(await index.locate(key), watcher.peers()).slice(0, CANDIDATE_LIMIT),
  });
}

function indexStats(node: IndexNode): IndexMetricsStats {
  const { owner, holder, locator } = node.stats();
  return {
    keys: holder.keys,
    ownedShards: owner.owned,
    postings: owner.postings,
    pushesReceived: owner.pushes,
    lookupsAnswered: owner.lookups,
    pushes: holder.pushes,
    pushFailures: holder.pushFailures,
    fullShards: holder.fullShards,
    deltaShards: holder.deltaShards,
    resends: holder.resends,
    lookups: locator.lookups,
    cacheHits: locator.cacheHits,
    secondAsks: locator.secondAsks,
    ownerFailures: locator.ownerFailures,
  };
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
  const self = options.podName;
  const index: { node: IndexNode | undefined } = { node: undefined };
  const watcher = watchPeers({
    client: options.kube,
    namespace: options.namespace,
    serviceName: options.serviceName,
    self,
    logger: logger.child({ component: 'peers' }),
    onChange(name, peer) {
      if (peer === undefined) index.node?.removeAgent(name);
      index.node?.membershipChanged();
    },
    onOwnReady: () => index.node?.membershipChanged(),
  });
  // --zone wins; else the own endpoint's zone (from the node's topology label, via the EndpointSlice).
  const ownZone = (): string | undefined => (options.zone === '' ? watcher.ownZone() : options.zone);
  const node = startIndex(options, watcher, ownZone);
  index.node = node;
  node.membershipChanged();
  const state = createNodeState({
    inventory: options.inventory,
    mirroredRegistries: options.mirroredRegistries,
    logger: logger.child({ component: 'state' }),
    onChange: (keys) => node.setKeys(keys),
  });
  // A fetch waiting for a download slot of containerd's gets one: a follow with no byte yet is cut (fetch-path.ts).
  const slots = { yield: (): boolean => false };
  const coalescing = options.coalesce === undefined ? undefined : startCoalescing(options, options.coalesce, watcher, () => void slots.yield());
  const source = peerSource(options, node, watcher, coalescing);
  const status = startStatus(options, node);
  slots.yield = () => source.yieldWaitingFollow(YIELD_MIN_WAIT_MS);
  options.metrics.readFrom({
    peerSource: () => source.stats(),
    index: () => indexStats(node),
    peerDirectory: () => watcher.peers(),
    coalesce: coalescing === undefined ? undefined : () => coalesceStats(coalescing),
  });
  return {
    source,
    state,
    index: node,
    coalesce: coalescing === undefined ? undefined : { records: coalescing.records, peerContent: coalescing.peerContent },
    async close() {
      state.close();
      source.close();
      node.close();
      coalescing?.coalescer.close();
      await Promise.allSettled([status.close(), watcher.close()]);
    },
  };
}
