// One node of the local cluster: its own containerd (root, state, socket), a
// certs.d directory whose hosts.toml for the upstream lists the node's own
// agent first (written by `mirra configure`, as the chart's init container
// does, when asked; by the harness otherwise), the agent bound to the node's loopback address with the env a
// DaemonSet pod has, the kubelet's view of its pod, and the readiness prober.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeApi } from '../kube/server.ts';
import { startAgent, type TestAgent } from '../support/agent.ts';
import { writeMirrorHosts } from '../support/hosts.ts';
import { startContainerd, type CriOptions, type TestContainerd } from '../support/containerd.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import { runConfigure } from './init-container.ts';
import { createKubelet, type Kubelet } from './kubelet.ts';
import { READINESS_PATH, type DaemonSetRef } from './objects.ts';
import { startProber, type Prober } from './prober.ts';

/** What a node's containerd is configured with for pulls, beyond its hosts dir (CriOptions less hostsDir). */
export type PullSettings = Omit<CriOptions, 'hostsDir'>;

export interface NodeOptions {
  /** 1-based: node-<index> on 127.0.0.<index + 1>. */
  index: number;
  dir: string;
  api: KubeApi;
  namespace: string;
  kubeconfig: string;
  port: number;
  /** The agent's /metrics port on the node IP (off when undefined). */
  metricsPort: number | undefined;
  /** The port the agent listens on: `port`, unless a fault proxy takes `port`. */
  agentPort: number;
  /** A fault proxy on <ip>:<port> in front of the agent on <ip>:<agentPort>. */
  faultProxy: boolean;
  zone: string | undefined;
  upstreamHost: string;
  /** Write hosts.toml with `mirra configure` (the chart's init container) instead of the harness's own writer. */
  runConfigure: boolean;
  /** More registries the agents mirror beside the upstream (e.g. a private one). */
  moreMirrored?: readonly string[];
  agentArgs: string[];
  /** Extra environment of the agent (e.g. NODE_OPTIONS). */
  agentEnv?: NodeJS.ProcessEnv;
  /** The agent's entry point (default cmd/mirra.ts). */
  agentEntry?: string | undefined;
  /** containerd's pull settings (chunked fetch, concurrent downloads); containerd's defaults when undefined. */
  pullSettings?: PullSettings | undefined;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  daemonSet: DaemonSetRef;
  /** Told every pid the node starts (containerd, agents), for leak checks. */
  onPid(pid: number): void;
}

export interface ClusterNode {
  readonly index: number;
  /** node-<index> */
  readonly name: string;
  /** 127.0.0.<index + 1>: node IP = pod IP (host network). */
  readonly ip: string;
  /** The agent's registry port (the same on every node, like a hostPort). */
  readonly port: number;
  /** http://<ip>:<port>: the advertised endpoint (the fault proxy, when on). */
  readonly url: string;
  /** The fault proxy on the advertised endpoint, when the cluster has them (faultProxy). */
  readonly faults: FaultProxy | undefined;
  readonly zone: string | undefined;
  /** The node's current pod; throws while the node has none. */
  readonly podName: string;
  readonly containerd: TestContainerd;
  /** containerd hosts dir: <hostsDir>/<upstream host>/hosts.toml = own agent first, upstream as server. */
  readonly hostsDir: string;
  /** The current (last started) agent. */
  readonly agent: TestAgent;
  /**
   * A pull as the kubelet makes it: through containerd's CRI plugin (on 2.x by
   * its transfer service), registries from the node's hosts dir; resolves with the image id.
   */
  pull(ref: string): Promise<string>;
  /** `ctr images pull` on this node's containerd through its hosts.toml (plain http): the client fetches, not the daemon. */
  ctrPull(ref: string): Promise<string>;
  /** SIGKILLs the agent (the pod stays, not ready); resolves once it has exited. */
  kill(): Promise<void>;
  /** The kubelet restarts the container: same pod, restartCount + 1 (stops the agent first if running). */
  restartAgent(): Promise<void>;
  /** The pod is deleted (its endpoint goes) and the DaemonSet makes a new one with a new name. */
  replacePod(): Promise<void>;
  /** SIGSTOP / SIGCONT the agent: a paused agent's probes time out. */
  pause(): void;
  resume(): void;
  stopContainerd(): Promise<void>;
  /** Starts containerd again (same root, state, socket). */
  startContainerd(): Promise<void>;
  /** The pod's Ready condition as the kubelet last wrote it. */
  ready(): boolean;
  /** Stops the prober, the agent and containerd. */
  stop(): Promise<void>;
}

/** A node's running parts: its containerd, its kubelet, its current agent. */
interface NodeState {
  readonly options: NodeOptions;
  readonly name: string;
  readonly ip: string;
  readonly containerd: TestContainerd;
  readonly kubelet: Kubelet;
  agent: TestAgent | undefined;
  paused: boolean;
  stopped: boolean;
}

/** Starts an agent for the node's current pod, as its container; the kubelet reports it. */
async function launchAgent(node: NodeState): Promise<void> {
  const { options, name, ip, containerd, kubelet } = node;
  const podName = kubelet.podName;
  if (podName === undefined) throw new Error(`${name} has no pod`);
  const started = await startAgent({
    dir: options.dir,
    name: `agent-${name}`,
    host: ip,
    port: options.agentPort,
    metricsPort: options.metricsPort,
    containerdSock: containerd.socket,
    contentPath: containerd.contentDir,
    containerdConfigPath: containerd.configPath,
    mirroredRegistries: [options.upstreamHost, ...(options.moreMirrored ?? [])],
    extraArgs: options.agentArgs,
    entry: options.agentEntry,
    env: {
      ...options.agentEnv,
      POD_NAME: podName,
      POD_NAMESPACE: options.namespace,
      NODE_NAME: name,
      POD_IP: ip,
      HOST_IP: ip,
      NODE_IP: ip,
      KUBECONFIG: options.kubeconfig,
    },
  }).catch((err: unknown) => {
    throw new Error(`${name}: agent did not start: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  node.agent = started;
  node.paused = false;
  options.onPid(started.process.pid);
  void started.process.exited.then((how) => {
    if (node.agent === started) kubelet.containerExited(how);
  });
  kubelet.containerStarted();
}

async function stopAgent(node: NodeState): Promise<void> {
  const current = node.agent;
  if (current === undefined) return;
  if (node.paused) current.process.kill('SIGCONT');
  node.paused = false;
  await current.process.stop(3000);
}

/** The ClusterNode over a started node's state. */
function clusterNode(node: NodeState, parts: { url: string; hostsDir: string; faults: FaultProxy | undefined; prober: Prober }): ClusterNode {
  const { options, name, ip, containerd, kubelet } = node;
  const { hostsDir, faults, prober } = parts;
  return {
    index: options.index,
    name,
    ip,
    port: options.port,
    url: parts.url,
    faults,
    zone: options.zone,
    get podName() {
      const pod = kubelet.podName;
      if (pod === undefined) throw new Error(`${name} has no pod`);
      return pod;
    },
    containerd,
    hostsDir,
    get agent() {
      if (node.agent === undefined) throw new Error(`${name} has no agent`);
      return node.agent;
    },
    pull: (ref) => containerd.criPull(ref),
    ctrPull: (ref) => containerd.pull(ref, { hostsDir, plainHttp: true }),
    async kill() {
      const current = node.agent;
      if (current === undefined) return;
      current.process.kill('SIGKILL');
      await current.process.exited;
      node.paused = false;
    },
    async restartAgent() {
      await stopAgent(node);
      await launchAgent(node);
    },
    async replacePod() {
      await stopAgent(node);
      kubelet.deletePod();
      // The EndpointSlice controller sees the deletion before the DaemonSet controller's new pod.
      await new Promise((resolve) => setImmediate(resolve));
      kubelet.createPod();
      await launchAgent(node);
    },
    pause() {
      node.agent?.process.kill('SIGSTOP');
      node.paused = node.agent !== undefined;
    },
    resume() {
      node.agent?.process.kill('SIGCONT');
      node.paused = false;
    },
    stopContainerd: () => containerd.stop(),
    async startContainerd() {
      await containerd.restart();
      options.onPid(containerd.pid);
    },
    ready: () => kubelet.ready(),
    async stop() {
      if (node.stopped) return;
      node.stopped = true;
      prober.stop();
      await Promise.allSettled([faults?.stop(), stopAgent(node), containerd.stop()]);
    },
  };
}

export async function startClusterNode(options: NodeOptions): Promise<ClusterNode> {
  const { index, dir, api, namespace, port, agentPort, upstreamHost } = options;
  const name = `node-${index}`;
  const ip = `127.0.0.${index + 1}`;
  const url = `http://${ip}:${port}`;
  const hostsDir = join(dir, 'certs.d');
  if (options.runConfigure) {
    await mkdir(dir, { recursive: true });
    await runConfigure({ dir, name, hostsDir, upstreamHost, nodeIp: ip, agentPort, entry: options.agentEntry, onPid: options.onPid });
  } else {
    await writeMirrorHosts(hostsDir, upstreamHost, `http://${ip}:${agentPort}`);
  }

  const containerd = await startContainerd({ dir: join(dir, 'containerd'), name: `containerd-${name}`, cri: { ...options.pullSettings, hostsDir } });
  options.onPid(containerd.pid);
  const kubelet = createKubelet({ api, namespace, nodeName: name, ip, port, daemonSet: options.daemonSet });
  const node: NodeState = { options, name, ip, containerd, kubelet, agent: undefined, paused: false, stopped: false };

  kubelet.createPod();
  let faults: FaultProxy | undefined;
  try {
    await launchAgent(node);
    if (options.faultProxy) faults = await startFaultProxy({ host: ip, port, targetPort: agentPort });
  } catch (err) {
    await stopAgent(node);
    await containerd.stop();
    throw err;
  }
  const prober: Prober = startProber({
    host: ip,
    port: agentPort,
    path: READINESS_PATH,
    intervalMs: options.probeIntervalMs,
    timeoutMs: options.probeTimeoutMs,
    onResult: (ready) => kubelet.probeResult(ready),
  });
  return clusterNode(node, { url, hostsDir, faults, prober });
}
