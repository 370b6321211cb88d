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
  return `containerd://${Array.from({ length: 4 }, () => Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, '0')).join('')}`;
}

export function createKubelet(options: KubeletOptions): Kubelet {
  const { api, namespace, ip } = options;
  let podName: string | undefined;
  let podUid: string | undefined;
  let created = '';
  let state: ContainerState = { kind: 'waiting' };
  let lastTermination: Extract<ContainerState, { kind: 'terminated' }> | undefined;
  let restartCount = 0;
  let probeReady = false;
  let readyCondition = { status: 'False', since: '' };

  const isReady = (): boolean => state.kind === 'running' && probeReady;

  function terminatedStatus(t: Extract<ContainerState, { kind: 'terminated' }>): Record<string, unknown> {
    return {
      terminated: { exitCode: t.exitCode, reason: t.exitCode === 0 ? 'Completed' : 'Error', startedAt: t.startedAt, finishedAt: t.finishedAt, containerID: t.containerId },
    };
  }

  function composeStatus(): Record<string, unknown> {
    const ready = isReady() ? 'True' : 'False';
    if (ready !== readyCondition.status) readyCondition = { status: ready, since: now() };
    let containerState: Record<string, unknown>;
    if (state.kind === 'running') containerState = { running: { startedAt: state.startedAt } };
    else if (state.kind === 'terminated') containerState = terminatedStatus(state);
    else containerState = { waiting: { reason: 'ContainerCreating' } };
    const containerStatus: Record<string, unknown> = {
      name: CONTAINER_NAME,
      image: 'mirra:dev',
      imageID: '',
      ready: isReady(),
      started: state.kind === 'running',
      restartCount,
      state: containerState,
      lastState: lastTermination === undefined ? {} : terminatedStatus(lastTermination),
    };
    if (state.kind !== 'waiting') containerStatus['containerID'] = state.containerId;
    return {
      phase: state.kind === 'waiting' ? 'Pending' : 'Running',
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
      containerStatuses: [containerStatus],
    };
  }

  function writeStatus(): void {
    if (podName === undefined) return;
    // get + update in one synchronous step: nothing else can write in between.
    const pod = api.get('Pod', namespace, podName);
    if (pod === undefined) return; // deleted behind our back (e.g. kubectl delete): nothing to report on
    api.update({ ...pod, status: composeStatus() });
  }

  return {
    get podName() {
      return podName;
    },
    get podUid() {
      return podUid;
    },
    createPod() {
      created = now();
      state = { kind: 'waiting' };
      lastTermination = undefined;
      restartCount = 0;
      probeReady = false;
      readyCondition = { status: 'False', since: created };
      const pod = api.create({ ...podObject(options), status: composeStatus() });
      podName = String(pod.metadata['name']);
      podUid = String(pod.metadata['uid']);
      return podName;
    },
    containerStarted() {
      if (state.kind === 'terminated') {
        lastTermination = state;
        restartCount++;
      }
      state = { kind: 'running', startedAt: now(), containerId: containerId() };
      probeReady = false;
      writeStatus();
    },
    containerExited(how) {
      if (state.kind !== 'running') return;
      state = { kind: 'terminated', startedAt: state.startedAt, finishedAt: now(), exitCode: exitCodeOf(how), containerId: state.containerId };
      probeReady = false;
      writeStatus();
    },
    probeResult(ready) {
      if (state.kind !== 'running' || ready === probeReady) return;
      probeReady = ready;
      writeStatus();
    },
    deletePod() {
      const name = podName;
      podName = undefined;
      podUid = undefined;
      state = { kind: 'waiting' };
      probeReady = false;
      if (name !== undefined && api.get('Pod', namespace, name) !== undefined) api.delete('Pod', namespace, name);
    },
    ready: isReady,
  };
}
