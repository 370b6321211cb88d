// The kubelet's part for one node: creates the node's DaemonSet pod (as the
// DaemonSet controller would; the scheduler's binding is spec.nodeName) and
// keeps its status in step with the container (the agent process) and the
// readiness probe: phase, podIP/hostIP, the Ready and ContainersReady
// conditions (lastTransitionTime only moves on a change), containerStatuses
// with restartCount and the last termination. A write happens only when the
// status changes (the stand-in also drops no-op updates). Writes keep
// everything else on the pod (e.g. annotations an agent publishes).
import type { KubeApi } from '../kube/server.ts';
import { CONTAINER_NAME, podObject, type DaemonSetRef } from './objects.ts';

export interface KubeletOptions {
  api: KubeApi;
  namespace: string;
  nodeName: string;
  ip: string;
  port: number;
  daemonSet: DaemonSetRef;
}

export interface Kubelet {
  /** Name of the node's current pod; undefined once deleted. */
  readonly podName: string | undefined;
  readonly podUid: string | undefined;
  /** Creates a new pod for the node (Pending); returns its name. */
  createPod(): string;
  /** The container (agent) is running: phase Running, not ready until the probe passes. */
  containerStarted(): void;
  /** The container exited (exit code or signal name): not ready, state terminated. */
  containerExited(how: number | string): void;
  /** A readiness probe result; ignored while the container is not running. */
  probeResult(ready: boolean): void;
  /** Deletes the pod (immediately, as the stand-in does). */
  deletePod(): void;
  /** What the kubelet last reported as the pod's Ready condition. */
  ready(): boolean;
}

type ContainerState =
  | { kind: 'waiting' }
  | { kind: 'running'; startedAt: string; containerId: string }
  | { kind: 'terminated'; startedAt: string; finishedAt: string; exitCode: number; containerId: string };

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function exitCodeOf(how: number | string): number {
  if (typeof how === 'number') return how;
  const signals: Record<string, number> = { SIGKILL: 137, SIGTERM: 143, SIGINT: 130, SIGABRT: 134, SIGSEGV: 139 };
  return signals[how] ?? 1;
}

function containerId(): string {
  return `containerd://${Array.from({ length: 4 }, () =>
    Math.floor(Math.random() * 2 ** 32)
      .toString(16)
      .padStart(8, '0'),
  ).join('')}`;
}

type Terminated = Extract<ContainerState, { kind: 'terminated' }>;

/** What the kubelet knows of the node's pod and its container. */
interface PodState {
  podName: string | undefined;
  podUid: string | undefined;
  created: string;
  container: ContainerState;
  lastTermination: Terminated | undefined;
  restartCount: number;
  probeReady: boolean;
  readyCondition: { status: string; since: string };
}

function isReady(pod: PodState): boolean {
  return pod.container.kind === 'running' && pod.probeReady;
}

function terminatedStatus(t: Terminated): Record<string, unknown> {
  return {
    terminated: {
      exitCode: t.exitCode,
      reason: t.exitCode === 0 ? 'Completed' : 'Error',
      startedAt: t.startedAt,
      finishedAt: t.finishedAt,
      containerID: t.containerId,
    },
  };
}

function containerStatus(pod: PodState): Record<string, unknown> {
  const state = pod.container;
  let containerState: Record<string, unknown>;
  if (state.kind === 'running') containerState = { running: { startedAt: state.startedAt } };
  else if (state.kind === 'terminated') containerState = terminatedStatus(state);
  else containerState = { waiting: { reason: 'ContainerCreating' } };
  const status: Record<string, unknown> = {
    name: CONTAINER_NAME,
    image: 'mirra:dev',
    imageID: '',
    ready: isReady(pod),
    started: state.kind === 'running',
    restartCount: pod.restartCount,
    state: containerState,
    lastState: pod.lastTermination === undefined ? {} : terminatedStatus(pod.lastTermination),
  };
  if (state.kind !== 'waiting') status['containerID'] = state.containerId;
  return status;
}

function composeStatus(pod: PodState, ip: string): Record<string, unknown> {
  const ready = isReady(pod) ? 'True' : 'False';
  if (ready !== pod.readyCondition.status) pod.readyCondition = { status: ready, since: now() };
  const { created, readyCondition } = pod;
  return {
    phase: pod.container.kind === 'waiting' ? 'Pending' : 'Running',
    conditions: [
      { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: created },
      { type: 'Ready', status: ready, lastProbeTime: null, lastTransitionTime: readyCondition.since },
      { type: 'ContainersReady', status: ready, lastProbeTime: null, lastTransitionTime: readyCondition.since },
      { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: created },
    ],
    hostIP: ip,
    hostIPs: [{ ip }],
    podIP: ip,
    podIPs: [{ ip }],
    startTime: created,
    qosClass: 'BestEffort',
    containerStatuses: [containerStatus(pod)],
  };
}

function writeStatus(pod: PodState, options: KubeletOptions): void {
  const { api, namespace, ip } = options;
  if (pod.podName === undefined) return;
  // get + update in one synchronous step: nothing else can write in between.
  const current = api.get('Pod', namespace, pod.podName);
  if (current === undefined) return; // deleted behind our back (e.g. kubectl delete): nothing to report on
  api.update({ ...current, status: composeStatus(pod, ip) });
}

export function createKubelet(options: KubeletOptions): Kubelet {
  const { api, namespace, ip } = options;
  const pod: PodState = {
    podName: undefined,
    podUid: undefined,
    created: '',
    container: { kind: 'waiting' },
    lastTermination: undefined,
    restartCount: 0,
    probeReady: false,
    readyCondition: { status: 'False', since: '' },
  };

  return {
    get podName() {
      return pod.podName;
    },
    get podUid() {
      return pod.podUid;
    },
    createPod() {
      pod.created = now();
      pod.container = { kind: 'waiting' };
      pod.lastTermination = undefined;
      pod.restartCount = 0;
      pod.probeReady = false;
      pod.readyCondition = { status: 'False', since: pod.created };
      const created = api.create({ ...podObject(options), status: composeStatus(pod, ip) });
      pod.podName = String(created.metadata['name']);
      pod.podUid = String(created.metadata['uid']);
      return pod.podName;
    },
    containerStarted() {
      if (pod.container.kind === 'terminated') {
        pod.lastTermination = pod.container;
        pod.restartCount++;
      }
      pod.container = { kind: 'running', startedAt: now(), containerId: containerId() };
      pod.probeReady = false;
      writeStatus(pod, options);
    },
    containerExited(how) {
      const state = pod.container;
      if (state.kind !== 'running') return;
      pod.container = { kind: 'terminated', startedAt: state.startedAt, finishedAt: now(), exitCode: exitCodeOf(how), containerId: state.containerId };
      pod.probeReady = false;
      writeStatus(pod, options);
    },
    probeResult(ready) {
      if (pod.container.kind !== 'running' || ready === pod.probeReady) return;
      pod.probeReady = ready;
      writeStatus(pod, options);
    },
    deletePod() {
      const name = pod.podName;
      pod.podName = undefined;
      pod.podUid = undefined;
      pod.container = { kind: 'waiting' };
      pod.probeReady = false;
      if (name !== undefined && api.get('Pod', namespace, name) !== undefined) api.delete('Pod', namespace, name);
    },
    ready: () => isReady(pod),
  };
}
