// The peer-to-peer half of `mirra registry`: the node's keys are encoded into
// the summary annotations of the own pod; the peers' pods and EndpointSlices
// feed the peer index; misses on the local store go to the peers that claim
// the key. Wiring only.
import type { PeerSigner } from '../internal/auth/sign.ts';
import type { ContainerdClient } from '../internal/containerd/client.ts';
import type { ContainerdChange } from '../internal/containerd/events.ts';
import type { KubeClient } from '../internal/kube/client.ts';
import { createPublisher } from '../internal/kube/publisher.ts';
import { watchPeers } from '../internal/kube/peers.ts';
import { abortIngestsOf } from '../internal/containerd/ingests.ts';
import type { Logger } from '../internal/log/logger.ts';
import type { Metrics } from '../internal/metrics/metrics.ts';
import { publishHooks, recordSummary } from '../internal/metrics/record.ts';
import { createPeerSource, type PeerSource } from '../internal/peer/source.ts';
import { UPDATED_ANNOTATION } from '../internal/routing/annotations.ts';
import { encodeSummary } from '../internal/routing/encode.ts';
import type { Hasher } from '../internal/routing/hash.ts';
import { createPeerIndex } from '../internal/routing/peer-index.ts';
import { createNodeState } from '../internal/state/node-state.ts';

export interface PeerToPeerOptions {
  kube: KubeClient;
  client: ContainerdClient;
  hasher: Hasher;
  logger: Logger;
  podName: string;
  namespace: string;
  peerSelector: string;
  serviceName: string;
  mirroredRegistries: readonly string[];
  contentPath: string;
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
  observe(change: ContainerdChange): void;
  /** The first scan of containerd; publishing follows on its own. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export function startPeerToPeer(options: PeerToPeerOptions): PeerToPeer {
  const { logger, hasher } = options;
  const index = createPeerIndex({ self: options.podName, hasher });
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
  const summaryLog = logger.child({ component: 'summary' });
  let generation = 0;
  const state = createNodeState({
    client: options.client,
    mirroredRegistries: options.mirroredRegistries,
    contentPath: options.contentPath,
    logger: logger.child({ component: 'state' }),
    onChange: (keys) => {
      generation = Math.max(generation + 1, Date.now());
      const { annotations, stats } = encodeSummary(keys, {
        hasher,
        shards: options.summaryShards,
        generation,
        onDegrade: (event) => summaryLog.warn({ event }, 'summary over budget: degraded to a higher false-positive rate'),
      });
      summaryLog.debug({ keys: stats.keys, bytes: stats.bytes, bytesPerKey: stats.bytesPerKey }, 'summary encoded');
      recordSummary(options.metrics, stats);
      publisher.publish({ ...annotations, [UPDATED_ANNOTATION]: new Date(generation).toISOString() });
    },
  });
  // --zone wins; else the own endpoint's zone (from the node's topology label, via the EndpointSlice).
  const ownZone = (): string | undefined => (options.zone === '' ? watcher.ownZone() : options.zone);
  const source = createPeerSource({
    logger: logger.child({ component: 'peer-source' }),
    resolveTags: options.resolveTags,
    idleTimeoutMs: options.peerStallTimeoutMs,
    sign: options.sign,
    maxStreams: options.maxPeerStreams,
    onWrongBytesDelivered: (digest) => void abortIngestsOf(options.client, digest, logger.child({ component: 'containerd-ingests' })),
    candidates: (key) => {
      const directory = watcher.peers();
      return index.lookup(key, { zone: ownZone(), limit: 5 }).flatMap((name) => {
        const peer = directory.get(name);
        return peer === undefined || !peer.ready ? [] : [{ name, url: `http://${peer.ip.includes(':') ? `[${peer.ip}]` : peer.ip}:${peer.port}` }];
      });
    },
  });
  options.metrics.readFrom({ peerSource: () => source.stats(), peerIndex: () => index.stats(), peerDirectory: () => watcher.peers() });
  return {
    source,
    observe: (change) => state.observe(change),
    start: () => state.refresh(),
    async close() {
      state.close();
      source.close();
      await Promise.allSettled([publisher.close(), watcher.close()]);
    },
  };
}
