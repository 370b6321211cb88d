// The node agent (`mirra registry`), started from its parsed configuration:
// one containerd client and one image inventory (internal/containerd/
// inventory.ts) fed by containerd's events, from which both the served store
// (only content of the mirrored registries' images; other digests miss from
// memory) and the advertised keys (p2p.ts) are derived; the registry app in
// front of the local store and the peers; the metrics server. cmd/registry.ts
// parses flags and signals around it; close() drains and stops it all.
import { localClientAllowList } from '../auth/allow.ts';
import type { PeerKeys } from '../auth/secret.ts';
import { createPeerSigner } from '../auth/sign.ts';
import { createRedirectSigner, createRedirectVerifier } from '../auth/redirect.ts';
import { createPeerVerifier } from '../auth/verify.ts';
import { formatListenAddress } from '../config/address.ts';
import type { agentFlags } from '../config/agent-flags.ts';
import type { parseFlags } from '../config/flags.ts';
import { createContainerdClient, type ContainerdClient } from '../containerd/client.ts';
import { watchChanges, type ChangeWatcher } from '../containerd/events.ts';
import { createImageInventory, type ImageInventory } from '../containerd/inventory.ts';
import { createContainerdStore, type ContainerdStore } from '../containerd/store.ts';
import { chainSources, storeSource } from '../content/source.ts';
import type { LoadedKubeConfig } from '../kube/config.ts';
import { createKubeClient, type KubeClient } from '../kube/client.ts';
import type { Logger } from '../log/logger.ts';
import { exposedGc, startIdleCollector, type IdleCollector } from '../memory/idle-collect.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { countResolves, recordRequest } from '../metrics/record.ts';
import { startMetricsServer } from '../metrics/server.ts';
import { createRegistryApp } from '../registry/app.ts';
import { drainServer, trackConnections } from '../registry/drain.ts';
import { resolvePressure } from '../registry/pressure.ts';
import { createPullGate, type PullGate } from '../pullauth/gate.ts';
import { createUpstreamProbe } from '../pullauth/upstream.ts';
import type { SendfileLoad } from '../registry/sendfile-addon.ts';
import { createHasher } from '../routing/hash.ts';
import { mirroredImages } from '../state/node-state.ts';
import { startPeerToPeer, type PeerToPeer } from './p2p.ts';

/** The values of the agent's flags (internal/config/agent-flags.ts). */
export type AgentFlags = ReturnType<typeof parseFlags<typeof agentFlags>>['values'];

export interface AgentConfig {
  flags: AgentFlags;
  logger: Logger;
  /** Where the Kubernetes API is (peer-to-peer on); undefined: local content only. */
  kubeConfig?: LoadedKubeConfig | undefined;
  /** Peer auth keys (--peer-secret-file); undefined: peer auth off. */
  peerKeys?: PeerKeys | undefined;
  /** The sendfile addon (--sendfile), or why there is none; undefined: none. */
  sendfile?: SendfileLoad | undefined;
}

export interface AgentCloseOptions {
  /** Settles when the drain must end at once (a second signal). */
  hurry?: Promise<unknown>;
  /** Called once the registry is closed, before the rest stops (e.g. to arm an exit watchdog). */
  onDrained?(): void;
}

export interface Agent {
  /** Not ready at once, drains the registry within the grace period, then stops everything else. */
  close(options?: AgentCloseOptions): Promise<void>;
}

/** The containerd side: client, the one inventory and its event feed, and the store derived from it. */
interface Node {
  client: ContainerdClient;
  inventory: ImageInventory;
  store: ContainerdStore;
}

function startNode(flags: AgentFlags, logger: Logger): Node {
  const client = createContainerdClient({ socket: flags.containerdSock, namespace: flags.containerdNamespace });
  const inventory = createImageInventory({ client, contentPath: flags.containerdContentPath, logger });
  const store = createContainerdStore({ client, contentPath: flags.containerdContentPath, logger, inventory });
  return { client, inventory, store };
}

async function startP2P(config: AgentConfig, node: Node, metrics: Metrics, kube: KubeClient): Promise<PeerToPeer> {
  const { flags, logger, peerKeys } = config;
  const p2p = startPeerToPeer({
    kube,
    inventory: node.inventory,
    ingests: node.client,
    hasher: await createHasher(),
    logger,
    podName: flags.podName,
    namespace: flags.podNamespace,
    serviceName: flags.serviceName,
    mirroredRegistries: flags.mirroredRegistries,
    resolveTags: flags.resolveTags,
    statusIntervalMs: flags.statusIntervalMs,
    zone: flags.zone,
    metrics,
    peerStallTimeoutMs: flags.peerStallTimeoutMs,
    maxPeerStreams: flags.maxPeerStreams,
    coalesce: flags.coalesce
      ? {
          coordinatorTimeoutMs: flags.coordinatorTimeoutMs,
          fetchStallMs: flags.fetchStallTimeoutMs,
          contentPath: flags.containerdContentPath,
          namespace: flags.containerdNamespace,
        }
      : undefined,
    sign: peerKeys === undefined ? undefined : createPeerSigner({ key: peerKeys.signing, self: flags.podName }),
    // Redirects are signed URLs: with peer auth only (without it, large blobs are streamed through the agent as the rest).
    redirect:
      peerKeys === undefined || flags.peerRedirectMinBytes === 'off'
        ? undefined
        : { minBytes: flags.peerRedirectMinBytes, sign: createRedirectSigner({ key: peerKeys.signing, self: flags.podName }) },
  });
  if (peerKeys === undefined)
    logger.warn("peer auth is off (no --peer-secret-file): anyone who reaches the registry port can fetch this node's images as a peer");
  return p2p;
}

/** How long the agent waits for a private registry's answer to its check of a pull (--verify-pull-access). */
const PULL_CHECK_TIMEOUT_MS = 5000;

/** --verify-pull-access: the gate of the listed registries (internal/pullauth); undefined when none is listed. */
function pullGate(flags: AgentFlags): PullGate | undefined {
  if (flags.verifyPullAccess.length === 0) return undefined;
  const registries = new Map(flags.verifyPullAccess.map((r) => [r.host, r.server]));
  return createPullGate({ registries, probe: createUpstreamProbe({ timeoutMs: PULL_CHECK_TIMEOUT_MS }) });
}

interface AppParts {
  node: Node;
  /** --local-only's allow list (undefined: any client). */
  localClients: ReturnType<typeof localClientAllowList> | undefined;
  metrics: Metrics;
  p2p: PeerToPeer | undefined;
  /** Told of every request but the kubelet's probes. */
  idle: IdleCollector | undefined;
  notReady(): string | undefined;
}

function createApp(config: AgentConfig, parts: AppParts): ReturnType<typeof createRegistryApp> {
  const { flags, logger, peerKeys } = config;
  // Only content of the mirrored registries' images is served, to containerd and to peers; other digests miss from memory.
  const local = storeSource(parts.node.store.imagedOnly(mirroredImages(flags.mirroredRegistries)));
  // Peers also get the blobs this node fetches from the upstream for them (a cold rollout), while they are written.
  const coalesce = parts.p2p?.coalesce;
  const forPeers = coalesce === undefined ? local : chainSources([local, coalesce.peerContent]);
  const app = createRegistryApp({
    store: parts.node.store,
    logger,
    mirroredRegistries: flags.mirroredRegistries,
    resolveTags: flags.resolveTags,
    notReady: parts.notReady,
    underPressure: resolvePressure(flags),
    concurrency: { maxRequests: flags.maxRequests, maxStreams: flags.maxStreams },
    timeouts: { idleTimeoutMs: flags.clientIdleTimeoutMs },
    localSource: forPeers,
    pullGate: pullGate(flags),
    fetchRecords: coalesce?.records,
    indexOwner: parts.p2p?.index.owner,
    source: countResolves(parts.metrics, parts.p2p === undefined ? local : chainSources([local, parts.p2p.source])),
    onRequest: (line) => {
      recordRequest(parts.metrics, line);
      if (line.handler !== 'probe') parts.idle?.activity();
    },
    peerVerifier: peerKeys === undefined ? undefined : createPeerVerifier({ keys: peerKeys.accepted, audience: flags.podName }),
    redirectVerifier: peerKeys === undefined ? undefined : createRedirectVerifier({ keys: peerKeys.accepted, audience: flags.podName }),
    localClients: parts.localClients,
    sendfile: config.sendfile?.addon,
  });
  if (peerKeys !== undefined && !flags.localOnly) {
    logger.warn(
      'peer auth is on but --local-only is off: any client that reaches the registry port can ask, unsigned, for what the peers have (as containerd does)',
    );
  }
  if (flags.localOnly && flags.nodeIp === '')
    logger.warn('--local-only without --node-ip (NODE_IP): unsigned requests are served to loopback and --local-clients only');
  return app;
}

function logListening(config: AgentConfig, localClients: AppParts['localClients']): void {
  const { flags, logger, peerKeys } = config;
  const sendfile = config.sendfile;
  if (sendfile?.addon !== undefined) logger.info({ addon: sendfile.path }, 'local blobs are sent with sendfile (plain TCP clients)');
  else logger.info(`local blobs are copied through buffers, not sent with sendfile: ${sendfile?.reason ?? 'no addon loaded'}`);
  logger.info(
    {
      addr: formatListenAddress(flags.registryAddr),
      containerdSock: flags.containerdSock,
      namespace: flags.containerdNamespace,
      mirroredRegistries: flags.mirroredRegistries,
      metricsAddr: flags.metricsAddr === undefined ? 'off' : formatListenAddress(flags.metricsAddr),
      peerAuth: peerKeys === undefined ? 'off' : 'on',
      localClients: localClients === undefined ? 'any' : localClients.entries,
    },
    'registry listening',
  );
}

/** How long the registry must be quiet before the heap is collected down (internal/memory/idle-collect.ts). */
const IDLE_COLLECT_QUIET_MS = 10_000;

/** The idle collection, when V8's gc extension is there (--expose-gc, as the chart and the image set). */
function startIdleCollection(logger: Logger): IdleCollector | undefined {
  const log = logger.child({ component: 'memory' });
  const collect = exposedGc();
  if (collect === undefined) {
    log.info('no --expose-gc in NODE_OPTIONS: the heap is not collected down when the agent is idle (the chart sets it)');
    return undefined;
  }
  const MiB = 1024 * 1024;
  return startIdleCollector({
    quietMs: IDLE_COLLECT_QUIET_MS,
    collect,
    onCollected: ({ ms, heapBefore, heapAfter }) =>
      log.debug(
        { ms: Math.round(ms), heapBeforeMiB: +(heapBefore / MiB).toFixed(1), heapAfterMiB: +(heapAfter / MiB).toFixed(1) },
        'idle: heap collected down',
      ),
  });
}

/** Starts the agent: containerd, the inventory's first walk, peer-to-peer (with a kube config), the registry listening. */
export async function startAgent(config: AgentConfig): Promise<Agent> {
  const { flags, logger } = config;
  const metrics = createMetrics();
  const metricsServer = flags.metricsAddr === undefined ? undefined : await startMetricsServer({ registry: metrics.registry, addr: flags.metricsAddr, logger });
  const node = startNode(flags, logger);
  const kube = config.kubeConfig === undefined ? undefined : createKubeClient(config.kubeConfig.target);
  const p2p = kube === undefined ? undefined : await startP2P(config, node, metrics, kube);
  if (kube === undefined) logger.info('no pod name (POD_NAME): peer-to-peer is off, serving local content only');
  const changes: ChangeWatcher = watchChanges({
    client: node.client,
    logger: logger.child({ component: 'containerd-events' }),
    onChange: (change) => node.inventory.observe(change),
  });
  // One walk feeds both the served view and the advertised keys (published on their own once known).
  await node.inventory
    .refresh(true)
    .catch((err: unknown) => logger.warn({ err }, 'initial scan of containerd failed; serving anyway; retrying in the background'));
  let draining = false;
  const idle = startIdleCollection(logger);
  const localClients = flags.localOnly ? localClientAllowList(flags.nodeIp, flags.localClients) : undefined;
  const app = createApp(config, {
    node,
    localClients,
    metrics,
    p2p,
    idle,
    notReady: () => (draining ? 'draining' : changes.connected ? undefined : 'containerd unreachable'),
  });
  const connections = trackConnections(app.server);
  await app.listen({ host: flags.registryAddr.host, port: flags.registryAddr.port });
  logListening(config, localClients);
  return {
    async close(options = {}) {
      // Not ready at once (an open connection asking /readyz gets 503); no new
      // connections; running streams get the grace period; the hurry cuts them.
      draining = true;
      await drainServer(app, { graceMs: flags.shutdownGraceMs, log: logger, hurry: options.hurry, connections });
      options.onDrained?.();
      idle?.stop();
      changes.close();
      node.inventory.close();
      await metricsServer?.close();
      await p2p?.close();
      kube?.close();
      node.client.close();
    },
  };
}
