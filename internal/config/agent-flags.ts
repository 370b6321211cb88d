// The flags of `mirra registry`, the agent that runs on every node.
import { isIP } from 'node:net';
import { parseAddressEntry } from '../auth/allow.ts';
import { KUBERNETES_NAME } from '../auth/peer-request.ts';
import { LOG_LEVELS, type LogLevel } from '../log/logger.ts';
import { DEFAULT_CONCURRENCY } from '../registry/concurrency.ts';
import { DEFAULT_PRESSURE } from '../registry/pressure.ts';
import { parseSendfileChoice, type SendfileChoice } from '../registry/sendfile-addon.ts';
import { DEFAULT_SERVER_TIMEOUTS } from '../registry/timeouts.ts';
import { isValidRegistryHost } from '../oci/reference.ts';
import { parseMirroredRegistry, type MirroredRegistry } from '../hostsconfig/registries.ts';
import { parseListenAddress, type ListenAddress } from './address.ts';
import { parseBoolean, parseDurationMs, parseIntegerIn, parseList, parseNonEmpty, type FlagSpec } from './flags.ts';

function flag<T>(spec: FlagSpec<T>): FlagSpec<T> {
  return spec;
}

/** An RFC 1123 DNS label or subdomain, as Kubernetes names are; empty allowed (unset). */
function parseDnsName(raw: string): string {
  if (raw !== '' && !KUBERNETES_NAME.test(raw)) throw new Error('not a valid Kubernetes name');
  return raw;
}

const MiB = 1024 * 1024;

/** A duration (parseDurationMs) above zero, in milliseconds. */
function positiveDuration(raw: string): number {
  const ms = parseDurationMs(raw);
  if (ms <= 0) throw new Error('must be more than 0');
  return ms;
}

/** 'auto', or a size in bytes (parseByteSize). */
function parseAutoByteSize(raw: string): number | 'auto' {
  return raw.trim() === 'auto' ? 'auto' : parseByteSize(raw);
}

/** A size in bytes: a whole number with an optional binary unit (Ki, Mi, Gi). */
export function parseByteSize(raw: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(raw.trim());
  if (match === null) throw new Error('want a size such as 200Mi, 1Gi or a number of bytes');
  const unit = match[2] === 'Gi' ? 1024 * MiB : match[2] === 'Mi' ? MiB : match[2] === 'Ki' ? 1024 : 1;
  return Number(match[1]) * unit;
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
    description: "this node's topology zone: peers in the same zone are asked first (default: the zone of the own endpoint in the EndpointSlice)",
    defaultValue: '',
    defaultLabel: '(none)',
    parse: (raw) => raw,
  }),
  serviceName: flag({
    name: 'service-name',
    env: 'MIRRA_SERVICE_NAME',
    description: 'headless Service whose EndpointSlices say which agents are ready',
    defaultValue: 'mirra',
    parse: parseDnsName,
  }),
  statusIntervalMs: flag({
    name: 'status-interval',
    env: 'MIRRA_STATUS_INTERVAL',
    description: "at most one update of the agent's status annotations (keys, owned shards) per this interval, and only on change (e.g. 3m, 30s)",
    defaultValue: 180_000,
    defaultLabel: '3m',
    parse: parseDurationMs,
  }),
  peerStallTimeoutMs: flag({
    name: 'peer-stall-timeout',
    env: 'MIRRA_PEER_STALL_TIMEOUT',
    description: 'a peer that sends no byte of a blob for this long is given up on: the rest comes from the next peer (e.g. 5s, 500ms)',
    defaultValue: 5000,
    defaultLabel: '5s',
    parse: (raw) => positiveDuration(raw),
  }),
  coalesce: flag({
    name: 'coalesce',
    env: 'MIRRA_COALESCE',
    description: "cold rollouts: a blob no node has is fetched from the upstream by one node, the others stream it from that node's fetch in progress",
    defaultValue: true,
    boolean: true,
    parse: parseBoolean,
  }),
  coordinatorTimeoutMs: flag({
    name: 'coordinator-timeout',
    env: 'MIRRA_COORDINATOR_TIMEOUT',
    description: "how long a miss waits for the blob's coordinator to say who fetches it; no answer: fetch from the upstream (e.g. 250ms)",
    defaultValue: 250,
    defaultLabel: '250ms',
    parse: (raw) => positiveDuration(raw),
  }),
  fetchStallTimeoutMs: flag({
    name: 'fetch-stall-timeout',
    env: 'MIRRA_FETCH_STALL_TIMEOUT',
    description: 'a fetch from the upstream whose ingest does not grow for this long is over: the nodes streaming it go elsewhere (e.g. 5s)',
    defaultValue: 5000,
    defaultLabel: '5s',
    parse: (raw) => positiveDuration(raw),
  }),
  peerSecretFile: flag({
    name: 'peer-secret-file',
    env: 'MIRRA_PEER_SECRET_FILE',
    description: 'file with the shared key that signs and verifies peer requests (HMAC-SHA256; one key per line, the first signs); empty turns peer auth off',
    defaultValue: '',
    defaultLabel: '(off)',
    parse: (raw) => raw.trim(),
  }),
  verifyPullAccess: flag<MirroredRegistry[]>({
    name: 'verify-pull-access',
    env: 'MIRRA_VERIFY_PULL_ACCESS',
    description:
      "comma-separated registries (of --mirrored-registries) whose content is served only to pulls that prove read access at the registry: containerd is answered the registry's own Bearer challenge and must come back with a token it gets with the pod's pull secret (http://host:port for a plain-http registry; needs --peer-secret-file)",
    defaultValue: [],
    defaultLabel: '(none)',
    parse: (raw) => parseList(raw).map(parseMirroredRegistry),
  }),
  localOnly: flag({
    name: 'local-only',
    env: 'MIRRA_LOCAL_ONLY',
    description: "answer unsigned (containerd's) requests only from loopback, --node-ip and --local-clients (403 otherwise)",
    defaultValue: false,
    boolean: true,
    parse: parseBoolean,
  }),
  nodeIp: flag({
    name: 'node-ip',
    env: 'NODE_IP',
    description: "the node's IP, from which containerd reaches the agent through the hostPort (allowed with --local-only)",
    defaultValue: '',
    parse: (raw) => {
      const ip = raw.trim();
      if (ip !== '' && isIP(ip) === 0) throw new Error('not an IP address');
      return ip;
    },
  }),
  localClients: flag<string[]>({
    name: 'local-clients',
    env: 'MIRRA_LOCAL_CLIENTS',
    description: 'more addresses or CIDRs allowed with --local-only (comma-separated; e.g. the address a CNI shows node traffic from)',
    defaultValue: [],
    parse: (raw) => {
      const entries = parseList(raw);
      for (const entry of entries) parseAddressEntry(entry);
      return entries;
    },
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
  shutdownGraceMs: flag({
    name: 'shutdown-grace',
    env: 'MIRRA_SHUTDOWN_GRACE',
    description:
      "on SIGTERM: no new connections, running responses may finish for this long, then the rest is cut and the agent exits 0 (keep it below the pod's terminationGracePeriodSeconds)",
    defaultValue: 20_000,
    defaultLabel: '20s',
    parse: parseDurationMs,
  }),
  maxPeerStreams: flag({
    name: 'max-peer-streams',
    env: 'MIRRA_MAX_PEER_STREAMS',
    description: 'blob streams pulled from peers at once at most; beyond, 404 at once so that containerd goes upstream (0: no limit)',
    defaultValue: 32,
    parse: (raw) => parseIntegerIn(raw, 0, 100_000),
  }),
  peerRedirectMinBytes: flag<number | 'off'>({
    name: 'peer-redirect-min-size',
    env: 'MIRRA_PEER_REDIRECT_MIN_SIZE',
    description:
      "containerd's GET of a blob at least this large that a peer holds is answered with a 307 to that peer's agent (a signed URL; needs --peer-secret-file): the bytes skip this agent; smaller blobs are streamed through it, verified; off: never",
    defaultValue: 16 * MiB,
    defaultLabel: '16Mi',
    parse: (raw) => {
      if (raw.trim() === 'off') return 'off';
      if (!/^\s*\d+(Ki|Mi|Gi)?\s*$/.test(raw)) throw new Error('want a size such as 16Mi or a number of bytes, or off');
      return parseByteSize(raw);
    },
  }),
  sendfile: flag<SendfileChoice>({
    name: 'sendfile',
    env: 'MIRRA_SENDFILE',
    description:
      'local blobs go from the file to a plain TCP client with sendfile (mirra-sendfile.node): auto uses the addon beside the bundle when it loads, else copies; off copies; or the path of the addon, which must load',
    defaultValue: { kind: 'auto' },
    defaultLabel: 'auto',
    parse: parseSendfileChoice,
  }),
  clientIdleTimeoutMs: flag({
    name: 'client-idle-timeout',
    env: 'MIRRA_CLIENT_IDLE_TIMEOUT',
    description: 'a client connection on which nothing moves for this long (a client that stopped reading) is closed; 0 disables',
    defaultValue: DEFAULT_SERVER_TIMEOUTS.idleTimeoutMs,
    defaultLabel: `${DEFAULT_SERVER_TIMEOUTS.idleTimeoutMs / 1000}s`,
    parse: parseDurationMs,
  }),
  maxEventLoopDelayMs: flag({
    name: 'max-event-loop-delay',
    env: 'MIRRA_MAX_EVENT_LOOP_DELAY',
    description: 'shed load (503 at once, containerd moves on) while the event loop is late by more than this on average; 0 disables',
    defaultValue: DEFAULT_PRESSURE.maxEventLoopDelayMs,
    defaultLabel: `${DEFAULT_PRESSURE.maxEventLoopDelayMs}ms`,
    parse: parseDurationMs,
  }),
  maxEventLoopUtilization: flag({
    name: 'max-event-loop-utilization',
    env: 'MIRRA_MAX_EVENT_LOOP_UTILIZATION',
    description: 'shed load (503) while the event loop was busy more than this share of the last half second (0-1); 0 disables',
    defaultValue: DEFAULT_PRESSURE.maxEventLoopUtilization ?? 0,
    parse: (raw) => {
      const value = Number(raw.trim());
      if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) throw new Error('want a number from 0 to 1');
      return value;
    },
  }),
  maxHeapUsedBytes: flag<number | 'auto'>({
    name: 'max-heap-used',
    env: 'MIRRA_MAX_HEAP_USED',
    description: "shed load (503) while the JS heap holds more than this (e.g. 120Mi); auto: 90% of V8's heap limit; 0 disables",
    defaultValue: 'auto',
    parse: parseAutoByteSize,
  }),
  maxRssBytes: flag<number | 'auto'>({
    name: 'max-rss',
    env: 'MIRRA_MAX_RSS',
    description:
      "shed load (503) while the resident memory is above this (e.g. 240Mi) and live memory (heap and buffers) above half of it; auto: 94% of the container's memory limit, none without one; 0 disables",
    defaultValue: 'auto',
    parse: parseAutoByteSize,
  }),
  maxRequests: flag({
    name: 'max-requests',
    env: 'MIRRA_MAX_REQUESTS',
    description: 'requests other than blob downloads (manifests, HEADs) in progress at most; beyond, 503 at once (0: no limit)',
    defaultValue: DEFAULT_CONCURRENCY.maxRequests,
    parse: (raw) => parseIntegerIn(raw, 0, 1_000_000),
  }),
  maxStreams: flag({
    name: 'max-streams',
    env: 'MIRRA_MAX_STREAMS',
    description: 'blob downloads in progress at most; beyond, 503 at once (0: no limit)',
    defaultValue: DEFAULT_CONCURRENCY.maxStreams,
    parse: (raw) => parseIntegerIn(raw, 0, 1_000_000),
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

/** A problem between --verify-pull-access and the flags it depends on, as one line naming the fix; undefined when none. */
export function pullAccessProblem(values: {
  verifyPullAccess: readonly MirroredRegistry[];
  peerSecretFile: string;
  mirroredRegistries: readonly string[];
}): string | undefined {
  if (values.verifyPullAccess.length === 0) return undefined;
  if (values.peerSecretFile === '') {
    return '--verify-pull-access needs peer auth: set --peer-secret-file (the chart: peerAuth.enabled=true), so that only agents can assert a verified pull to each other';
  }
  const unmirrored = values.verifyPullAccess.find((r) => values.mirroredRegistries.length > 0 && !values.mirroredRegistries.includes(r.host));
  if (unmirrored !== undefined) return `--verify-pull-access lists ${unmirrored.host}, which --mirrored-registries does not: add it there too`;
  return undefined;
}
