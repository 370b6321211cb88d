// Watches the DaemonSet's pods (summary annotations) and the headless Service's
// EndpointSlices (address, port, zone, readiness) and keeps the peer index and
// the peer directory in step. A peer is a candidate only while its pod exists
// and its endpoint is ready. While the API is unreachable the last known state
// stays in use.
import type { KubeClient } from './client.ts';
import type { Logger } from '../log/logger.ts';
import type { PeerIndex } from '../routing/peer-index.ts';
import { parsePod, parseSlice, type EndpointView, type PodView, type SliceView } from './objects.ts';
import { startListWatch, type ListWatch, type ListWatchOptions } from './watch.ts';

export interface PeerInfo {
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  readonly zone: string | undefined;
  readonly nodeName: string | undefined;
  /** Pod exists and endpoint ready: the peer is a lookup candidate. */
  readonly ready: boolean;
}

export interface WatchPeersOptions {
  client: KubeClient;
  namespace: string;
  /** Selects the DaemonSet's pods, e.g. app.kubernetes.io/name=mirra. */
  labelSelector: string;
  /** The headless Service: its EndpointSlices carry kubernetes.io/service-name=<serviceName>. */
  serviceName: string;
  /** The own pod's name: never in the index or the directory. */
  self: string;
  index: PeerIndex;
  logger: Logger;
  /** After a peer's entry in the index or the directory changed (peer undefined: gone from the directory). */
  onChange?(name: string, peer: PeerInfo | undefined): void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  idleTimeoutMs?: number;
}

export interface PeerWatcher {
  /** The directory: how to reach each peer whose pod exists and has an endpoint with an address and port. */
  peers(): ReadonlyMap<string, PeerInfo>;
  /** True once both the pods and the EndpointSlices have been listed. */
  synced(): boolean;
  /**
   * The zone of the own pod's endpoint (the EndpointSlice controller sets it
   * from the node's topology.kubernetes.io/zone label), or undefined: the
   * own zone without --zone and without any access to Node objects.
   */
  ownZone(): string | undefined;
  /** Whether the own pod's endpoint is ready in the EndpointSlices (the others count this agent as a member then). */
  ownReady(): boolean;
  close(): Promise<void>;
}

interface Fed {
  zone: string | undefined;
  ready: boolean;
  summary: Readonly<Record<string, string>>;
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function samePeer(a: PeerInfo | undefined, b: PeerInfo | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ip === b.ip && a.port === b.port && a.zone === b.zone && a.nodeName === b.nodeName && a.ready === b.ready;
}

/** The endpoint of a pod across slices (dual stack: one per family): a ready one first. */
function bestEndpoint(bySlice: ReadonlyMap<string, EndpointView> | undefined): EndpointView | undefined {
  let best: EndpointView | undefined;
  for (const endpoint of bySlice?.values() ?? []) if (best === undefined || (endpoint.ready && !best.ready)) best = endpoint;
  return best;
}

/** What the two watches of watchPeers share: the options and everything known of the peers. */
interface PeersState {
  readonly options: WatchPeersOptions;
  readonly log: Logger;
  readonly pods: Map<string, PodView>;
  /** Pod name to its endpoints, by EndpointSlice name. */
  readonly endpointsByPod: Map<string, Map<string, EndpointView>>;
  /** What was last given to the index, by pod name. */
  readonly fed: Map<string, Fed>;
  readonly directory: Map<string, PeerInfo>;
  ownZone: string | undefined;
  ownReady: boolean;
}

/** Gives the index what is known of one peer's pod and endpoint; true if that changed anything. */
function feedIndex(state: PeersState, name: string, pod: PodView, endpoint: EndpointView | undefined): boolean {
  const { index } = state.options;
  const ready = endpoint?.ready ?? false;
  const zone = endpoint?.zone;
  const previous = state.fed.get(name);
  if (previous !== undefined && previous.zone === zone && sameRecord(previous.summary, pod.summary)) {
    if (previous.ready === ready) return false;
    index.setReady(name, ready);
  } else {
    const result = index.upsertPeer(name, { zone, ready, annotations: pod.summary });
    if (result.status === 'invalid') state.log.warn({ err: result.error, peer: name }, 'ignoring the invalid summary of a peer');
    else state.log.debug({ peer: name, status: result.status, decodedShards: result.decodedShards }, 'peer summary updated');
  }
  state.fed.set(name, { zone, ready, summary: pod.summary });
  return true;
}

function refreshOwnEndpoint(state: PeersState): void {
  const own = bestEndpoint(state.endpointsByPod.get(state.options.self));
  state.ownReady = own?.ready ?? false;
  const zone = own?.zone;
  if (zone !== state.ownZone) state.log.info({ zone: zone ?? null }, 'own zone from the EndpointSlice: peers in it are asked first');
  state.ownZone = zone;
}

/** Brings the index and the directory in line with what is known of one pod name. */
function refresh(state: PeersState, name: string): void {
  if (name === state.options.self) return refreshOwnEndpoint(state);
  const pod = state.pods.get(name);
  let changed: boolean;
  let next: PeerInfo | undefined;
  if (pod === undefined) {
    changed = state.fed.delete(name) && state.options.index.removePeer(name);
  } else {
    const endpoint = bestEndpoint(state.endpointsByPod.get(name));
    changed = feedIndex(state, name, pod, endpoint);
    if (endpoint?.port !== undefined) {
      const { ip, port, zone, ready } = endpoint;
      next = { name, ip, port, zone, nodeName: endpoint.nodeName ?? pod.nodeName, ready };
    }
  }
  const previous = state.directory.get(name);
  if (!samePeer(previous, next)) {
    if (next === undefined) state.directory.delete(name);
    else state.directory.set(name, next);
    changed = true;
  }
  if (changed) state.options.onChange?.(name, next);
}

/** An EndpointSlice changed: moves its endpoints from `previous` to `next` and refreshes every pod they name. */
function onSliceChange(state: PeersState, sliceName: string, next: SliceView | undefined, previous: SliceView | undefined): void {
  const { endpointsByPod } = state;
  const touched = new Set<string>();
  for (const endpoint of previous?.endpoints ?? []) {
    const bySlice = endpointsByPod.get(endpoint.podName);
    bySlice?.delete(sliceName);
    if (bySlice?.size === 0) endpointsByPod.delete(endpoint.podName);
    touched.add(endpoint.podName);
  }
  for (const endpoint of next?.endpoints ?? []) {
    let bySlice = endpointsByPod.get(endpoint.podName);
    if (bySlice === undefined) endpointsByPod.set(endpoint.podName, (bySlice = new Map<string, EndpointView>()));
    bySlice.set(sliceName, endpoint);
    touched.add(endpoint.podName);
  }
  for (const name of touched) refresh(state, name);
}

function timingOf(options: WatchPeersOptions): Pick<ListWatchOptions<PodView>, 'minBackoffMs' | 'maxBackoffMs' | 'idleTimeoutMs'> {
  return { minBackoffMs: options.minBackoffMs, maxBackoffMs: options.maxBackoffMs, idleTimeoutMs: options.idleTimeoutMs };
}

function watchPods(state: PeersState): ListWatch<PodView> {
  const { options } = state;
  return startListWatch<PodView>({
    client: options.client,
    path: `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`,
    labelSelector: options.labelSelector,
    parse: parsePod,
    onChange(name, next) {
      if (next === undefined) state.pods.delete(name);
      else state.pods.set(name, next);
      refresh(state, name);
    },
    logger: state.log.child({ watch: 'pods' }),
    ...timingOf(options),
  });
}

function watchSlices(state: PeersState): ListWatch<SliceView> {
  const { options } = state;
  return startListWatch<SliceView>({
    client: options.client,
    path: `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/endpointslices`,
    labelSelector: `kubernetes.io/service-name=${options.serviceName}`,
    parse: parseSlice,
    onChange: (sliceName, next, previous) => onSliceChange(state, sliceName, next, previous),
    logger: state.log.child({ watch: 'endpointslices' }),
    ...timingOf(options),
  });
}

export function watchPeers(options: WatchPeersOptions): PeerWatcher {
  const state: PeersState = {
    options,
    log: options.logger.child({ component: 'kube-peers' }),
    pods: new Map(),
    endpointsByPod: new Map(),
    fed: new Map(),
    directory: new Map(),
    ownZone: undefined,
    ownReady: false,
  };
  const podWatch = watchPods(state);
  const sliceWatch = watchSlices(state);
  return {
    peers: () => state.directory,
    synced: () => podWatch.synced() && sliceWatch.synced(),
    ownZone: () => state.ownZone,
    ownReady: () => state.ownReady,
    async close() {
      await Promise.all([podWatch.close(), sliceWatch.close()]);
    },
  };
}
