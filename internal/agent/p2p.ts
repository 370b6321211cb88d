// The peer-to-peer half of the agent: the node's keys (a view of the image
// inventory, internal/state/node-state.ts) are encoded into the summary
// annotations of the own pod, with a generation that only grows; the peers'
// pods and EndpointSlices feed the peer index and the directory; misses on
// the local store go to the ready peers that claim the key, same zone first.
// The pure parts (generation, peer URL, candidates) are exported for tests.
import type { PeerSigner } from '../auth/sign.ts';
import type { IngestControl } from '../containerd/client.ts';
import { abortIngestsOf } from '../containerd/ingests.ts';
import type { ImageInventory } from '../containerd/inventory.ts';
import type { KubeClient } from '../kube/client.ts';
import { watchPeers, type PeerInfo } from '../kube/peers.ts';
import { createPublisher, type Publisher } from '../kube/publisher.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { publishHooks, recordSummary } from '../metrics/record.ts';
import type { Candidate } from '../peer/client.ts';
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
}

export interface PeerToPeer {
  source: PeerSource;
  /** The advertised keys (published on every change). */
  state: NodeState;
  close(): Promise<void>;
}

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

function peerSource(options: PeerToPeerOptions, index: PeerIndex, watcher: ReturnType<typeof watchPeers>): PeerSource {
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
    candidates: (key) => peerCandidates(index.lookup(key, { zone: ownZone(), limit: CANDIDATE_LIMIT }), watcher.peers()),
  });
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
  const source = peerSource(options, index, watcher);
  options.metrics.readFrom({ peerSource: () => source.stats(), peerIndex: () => index.stats(), peerDirectory: () => watcher.peers() });
  return {
    source,
    state,
    async close() {
      state.close();
      source.close();
      await Promise.allSettled([publisher.close(), watcher.close()]);
    },
  };
}
