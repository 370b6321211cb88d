// Watches the headless Service's EndpointSlices (address, port, zone,
// readiness of every agent) and keeps the peer directory: the membership of
// the peer-to-peer index (internal/owners) and how to reach each peer. This
// is the watch kube-proxy keeps for every Service; it changes when agents
// come, go or change readiness, never with pulls. Nothing here watches pods:
// a pod watch sends every agent every pod update (docs/DESIGN.md, cost model).
// While the API is unreachable the last known state stays in use.
import type { KubeClient } from './client.ts';
import type { Logger } from '../log/logger.ts';
import { betterEndpoint, parseSlice, SERVICE_NAME_LABEL, type EndpointView, type SliceView } from './objects.ts';
import { startListWatch, type ListWatch, type ListWatchOptions } from './watch.ts';

export interface PeerInfo {
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  readonly zone: string | undefined;
  readonly nodeName: string | undefined;
  /** The endpoint is ready: the peer is a member (it owns shards and is asked for content). */
  readonly ready: boolean;
}

export interface WatchPeersOptions {
  client: KubeClient;
  namespace: string;
  /** The headless Service: its EndpointSlices carry kubernetes.io/service-name=<serviceName>. */
  serviceName: string;
  /** The own pod's name: never in the directory. */
  self: string;
  logger: Logger;
  /** After a peer's entry in the directory changed (peer undefined: gone from the directory). */
  onChange?(name: string, peer: PeerInfo | undefined): void;
  /** After the own endpoint's readiness changed. */
  onOwnReady?(ready: boolean): void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  idleTimeoutMs?: number;
}

export interface PeerWatcher {
  /** The directory: how to reach each peer that has an endpoint with an address and port. */
  peers(): ReadonlyMap<string, PeerInfo>;
  /** True once the EndpointSlices have been listed. */
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

function samePeer(a: PeerInfo | undefined, b: PeerInfo | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ip === b.ip && a.port === b.port && a.zone === b.zone && a.nodeName === b.nodeName && a.ready === b.ready;
}

/** The endpoint of a pod across slices (dual stack: one per family): a ready one first. */
function bestEndpoint(bySlice: ReadonlyMap<string, EndpointView> | undefined): EndpointView | undefined {
  let best: EndpointView | undefined;
  for (const endpoint of bySlice?.values() ?? []) if (betterEndpoint(best, endpoint)) best = endpoint;
  return best;
}

/** What the watch of watchPeers keeps: the options and everything known of the peers. */
interface PeersState {
  readonly options: WatchPeersOptions;
  readonly log: Logger;
  /** Pod name to its endpoints, by EndpointSlice name. */
  readonly endpointsByPod: Map<string, Map<string, EndpointView>>;
  readonly directory: Map<string, PeerInfo>;
  ownZone: string | undefined;
  ownReady: boolean;
}

function refreshOwnEndpoint(state: PeersState): void {
  const own = bestEndpoint(state.endpointsByPod.get(state.options.self));
  const ready = own?.ready ?? false;
  if (ready !== state.ownReady) {
    state.ownReady = ready;
    state.options.onOwnReady?.(ready);
  }
  const zone = own?.zone;
  if (zone !== state.ownZone) state.log.info({ zone: zone ?? null }, 'own zone from the EndpointSlice: peers in it are asked first');
  state.ownZone = zone;
}

/** Brings the directory in line with the endpoints of one pod name. */
function refresh(state: PeersState, name: string): void {
  if (name === state.options.self) return refreshOwnEndpoint(state);
  const endpoint = bestEndpoint(state.endpointsByPod.get(name));
  let next: PeerInfo | undefined;
  if (endpoint?.port !== undefined) {
    const { ip, port, zone, ready } = endpoint;
    next = { name, ip, port, zone, nodeName: endpoint.nodeName, ready };
  }
  const previous = state.directory.get(name);
  if (samePeer(previous, next)) return;
  if (next === undefined) state.directory.delete(name);
  else state.directory.set(name, next);
  state.options.onChange?.(name, next);
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

function timingOf(options: WatchPeersOptions): Pick<ListWatchOptions<SliceView>, 'minBackoffMs' | 'maxBackoffMs' | 'idleTimeoutMs'> {
  return { minBackoffMs: options.minBackoffMs, maxBackoffMs: options.maxBackoffMs, idleTimeoutMs: options.idleTimeoutMs };
}

function watchSlices(state: PeersState): ListWatch<SliceView> {
  const { options } = state;
  return startListWatch<SliceView>({
    client: options.client,
    path: `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/endpointslices`,
    labelSelector: `${SERVICE_NAME_LABEL}=${options.serviceName}`,
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
    endpointsByPod: new Map(),
    directory: new Map(),
    ownZone: undefined,
    ownReady: false,
  };
  const sliceWatch = watchSlices(state);
  return {
    peers: () => state.directory,
    synced: () => sliceWatch.synced(),
    ownZone: () => state.ownZone,
    ownReady: () => state.ownReady,
    async close() {
      await sliceWatch.close();
    },
  };
}
