// A local cluster of N mirra nodes on one machine, for the e2e tests, the demo
// and benchmarks. Each node has its own containerd and its own agent on its own
// loopback address (node-<i> on 127.0.0.<i+1>, i from 1); the upstream is
// docker-registry behind a counting, optionally throttling proxy; the
// Kubernetes API is the stand-in (tests/kube). The harness plays the
// DaemonSet controller and kubelet (pods, their status, readiness probes) and
// the EndpointSlice controller (the headless Service's slice). Everything it
// starts is stopped on stop(), on process exit and on SIGINT/SIGTERM.
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApi, type KubeApi } from '../kube/server.ts';
import { freePort, runningProcesses, waitFor } from '../support/process.ts';
import { startUpstream, type Upstream } from '../support/upstream.ts';
import { startEndpointSliceController, type EndpointSliceController } from './endpointslice-controller.ts';
import { startClusterNode, type ClusterNode, type PullSettings } from './node.ts';
import { LABEL_SELECTOR, namespaceObject, newDaemonSetRef, parseSliceEndpoints, SERVICE_NAME, serviceObject, type SliceEndpoint } from './objects.ts';

export type { ClusterNode, PullSettings } from './node.ts';
export type { SliceEndpoint } from './objects.ts';

export interface ClusterOptions {
  /** How many nodes (1 to 250). */
  nodes: number;
  /** Parent directory of the cluster's own temp dir (default os.tmpdir()). */
  dir?: string;
  /** Limit the upstream's response bandwidth (e.g. 20e6 for 20 MB/s), like a remote registry. */
  upstreamBandwidthBytesPerSec?: number;
  /** Default 'mirra'. */
  namespace?: string;
  /** Extra flags for every agent (`mirra registry ...`). */
  agentArgs?: string[];
  /** Extra environment of every agent (e.g. NODE_OPTIONS as the chart sets it). */
  agentEnv?: NodeJS.ProcessEnv;
  /** The agents' entry point (default cmd/mirra.ts; see startAgent). */
  agentEntry?: string;
  /**
   * containerd's pull settings per node (1-based index): on 2.x the transfer
   * service's chunked layer fetch (chunkBytes) and max_concurrent_downloads.
   * Default: containerd's own (no chunking, 3 downloads).
   */
  pullSettings?: (index: number) => PullSettings | undefined;
  /**
   * Peer auth as the chart sets it up (default true): a shared secret in
   * `<dir>/peer-secret` given to every agent with --peer-secret-file (peer
   * requests signed), and --local-only (containerd's unsigned requests from
   * the node only). false: neither.
   */
  peerAuth?: boolean;
  /** Serve each agent's /metrics on <node ip>:<metricsPort> (default off). */
  metrics?: boolean;
  /**
   * Put a fault proxy (fault-proxy.ts) on each node's advertised port, in
   * front of its agent, which then listens on another port (`agentPort`)
   * that containerd's hosts.toml and the readiness probe use: faults hit the
   * traffic between nodes only. Switch them with node.faults.set(...).
   */
  faultProxy?: boolean;
  /** Readiness probe period (default 250 ms); failureThreshold is 1. */
  probeIntervalMs?: number;
  /** Readiness probe timeout (default 200 ms). */
  probeTimeoutMs?: number;
  /** topology.kubernetes.io/zone of the nodes, assigned round-robin (default: none). */
  zones?: string[];
  /** Keep the temp dir (logs, containerd roots) after stop(), for debugging. */
  keepDir?: boolean;
  /** Stop everything on SIGINT/SIGTERM, then exit 130/143 (default true). */
  handleSignals?: boolean;
}

export interface Cluster {
  /** The cluster's temp dir (removed by stop() unless keepDir). */
  readonly dir: string;
  readonly namespace: string;
  readonly api: KubeApi;
  /** Path of a kubeconfig for kubectl and the agents. */
  readonly kubeconfig: string;
  readonly upstream: Upstream;
  readonly nodes: readonly ClusterNode[];
  /** The agents' shared peer secret file (--peer-secret-file), unless peerAuth was false. */
  readonly peerSecretFile: string | undefined;
  /** The agents' registry port (the same on every node IP). */
  readonly port: number;
  /** The port the agents listen on: `port`, or another one behind the fault proxies (faultProxy). */
  readonly agentPort: number;
  /** The agents' metrics port (node.agent.metricsUrl), when `metrics` was asked for. */
  readonly metricsPort: number | undefined;
  /** The headless Service (`mirra`) and its EndpointSlice. */
  readonly serviceName: string;
  readonly sliceName: string;
  /** The DaemonSet's pod selector: `app.kubernetes.io/name=mirra`. */
  readonly labelSelector: string;
  /** Resolves once every node's pod is Ready and the slice lists every node as ready. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The EndpointSlice's current endpoints. */
  endpoints(): SliceEndpoint[];
  /** Every pid the cluster has started (also those that have exited since). */
  pids(): number[];
  /** Stops everything and removes the temp dir; idempotent. */
  stop(): Promise<void>;
}

const MAX_NODES = 250;

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A port that is free on every one of the hosts (like a hostPort on every node). */
async function sharedFreePort(hosts: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort(hosts[0]);
    const free = await Promise.all(hosts.map((host) => canBind(host, port)));
    if (free.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const count = options.nodes;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new Error(`nodes must be an integer from 1 to ${MAX_NODES}, got ${count}`);
  const namespace = options.namespace ?? 'mirra';
  const zones = options.zones ?? [];
  const dir = await mkdtemp(join(options.dir ?? tmpdir(), 'mirra-cluster-'));
  const pids = new Set<number>();
  const nodes: ClusterNode[] = [];
  let api: KubeApi | undefined;
  let upstream: Upstream | undefined;
  let controller: EndpointSliceController | undefined;
  let stopping: Promise<void> | undefined;

  const ours = () => runningProcesses().filter((child) => pids.has(child.pid));
  const onExit = (): void => {
    for (const child of ours()) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    if (options.keepDir !== true) rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) process.exit(signal === 'SIGINT' ? 130 : 143); // a second Ctrl-C: the exit hook kills the rest
    process.stderr.write(`\nmirra cluster: ${signal}, stopping everything it started\n`);
    void stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  const handleSignals = options.handleSignals !== false;
  process.on('exit', onExit);
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  function stop(): Promise<void> {
    stopping ??= (async () => {
      controller?.stop();
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await Promise.allSettled([upstream?.stop(), api?.stop()]);
      // Anything of ours still up (e.g. a start that failed half-way).
      await Promise.allSettled(ours().map((child) => (child.kill('SIGCONT'), child.stop(2000))));
      if (options.keepDir !== true) await rm(dir, { recursive: true, force: true });
      process.off('exit', onExit);
      if (handleSignals) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    })();
    return stopping;
  }

  try {
    const kubeApi = await startKubeApi();
    api = kubeApi;
    const kubeconfig = await kubeApi.kubeconfigPath(dir);
    const up = await startUpstream({ dir: join(dir, 'upstream'), bandwidthBytesPerSec: options.upstreamBandwidthBytesPerSec });
    upstream = up;
    pids.add(up.pid);
    const ips = Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
    const port = await sharedFreePort(ips);
    let metricsPort: number | undefined;
    while (options.metrics === true && (metricsPort === undefined || metricsPort === port)) metricsPort = await sharedFreePort(ips);
    let agentPort = port;
    while (options.faultProxy === true && (agentPort === port || agentPort === metricsPort)) agentPort = await sharedFreePort(ips);

    const peerSecretFile = options.peerAuth === false ? undefined : join(dir, 'peer-secret');
    if (peerSecretFile !== undefined) await writeFile(peerSecretFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
    const agentArgs = [...(peerSecretFile === undefined ? [] : ['--peer-secret-file', peerSecretFile, '--local-only']), ...(options.agentArgs ?? [])];

    kubeApi.create(namespaceObject(namespace));
    kubeApi.create(serviceObject(namespace, port));
    const sliceController = startEndpointSliceController({
      api: kubeApi,
      namespace,
      serviceName: SERVICE_NAME,
      zoneOf: (nodeName) => nodes.find((node) => node.name === nodeName)?.zone,
    });
    controller = sliceController;
    const daemonSet = newDaemonSetRef(JSON.stringify({ port, agentArgs }));

    const started = await Promise.allSettled(
      ips.map((_, i) =>
        startClusterNode({
          index: i + 1,
          dir: join(dir, `node-${i + 1}`),
          api: kubeApi,
          namespace,
          kubeconfig,
          port,
          metricsPort,
          agentPort,
          faultProxy: options.faultProxy === true,
          zone: zones.length > 0 ? zones[i % zones.length] : undefined,
          upstreamHost: up.host,
          agentArgs,
          agentEnv: options.agentEnv,
          agentEntry: options.agentEntry,
          pullSettings: options.pullSettings?.(i + 1),
          probeIntervalMs: options.probeIntervalMs ?? 250,
          probeTimeoutMs: options.probeTimeoutMs ?? 200,
          daemonSet,
          onPid: (pid) => pids.add(pid),
        }),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    sliceController.sync(); // the zones are known now

    const endpoints = (): SliceEndpoint[] => parseSliceEndpoints(kubeApi.get('EndpointSlice', namespace, sliceController.sliceName) ?? {});
    return {
      dir,
      namespace,
      api: kubeApi,
      kubeconfig,
      upstream: up,
      nodes,
      peerSecretFile,
      port,
      agentPort,
      metricsPort,
      serviceName: SERVICE_NAME,
      sliceName: sliceController.sliceName,
      labelSelector: LABEL_SELECTOR,
      async waitReady(timeoutMs = 30_000) {
        await waitFor(
          `all ${count} agents to be ready`,
          async () => nodes.every((node) => node.ready()) && endpoints().filter((e) => e.conditions.ready).length === count,
          timeoutMs,
          25,
        );
      },
      endpoints,
      pids: () => [...pids],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
