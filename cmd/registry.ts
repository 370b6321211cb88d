// `mirra registry`: the agent on every node. Wiring only.
import { localClientAllowList } from '../internal/auth/allow.ts';
import { loadPeerKeys, PeerSecretError, type PeerKeys } from '../internal/auth/secret.ts';
import { createPeerSigner } from '../internal/auth/sign.ts';
import { createPeerVerifier } from '../internal/auth/verify.ts';
import { agentFlags } from '../internal/config/agent-flags.ts';
import { formatListenAddress } from '../internal/config/address.ts';
import { flagHelp, parseFlags, rejectExtraArguments, usageExit, wantsHelp } from '../internal/config/flags.ts';
import { createContainerdClient } from '../internal/containerd/client.ts';
import { watchChanges } from '../internal/containerd/events.ts';
import { createContainerdStore } from '../internal/containerd/store.ts';
import { containerdVersion } from '../internal/containerd/version.ts';
import { mirroredImages } from '../internal/state/node-state.ts';
import { checkContainerdConfig } from '../internal/containerd/preflight.ts';
import { loadKubeConfig, type LoadedKubeConfig } from '../internal/kube/config.ts';
import { createKubeClient } from '../internal/kube/client.ts';
import { KubeConfigError } from '../internal/kube/kubeconfig.ts';
import { createLogger } from '../internal/log/logger.ts';
import { createMetrics } from '../internal/metrics/metrics.ts';
import { countResolves, recordRequest } from '../internal/metrics/record.ts';
import { startMetricsServer } from '../internal/metrics/server.ts';
import { createRegistryApp } from '../internal/registry/app.ts';
import { drainServer, trackConnections } from '../internal/registry/drain.ts';
import { resolvePressure } from '../internal/registry/pressure.ts';
import { chainSources, storeSource } from '../internal/content/source.ts';
import { createHasher } from '../internal/routing/hash.ts';
import { startPeerToPeer, type PeerToPeer } from './p2p.ts';

const HELP = `usage: mirra registry [flags]

Serves the OCI distribution read API (/v2/) from the node's containerd content
store, for containerd to use as a registry mirror.

flags (each can also be set by its environment variable):
${flagHelp(agentFlags)}
`;

export async function runRegistry(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(HELP);
    return 0;
  }
  let config;
  try {
    const parsed = parseFlags(agentFlags, argv, env);
    rejectExtraArguments(parsed.positionals);
    config = parsed.values;
  } catch (err) {
    return usageExit('registry', err);
  }

  let kubeConfig: LoadedKubeConfig | undefined;
  if (config.podName !== '') {
    try {
      kubeConfig = loadKubeConfig({ kubeconfigPath: config.kubeconfig, env });
    } catch (err) {
      if (!(err instanceof KubeConfigError)) throw err;
      process.stderr.write(`mirra registry: ${err.message}\n`);
      return 1;
    }
  }

  let peerKeys: PeerKeys | undefined;
  if (config.peerSecretFile !== '') {
    try {
      peerKeys = await loadPeerKeys(config.peerSecretFile);
    } catch (err) {
      if (!(err instanceof PeerSecretError)) throw err;
      process.stderr.write(`mirra registry: ${err.message}\n`);
      return 1;
    }
  }
  const localClients = config.localOnly ? localClientAllowList(config.nodeIp, config.localClients) : undefined;

  if (config.preflight) {
    // A containerd that does not answer yet is an unknown version to the check (taken as 2.1 or later).
    const problem = await checkContainerdConfig(config.containerdConfigPath, await containerdVersion(config.containerdSock));
    if (problem !== undefined) {
      process.stderr.write(`mirra registry: ${problem}\n`);
      return 1;
    }
  }

  const logger = createLogger(config.logLevel).child({ node: config.nodeName || undefined, pod: config.podName || undefined });
  // From here on SIGTERM/SIGINT stop the agent gracefully (below), even during start-up.
  const stopSignal = nextSignal();
  const metrics = createMetrics();
  const metricsServer = config.metricsAddr === undefined ? undefined : await startMetricsServer({ registry: metrics.registry, addr: config.metricsAddr, logger });
  const client = createContainerdClient({ socket: config.containerdSock, namespace: config.containerdNamespace });
  const store = createContainerdStore({ client, contentPath: config.containerdContentPath, logger });
  let p2p: PeerToPeer | undefined;
  const kube = kubeConfig === undefined ? undefined : createKubeClient(kubeConfig.target);
  if (kube !== undefined) {
    p2p = startPeerToPeer({
      kube,
      client,
      hasher: await createHasher(),
      logger,
      podName: config.podName,
      namespace: config.podNamespace,
      peerSelector: config.peerSelector,
      serviceName: config.serviceName,
      mirroredRegistries: config.mirroredRegistries,
      contentPath: config.containerdContentPath,
      resolveTags: config.resolveTags,
      publishDebounceMs: config.publishDebounceMs,
      summaryShards: config.summaryShards,
      zone: config.zone,
      metrics,
      peerStallTimeoutMs: config.peerStallTimeoutMs,
      maxPeerStreams: config.maxPeerStreams,
      sign: peerKeys === undefined ? undefined : createPeerSigner({ key: peerKeys.signing, self: config.podName }),
    });
    if (peerKeys === undefined) logger.warn('peer auth is off (no --peer-secret-file): anyone who reaches the registry port can fetch this node\'s images as a peer');
  } else {
    logger.info('no pod name (POD_NAME): peer-to-peer is off, serving local content only');
  }
  const changes = watchChanges({
    client,
    logger: logger.child({ component: 'containerd-events' }),
    onChange: (change) => {
      store.observe(change);
      p2p?.observe(change);
    },
  });
  await store.refresh().catch((err: unknown) => logger.warn({ err }, 'initial scan of containerd failed; serving anyway'));
  await p2p?.start().catch((err: unknown) => logger.warn({ err }, 'initial key scan failed; retrying in the background'));
  // Only content of the mirrored registries' images is served, to containerd and to peers; other digests miss from memory.
  const local = storeSource(store.imagedOnly(mirroredImages(config.mirroredRegistries)));
  let draining = false;
  const app = createRegistryApp({
    store,
    logger,
    mirroredRegistries: config.mirroredRegistries,
    resolveTags: config.resolveTags,
    notReady: () => (draining ? 'draining' : changes.connected ? undefined : 'containerd unreachable'),
    underPressure: resolvePressure(config),
    concurrency: { maxRequests: config.maxRequests, maxStreams: config.maxStreams },
    timeouts: { idleTimeoutMs: config.clientIdleTimeoutMs },
    localSource: local,
    source: countResolves(metrics, p2p === undefined ? local : chainSources([local, p2p.source])),
    onRequest: (line) => recordRequest(metrics, line),
    peerVerifier: peerKeys === undefined ? undefined : createPeerVerifier({ keys: peerKeys.accepted, audience: config.podName }),
    localClients,
  });
  if (peerKeys !== undefined && !config.localOnly) {
    logger.warn('peer auth is on but --local-only is off: any client that reaches the registry port can ask, unsigned, for what the peers have (as containerd does)');
  }
  if (config.localOnly && config.nodeIp === '') logger.warn('--local-only without --node-ip (NODE_IP): unsigned requests are served to loopback and --local-clients only');

  const connections = trackConnections(app.server);
  await app.listen({ host: config.registryAddr.host, port: config.registryAddr.port });
  logger.info(
    {
      addr: formatListenAddress(config.registryAddr),
      containerdSock: config.containerdSock,
      namespace: config.containerdNamespace,
      mirroredRegistries: config.mirroredRegistries,
      metricsAddr: config.metricsAddr === undefined ? 'off' : formatListenAddress(config.metricsAddr),
      peerAuth: peerKeys === undefined ? 'off' : 'on',
      localClients: localClients === undefined ? 'any' : localClients.entries,
    },
    'registry listening',
  );

  const signal = await stopSignal;
  // Not ready at once (an open connection asking /readyz gets 503); no new
  // connections; running streams get the grace period; a second signal cuts them.
  draining = true;
  logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
  await drainServer(app, { graceMs: config.shutdownGraceMs, log: logger, hurry: nextSignal(), connections });
  // A handle left open by a library must not keep a stopping agent alive.
  setTimeout(() => {
    logger.warn('still running 3 s after the registry closed: exiting');
    process.exit(0);
  }, 3000).unref();
  changes.close();
  await metricsServer?.close();
  await p2p?.close();
  kube?.close();
  client.close();
  return 0;
}

/** The next SIGTERM or SIGINT (while waiting, neither kills the process). */
function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
