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
import {
  LABEL_SELECTOR,
  namespaceObject,
  newDaemonSetRef,
  parseSliceEndpoints,
  SERVICE_NAME,
  serviceObject,
  type DaemonSetRef,
  type SliceEndpoint,
} from './objects.ts';

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
  /**
   * The agents' registry port on every node IP, as the chart's hostPort
   * (default: one free on all of them). Taken on a node IP: startCluster
   * rejects with a PortTakenError naming the port and the address.
   */
  port?: number;
  /**
   * Write each node's hosts.toml by running `mirra configure` (the real CLI,
   * as the chart's init container does) instead of the harness's own writer
   * of the same file (default false: one process per node less).
   */
  runConfigure?: boolean;
  /** Extra flags for every agent (`mirra registry ...`). */
  agentArgs?: string[];
  /** More registries (host:port) the agents mirror beside the cluster's upstream, e.g. a private registry; its hosts.toml is the test's to write. */
  mirroredRegistries?: string[];
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

/** A port the cluster was told to use is taken on one of the node IPs. */
export class PortTakenError extends Error {
  override readonly name = 'PortTakenError';
  readonly port: number;
  readonly host: string;
  constructor(port: number, host: string) {
    super(`port ${port} is taken on ${host}`);
    this.port = port;
    this.host = host;
  }
}

/** Rejects with PortTakenError when the port is taken on one of the hosts. */
async function checkPortFree(hosts: string[], port: number): Promise<void> {
  const free = await Promise.all(hosts.map((host) => canBind(host, port)));
  const taken = hosts.find((_, i) => free[i] !== true);
  if (taken !== undefined) throw new PortTakenError(port, taken);
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

/** What a cluster has started so far, and how to stop it. */
interface ClusterState {
  readonly options: ClusterOptions;
  readonly dir: string;
  readonly pids: Set<number>;
  readonly nodes: ClusterNode[];
  readonly handleSignals: boolean;
  api?: KubeApi;
  upstream?: Upstream;
  controller?: EndpointSliceController;
  stopping?: Promise<void>;
  onExit: () => void;
  onSignal: (signal: NodeJS.Signals) => void;
}

/** The cluster's processes still running. */
function ours(state: ClusterState): ReturnType<typeof runningProcesses> {
  return runningProcesses().filter((child) => state.pids.has(child.pid));
}

/** Kills what the cluster started on process exit; stops everything on SIGINT/SIGTERM (if handleSignals). */
function installExitHooks(state: ClusterState): void {
  state.onExit = (): void => {
    for (const child of ours(state)) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    if (state.options.keepDir !== true) rmSync(state.dir, { recursive: true, force: true });
  };
  state.onSignal = (signal: NodeJS.Signals): void => {
    if (state.stopping !== undefined) process.exit(signal === 'SIGINT' ? 130 : 143); // a second Ctrl-C: the exit hook kills the rest
    process.stderr.write(`\nmirra cluster: ${signal}, stopping everything it started\n`);
    void stopCluster(state).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('exit', state.onExit);
  if (state.handleSignals) {
    process.on('SIGINT', state.onSignal);
    process.on('SIGTERM', state.onSignal);
  }
}

function stopCluster(state: ClusterState): Promise<void> {
  state.stopping ??= (async () => {
    state.controller?.stop();
    await Promise.allSettled(state.nodes.map((node) => node.stop()));
    await Promise.allSettled([state.upstream?.stop(), state.api?.stop()]);
    // Anything of ours still up (e.g. a start that failed half-way).
    await Promise.allSettled(ours(state).map((child) => (child.kill('SIGCONT'), child.stop(2000))));
    if (state.options.keepDir !== true) await rm(state.dir, { recursive: true, force: true });
    process.off('exit', state.onExit);
    if (state.handleSignals) {
      process.off('SIGINT', state.onSignal);
      process.off('SIGTERM', state.onSignal);
    }
  })();
  return state.stopping;
}

/** The agents' registry port, metrics port (if asked for) and listening port (another one behind fault proxies), free on every node IP. */
async function clusterPorts(ips: string[], options: ClusterOptions): Promise<{ port: number; metricsPort: number | undefined; agentPort: number }> {
  const port = options.port ?? (await sharedFreePort(ips));
  let metricsPort: number | undefined;
  while (options.metrics === true && (metricsPort === undefined || metricsPort === port)) metricsPort = await sharedFreePort(ips);
  let agentPort = port;
  while (options.faultProxy === true && (agentPort === port || agentPort === metricsPort)) agentPort = await sharedFreePort(ips);
  return { port, metricsPort, agentPort };
}

/** The peer secret file (written, unless peerAuth is false) and the flags every agent gets. */
async function peerAuthArgs(dir: string, options: ClusterOptions): Promise<{ peerSecretFile: string | undefined; agentArgs: string[] }> {
  const peerSecretFile = options.peerAuth === false ? undefined : join(dir, 'peer-secret');
  if (peerSecretFile !== undefined) await writeFile(peerSecretFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  const agentArgs = [...(peerSecretFile === undefined ? [] : ['--peer-secret-file', peerSecretFile, '--local-only']), ...(options.agentArgs ?? [])];
  return { peerSecretFile, agentArgs };
}

/** What every node of the cluster shares. */
interface NodesContext {
  api: KubeApi;
  kubeconfig: string;
  upstreamHost: string;
  ports: { port: number; metricsPort: number | undefined; agentPort: number };
  agentArgs: string[];
  daemonSet: DaemonSetRef;
}

/** Starts a node on each IP (into state.nodes); throws the first failure once all have settled. */
async function startNodes(state: ClusterState, ips: string[], ctx: NodesContext): Promise<void> {
  const { options, dir } = state;
  const zones = options.zones ?? [];
  const started = await Promise.allSettled(
    ips.map((_, i) =>
      startClusterNode({
        index: i + 1,
        dir: join(dir, `node-${i + 1}`),
        api: ctx.api,
        namespace: options.namespace ?? 'mirra',
        kubeconfig: ctx.kubeconfig,
        ...ctx.ports,
        faultProxy: options.faultProxy === true,
        zone: zones.length > 0 ? zones[i % zones.length] : undefined,
        upstreamHost: ctx.upstreamHost,
        runConfigure: options.runConfigure === true,
        moreMirrored: options.mirroredRegistries,
        agentArgs: ctx.agentArgs,
        agentEnv: options.agentEnv,
        agentEntry: options.agentEntry,
        pullSettings: options.pullSettings?.(i + 1),
        probeIntervalMs: options.probeIntervalMs ?? 250,
        probeTimeoutMs: options.probeTimeoutMs ?? 200,
        daemonSet: ctx.daemonSet,
        onPid: (pid) => state.pids.add(pid),
      }),
    ),
  );
  for (const result of started) if (result.status === 'fulfilled') state.nodes.push(result.value);
  const failed = started.find((result) => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const count = options.nodes;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new Error(`nodes must be an integer from 1 to ${MAX_NODES}, got ${count}`);
  const namespace = options.namespace ?? 'mirra';
  const ips = Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
  // Before anything starts: a taken port is the caller's to fix, and nothing is left to stop.
  if (options.port !== undefined) await checkPortFree(ips, options.port);
  const dir = await mkdtemp(join(options.dir ?? tmpdir(), 'mirra-cluster-'));
  const state: ClusterState = {
    options,
    dir,
    pids: new Set(),
    nodes: [],
    handleSignals: options.handleSignals !== false,
    onExit: () => {},
    onSignal: () => {},
  };
  const { pids, nodes } = state;
  installExitHooks(state);
  const stop = (): Promise<void> => stopCluster(state);

  try {
    const kubeApi = await startKubeApi();
    state.api = kubeApi;
    const kubeconfig = await kubeApi.kubeconfigPath(dir);
    const up = await startUpstream({ dir: join(dir, 'upstream'), bandwidthBytesPerSec: options.upstreamBandwidthBytesPerSec });
    state.upstream = up;
    pids.add(up.pid);
    const ports = await clusterPorts(ips, options);
    const { port, metricsPort, agentPort } = ports;
    const { peerSecretFile, agentArgs } = await peerAuthArgs(dir, options);

    kubeApi.create(namespaceObject(namespace));
    kubeApi.create(serviceObject(namespace, port));
    const sliceController = startEndpointSliceController({
      api: kubeApi,
      namespace,
      serviceName: SERVICE_NAME,
      zoneOf: (nodeName) => nodes.find((node) => node.name === nodeName)?.zone,
    });
    state.controller = sliceController;
    const daemonSet = newDaemonSetRef(JSON.stringify({ port, agentArgs }));
    await startNodes(state, ips, { api: kubeApi, kubeconfig, upstreamHost: up.host, ports, agentArgs, daemonSet });
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
