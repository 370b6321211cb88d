// The flags of `mirra registry`, the agent that runs on every node.
import { LOG_LEVELS, type LogLevel } from '../log/logger.ts';
import { isValidRegistryHost } from '../oci/reference.ts';
import { parseListenAddress, type ListenAddress } from './address.ts';
import { parseBoolean, parseDurationMs, parseIntegerIn, parseList, parseNonEmpty, type FlagSpec } from './flags.ts';

function flag<T>(spec: FlagSpec<T>): FlagSpec<T> {
  return spec;
}

/** An RFC 1123 DNS label or subdomain, as Kubernetes names are; empty allowed (unset). */
function parseDnsName(raw: string): string {
  if (raw !== '' && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(raw)) throw new Error('not a valid Kubernetes name');
  return raw;
}

export const agentFlags = {
  containerdSock: flag({
    name: 'containerd-sock',
    env: 'MIRRA_CONTAINERD_SOCK',
    description: "path of containerd's gRPC unix socket",
    defaultValue: '/run/containerd/containerd.sock',
    parse: parseNonEmpty,
  }),
  containerdNamespace: flag({
    name: 'containerd-namespace',
    env: 'MIRRA_CONTAINERD_NAMESPACE',
    description: 'containerd namespace whose images are served',
    defaultValue: 'k8s.io',
    parse: (raw) => {
      if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,74}[A-Za-z0-9])?$/.test(raw)) throw new Error('not a valid containerd namespace');
      return raw;
    },
  }),
  containerdContentPath: flag({
    name: 'containerd-content-path',
    env: 'MIRRA_CONTAINERD_CONTENT_PATH',
    description: "containerd's content directory; blobs are read from it directly (gRPC Read as fallback)",
    defaultValue: '/var/lib/containerd/io.containerd.content.v1.content',
    parse: parseNonEmpty,
  }),
  registryAddr: flag<ListenAddress>({
    name: 'registry-addr',
    env: 'MIRRA_REGISTRY_ADDR',
    description: 'address the OCI registry API listens on',
    defaultValue: { host: '0.0.0.0', port: 5000 },
    defaultLabel: ':5000',
    parse: parseListenAddress,
  }),
  metricsAddr: flag<ListenAddress | undefined>({
    name: 'metrics-addr',
    env: 'MIRRA_METRICS_ADDR',
    description: 'address the Prometheus metrics (GET /metrics) listen on; empty disables them',
    defaultValue: { host: '0.0.0.0', port: 9090 },
    defaultLabel: ':9090',
    parse: (raw) => (raw.trim() === '' ? undefined : parseListenAddress(raw)),
  }),
  mirroredRegistries: flag<string[]>({
    name: 'mirrored-registries',
    env: 'MIRRA_MIRRORED_REGISTRIES',
    description: 'comma-separated registries whose images are served (e.g. docker.io,ghcr.io); empty means all',
    defaultValue: [],
    defaultLabel: '(all)',
    parse: (raw) => {
      const hosts = parseList(raw).map((host) => host.replace(/^https?:\/\//, ''));
      const bad = hosts.find((host) => !isValidRegistryHost(host));
      if (bad !== undefined) throw new Error(`${JSON.stringify(bad)} is not a registry host`);
      return hosts;
    },
  }),
  resolveTags: flag({
    name: 'resolve-tags',
    env: 'MIRRA_RESOLVE_TAGS',
    description: 'answer manifest requests by tag from the local store',
    defaultValue: true,
    boolean: true,
    parse: parseBoolean,
  }),
  kubeconfig: flag({
    name: 'kubeconfig',
    env: 'KUBECONFIG',
    description: 'kubeconfig for the Kubernetes API; empty means in-cluster config',
    defaultValue: '',
    defaultLabel: '(in-cluster)',
    parse: (raw) => raw,
  }),
  podName: flag({
    name: 'pod-name',
    env: 'POD_NAME',
    description: "this agent's pod (downward API); empty disables peer-to-peer (local content only)",
    defaultValue: '',
    parse: parseDnsName,
  }),
  podNamespace: flag({
    name: 'pod-namespace',
    env: 'POD_NAMESPACE',
    description: "namespace of this agent's pod, its peers and its Service",
    defaultValue: 'mirra',
    parse: parseDnsName,
  }),
  nodeName: flag({
    name: 'node-name',
    env: 'NODE_NAME',
    description: 'name of the node this agent runs on (logs and inspection)',
    defaultValue: '',
    parse: (raw) => raw,
  }),
  zone: flag({
    name: 'zone',
    env: 'MIRRA_ZONE',
    description: "this node's topology zone: peers in the same zone are asked first",
    defaultValue: '',
    defaultLabel: '(none)',
    parse: (raw) => raw,
  }),
  peerSelector: flag({
    name: 'peer-selector',
    env: 'MIRRA_PEER_SELECTOR',
    description: 'label selector of the agent pods (the DaemonSet)',
    defaultValue: 'app.kubernetes.io/name=mirra',
    parse: parseNonEmpty,
  }),
  serviceName: flag({
    name: 'service-name',
    env: 'MIRRA_SERVICE_NAME',
    description: "headless Service whose EndpointSlices say which agents are ready",
    defaultValue: 'mirra',
    parse: parseDnsName,
  }),
  publishDebounceMs: flag({
    name: 'publish-debounce',
    env: 'MIRRA_PUBLISH_DEBOUNCE',
    description: 'at most one annotation update per this interval (e.g. 2s, 500ms)',
    defaultValue: 2000,
    defaultLabel: '2s',
    parse: parseDurationMs,
  }),
  summaryShards: flag({
    name: 'summary-shards',
    env: 'MIRRA_SUMMARY_SHARDS',
    description: 'number of shard annotations the content summary is split into (1-256)',
    defaultValue: 8,
    parse: (raw) => parseIntegerIn(raw, 1, 256),
  }),
  containerdConfigPath: flag({
    name: 'containerd-config-path',
    env: 'MIRRA_CONTAINERD_CONFIG_PATH',
    description: "containerd's config.toml (mounted from the node), checked at start-up (see --preflight)",
    defaultValue: '/etc/containerd/config.toml',
    parse: parseNonEmpty,
  }),
  preflight: flag({
    name: 'preflight',
    env: 'MIRRA_PREFLIGHT',
    description: "check containerd's config at start-up (discard_unpacked_layers = false, a registry config_path); exit 1 when wrong",
    defaultValue: true,
    boolean: true,
    parse: parseBoolean,
  }),
  logLevel: flag<LogLevel>({
    name: 'log-level',
    env: 'MIRRA_LOG_LEVEL',
    description: `log level (${LOG_LEVELS.join(', ')})`,
    defaultValue: 'info',
    parse: (raw) => {
      const level = LOG_LEVELS.find((l) => l === raw);
      if (level === undefined) throw new Error(`want one of ${LOG_LEVELS.join(', ')}`);
      return level;
    },
  }),
};
