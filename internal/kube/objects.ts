// The parts of pods and EndpointSlices that mirra uses (the peer watcher, the
// status publisher, `mirra shards`), read from the JSON the API returns (objects,
// lists and watch events), parsed to unknown and validated.
import { isStatusAnnotation } from '../owners/status.ts';

export interface PodView {
  readonly name: string;
  readonly resourceVersion: string;
  readonly nodeName: string | undefined;
  readonly podIP: string | undefined;
  /** The pod's Ready condition is True (for inspection; peers go by their endpoint's readiness). */
  readonly ready: boolean;
  /** Only mirra's status annotations (internal/owners/status.ts). */
  readonly annotations: Readonly<Record<string, string>>;
}

export interface EndpointView {
  /** targetRef.name of a Pod target. */
  readonly podName: string;
  readonly ip: string;
  /** conditions.ready; unset counts as ready, as the API documents. */
  readonly ready: boolean;
  readonly zone: string | undefined;
  readonly nodeName: string | undefined;
  /** The slice's port named `registry`, else its first port; undefined when it has none. */
  readonly port: number | undefined;
}

export interface SliceView {
  readonly name: string;
  readonly resourceVersion: string;
  readonly endpoints: readonly EndpointView[];
}

export const REGISTRY_PORT_NAME = 'registry';
/** The label the EndpointSlice controller puts on a Service's slices. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Whether `candidate` is a pod's better endpoint than `known` (dual stack: one per family): the first, unless a later one is ready and it is not. */
export function betterEndpoint(known: EndpointView | undefined, candidate: EndpointView): boolean {
  return known === undefined || (candidate.ready && !known.ready);
}

type Obj = Record<string, unknown>;

function obj(value: unknown): Obj | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function metadataOf(value: unknown): { name: string; resourceVersion: string; annotations: Obj | undefined } | undefined {
  const metadata = obj(obj(value)?.['metadata']);
  const name = str(metadata?.['name']);
  if (metadata === undefined || name === undefined) return undefined;
  return { name, resourceVersion: str(metadata['resourceVersion']) ?? '', annotations: obj(metadata['annotations']) };
}

export function parsePod(value: unknown): PodView | undefined {
  const metadata = metadataOf(value);
  if (metadata === undefined) return undefined;
  const annotations: Record<string, string> = {};
  for (const [key, annotation] of Object.entries(metadata.annotations ?? {})) {
    if (isStatusAnnotation(key) && typeof annotation === 'string') annotations[key] = annotation;
  }
  const status = obj(obj(value)?.['status']);
  return {
    name: metadata.name,
    resourceVersion: metadata.resourceVersion,
    nodeName: str(obj(obj(value)?.['spec'])?.['nodeName']),
    podIP: str(status?.['podIP']),
    ready: list(status?.['conditions']).some((c) => obj(c)?.['type'] === 'Ready' && obj(c)?.['status'] === 'True'),
    annotations,
  };
}

function slicePort(ports: unknown[]): number | undefined {
  const valid = ports.map(obj).filter((p): p is Obj => p !== undefined && Number.isInteger(p['port']) && Number(p['port']) > 0 && Number(p['port']) < 65536);
  const chosen = valid.find((p) => p['name'] === REGISTRY_PORT_NAME) ?? valid[0];
  return chosen === undefined ? undefined : Number(chosen['port']);
}

export function parseSlice(value: unknown): SliceView | undefined {
  const metadata = metadataOf(value);
  if (metadata === undefined) return undefined;
  const slice = obj(value);
  const port = slicePort(list(slice?.['ports']));
  const endpoints: EndpointView[] = [];
  for (const item of list(slice?.['endpoints'])) {
    const endpoint = obj(item);
    const targetRef = obj(endpoint?.['targetRef']);
    const podName = str(targetRef?.['name']);
    const ip = str(list(endpoint?.['addresses'])[0]);
    if (podName === undefined || ip === undefined || (targetRef?.['kind'] !== undefined && targetRef['kind'] !== 'Pod')) continue;
    endpoints.push({
      podName,
      ip,
      ready: obj(endpoint?.['conditions'])?.['ready'] !== false,
      zone: str(endpoint?.['zone']),
      nodeName: str(endpoint?.['nodeName']),
      port,
    });
  }
  return { name: metadata.name, resourceVersion: metadata.resourceVersion, endpoints };
}
